"""``hcal export``: a checkpoint as one file for serving (TorchScript or ONNX) that needs neither hcal nor Lightning.

The file is the checkpoint's :class:`~hcal.engine.predictions.Predictor` (the very module ``hcal
predict`` runs) traced for a batch of any size: scaling, normalisation, the model, the decoding
and the probabilities are inside. It takes what the model's evaluation takes: ``(n, d)`` float32
feature vectors, or ``(n, C, S, S)`` uint8 images already brought to the evaluation geometry (the
metadata's ``preprocessing`` says how: resize of the shorter side, centre crop). It returns
``labels`` ``(n, m)`` int64 (class indices, finest level first), ``scores`` ``(n, m)``,
``path_score`` ``(n,)`` and ``probs_l1`` ... ``probs_lm`` (see the Predictor).

The metadata, one JSON document (:func:`export_metadata`: the hierarchy, each level's class names in
output order, the input, the preprocessing, the decoding, the outputs), travels inside the file:

* TorchScript: the extra file ``hcal.json``::

      files = {"hcal.json": ""}
      model = torch.jit.load(path, _extra_files=files)
      meta = json.loads(files["hcal.json"])
      labels, scores, path_score, *probs = model(x)

* ONNX: the model's metadata property ``hcal``::

      session = onnxruntime.InferenceSession(path)
      meta = json.loads(session.get_modelmeta().custom_metadata_map["hcal"])
      labels, scores, path_score, *probs = session.run(None, {"input": x})

PyTorch calls TorchScript deprecated (in favour of ``torch.export``); it still loads with plain torch.
ONNX export needs the packages ``onnx`` and ``onnxscript`` (``pip install 'hcal[export]'``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import ConfigError
from .checkpoint import atomic_write
from .module import HierarchicalModule
from .predictions import Predictor
from .rundir import check_output

__all__ = ["export", "export_metadata", "EXPORT_FORMATS", "METADATA_FILE", "METADATA_KEY"]

EXPORT_FORMATS = ("torchscript", "onnx")
METADATA_FILE = "hcal.json"  # TorchScript: the extra file holding the metadata
METADATA_KEY = "hcal"  # ONNX: the metadata property holding it
FORMAT = 1  # bump when the layout of the inputs, outputs or metadata changes


def export_metadata(module: HierarchicalModule, predictor: Predictor) -> dict[str, Any]:
    """What a program needs beside the file: class names, the tree, the input and its preprocessing."""
    spec, h = module.input_spec, module.hierarchy
    if spec.kind == "vector":
        shape, dtype = [None, spec.dim], "float32"
        preprocessing = f"none outside the model: float32 feature vectors (n, {spec.dim}) as in training"
    else:
        shape, dtype = [None, spec.channels, spec.size, spec.size], "uint8"
        preprocessing = (
            f"decode as {'RGB' if spec.channels == 3 else 'grey'}, resize the shorter side to "
            f"{spec.resize or spec.size} pixels (bilinear, antialiased) and centre-crop {spec.size}x{spec.size} "
            f"(torchvision v2 Resize, CenterCrop), as uint8 (n, C, H, W); the scaling to [0, 1] and the "
            "normalisation are inside the model"
        )
    return {
        "hcal_version": __version__,
        "format": FORMAT,
        "decode": predictor.decode_mode,
        "input": {"name": "input", "shape": shape, "dtype": dtype, "spec": spec.to_dict()},
        "preprocessing": preprocessing,
        "outputs": predictor.output_names(),
        "classes": [list(names) for names in h.classes],  # per level, finest first: labels[:, k] indexes classes[k]
        "hierarchy": h.to_dict(),
    }


def _example(module: HierarchicalModule) -> torch.Tensor:
    spec = module.input_spec
    if spec.kind == "vector":
        return torch.randn(2, spec.dim, generator=torch.Generator().manual_seed(0))
    return torch.zeros((2, spec.channels, spec.size, spec.size), dtype=torch.uint8)


def _torchscript(predictor: Predictor, example: torch.Tensor, out: Path, meta: str) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*deprecated")
        traced = torch.jit.trace(predictor, example, check_trace=False)  # the export test compares outputs
        atomic_write(out, lambda fh: torch.jit.save(traced, fh, _extra_files={METADATA_FILE: meta}))


def _onnx(predictor: Predictor, example: torch.Tensor, out: Path, meta: str) -> None:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"--format onnx needs the package(s) {', '.join(missing)}: pip install 'hcal[export]'")
    optimizer_log = logging.getLogger("onnxscript")  # its constant folding warns of what it leaves as it is
    level = optimizer_log.level
    optimizer_log.setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(
            predictor, (example,), dynamo=True, input_names=["input"], output_names=predictor.output_names(),
            dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
        )
    finally:
        optimizer_log.setLevel(level)
    program.model.metadata_props[METADATA_KEY] = meta
    atomic_write(out, lambda fh: fh.write(program.model_proto.SerializeToString()))


def export(ckpt: str | Path, fmt: str, out: str | Path, *, decode: str | None = None, overwrite: bool = False,
           echo=print) -> dict[str, Any]:
    """Write checkpoint ``ckpt`` as a ``fmt`` file (``torchscript`` or ``onnx``) at ``out``; returns its metadata."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    check_output(out, overwrite, flag="--out")
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    predictor = Predictor(module, decode).requires_grad_(False)  # a served model's outputs need no graph
    meta = export_metadata(module, predictor)
    text = json.dumps(meta, ensure_ascii=False)
    with torch.no_grad():
        (_torchscript if fmt == "torchscript" else _onnx)(predictor, _example(module), Path(out), text)
    echo(f"wrote {fmt} model to {out}: input {meta['input']['dtype']} {meta['input']['shape']}, outputs "
         f"{', '.join(meta['outputs'])}, {predictor.decode_mode} decoding")
    return meta
