"""engine/export.py: the exported file computes the Predictor's outputs (hcal predict's) and carries its metadata."""

import json
import warnings

import numpy as np
import onnxruntime
import pytest
import torch

from hcal.engine.export import export
from hcal.engine.module import HierarchicalModule
from hcal.engine.predictions import Predictor
from hcal.errors import ConfigError
from hcal.inputs import InputSpec
from hcal.methods import METHODS
from tests.helpers import untrained_checkpoint

VECTORS = InputSpec(kind="vector", dim=6)
GREY = InputSpec(kind="image", channels=1, size=28, mean=(0.3,), std=(0.4,))


def _inputs(spec: InputSpec, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    if spec.kind == "vector":
        return torch.randn(n, spec.dim, generator=g)
    return torch.randint(0, 256, (n, spec.channels, spec.size, spec.size), generator=g, dtype=torch.uint8)


def _expected(ckpt, x, decode=None) -> list[np.ndarray]:
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    with torch.no_grad():
        return [t.numpy() for t in Predictor(module, decode)(x)]


def _load_torchscript(path):
    files = {"hcal.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # PyTorch calls TorchScript deprecated
        model = torch.jit.load(str(path), _extra_files=files)
    return (lambda x: [t.numpy() for t in model(torch.as_tensor(x))]), json.loads(files["hcal.json"])


def _load_onnx(path):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    return (lambda x: session.run(None, {"input": x})), json.loads(session.get_modelmeta().custom_metadata_map["hcal"])


LOADERS = {"torchscript": _load_torchscript, "onnx": _load_onnx}


def _assert_same(got, expected):
    assert len(got) == len(expected)
    np.testing.assert_array_equal(got[0], expected[0])  # labels
    for a, b in zip(got[1:], expected[1:]):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_exports_to_torchscript(tmp_path, toy, method):
    ckpt = untrained_checkpoint(tmp_path / "m.ckpt", toy, VECTORS, method=method)
    export(ckpt, "torchscript", tmp_path / "m.pt", echo=lambda *a: None)
    run, _ = _load_torchscript(tmp_path / "m.pt")
    x = _inputs(VECTORS, 5)  # another batch size than the trace's
    _assert_same(run(x.numpy()), _expected(ckpt, x))


@pytest.mark.parametrize("fmt, method, spec, decode", [
    ("onnx", "hcal", VECTORS, "consistent"), ("onnx", "dmt", VECTORS, None), ("onnx", "ew", GREY, None),
    ("torchscript", "hcal", VECTORS, "consistent"), ("torchscript", "ew", GREY, None),
])
def test_exports_match_the_predictor_with_their_metadata(tmp_path, toy, fmt, method, spec, decode):
    ckpt = untrained_checkpoint(tmp_path / "m.ckpt", toy, spec, method=method)
    out = tmp_path / f"m.{fmt}"
    echoed = []
    meta = export(ckpt, fmt, out, decode=decode, echo=echoed.append)
    assert echoed[0].startswith(f"wrote {fmt} model to {out}: input")
    run, loaded = LOADERS[fmt](out)
    assert loaded == meta
    assert meta["decode"] == (decode or "nearest") and meta["classes"] == [list(c) for c in toy.classes]
    assert meta["outputs"] == ["labels", "scores", "path_score", "probs_l1", "probs_l2", "probs_l3"]
    assert meta["hierarchy"] == toy.to_dict() and meta["input"]["spec"] == spec.to_dict()
    for n in (1, 7):
        x = _inputs(spec, n)
        _assert_same(run(x.numpy()), _expected(ckpt, x, decode))
    if spec.kind == "image":
        assert meta["input"] == {"name": "input", "shape": [None, 1, 28, 28], "dtype": "uint8", "spec": spec.to_dict()}
        assert "centre-crop 28x28" in meta["preprocessing"] and "grey" in meta["preprocessing"]


def test_export_refuses_what_it_cannot_do(tmp_path, toy):
    ckpt = untrained_checkpoint(tmp_path / "m.ckpt", toy, VECTORS)
    with pytest.raises(ConfigError, match="--format 'tflite': choose one of torchscript, onnx"):
        export(ckpt, "tflite", tmp_path / "m.x")
    with pytest.raises(ConfigError, match="--decode: expected one of nearest, consistent, got 'best'"):
        export(ckpt, "onnx", tmp_path / "m.onnx", decode="best")
    (tmp_path / "m.pt").write_text("mine")
    with pytest.raises(ConfigError, match="--out .*m.pt' exists; pass --overwrite"):
        export(ckpt, "torchscript", tmp_path / "m.pt")
    assert (tmp_path / "m.pt").read_text() == "mine"
    export(ckpt, "torchscript", tmp_path / "m.pt", overwrite=True, echo=lambda *a: None)
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left beside it
