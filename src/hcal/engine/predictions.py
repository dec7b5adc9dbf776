"""What a trained model predicts for new inputs, and how ``hcal predict`` writes it.

:class:`Predictor` is a trained model's whole prediction as one ``nn.Module``, from the inputs as the
model's evaluation takes them to labels, scores and probabilities. ``hcal predict`` and
:class:`~hcal.HierarchicalClassifier` run it and ``hcal export`` saves it, so an exported file
computes what ``hcal predict`` prints.

A row of ``hcal predict`` (one per input, in order; levels numbered finest first, as everywhere)::

    input                         FILE, FILE:ROW (a row of an .npy file) or the row number of an array
    label_l1, score_l1, ...       each level's predicted class and its softmax probability
    path_score                    the product of the levels' scores: the score --decode consistent
                                  maximises over the tree's paths (there, the chosen path's score)
    consistent                    whether the predicted classes form a path of the tree
    top_l1, ...                   (--top-k K) the K most probable classes of each level, with probabilities
    probs_l1, ...                 (--probabilities) each level's whole probability vector
    error                         (--skip-bad) why the input could not be predicted; its other fields empty

JSON lines hold the row as it is (``top_lk`` a list of ``{"label", "score"}``, ``probs_lk`` a mapping
of class to probability); CSV flattens it (``top1_label_l1``, ``top1_score_l1``, ...,
``prob_l1:CLASS``, ...). Scores are rounded to 6 decimals.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import check_option
from ..decoding import decode
from ..errors import ConfigError
from ..hierarchy import Hierarchy
from .checkpoint import atomic_write
from .module import HierarchicalModule, prepare_inputs
from .predict_inputs import Inputs

__all__ = ["Predictor", "run_predictor", "prediction_rows", "csv_columns", "write_predictions", "output_format",
           "FORMATS"]

FORMATS = ("csv", "jsonl")


class Predictor(nn.Module):
    """``forward(x)`` gives ``(labels, scores, path_score, probs_l1, ..., probs_lm)`` (:meth:`output_names`):

    * ``labels``: ``(n, m)`` int64 class indices, finest level first, by the decoding ``decode``
      (default: the module's);
    * ``scores``: ``(n, m)`` the softmax probability of each predicted class on its level;
    * ``path_score``: ``(n,)`` their product over the levels;
    * ``probs_lk``: ``(n, C_k)`` level k's probabilities, classes in the hierarchy's order.

    ``x`` is a batch as the model's evaluation takes it: feature vectors ``(n, d)``, or images
    ``(n, C, S, S)`` at the model's size, uint8 (or floats in [0, 1]); the scaling and the
    normalisation happen inside (:func:`~hcal.engine.module.prepare_inputs`).
    """

    def __init__(self, module: HierarchicalModule, decode: str | None = None) -> None:
        super().__init__()
        self.method = module.method
        self.hierarchy = module.hierarchy
        self.decode_mode = check_option("decode", decode or module.decode_mode, "--decode")
        self.channels_last = module.config.channels_last
        self.register_buffer("leaf_paths", module.hierarchy.leaf_paths(), persistent=False)
        self.register_buffer("input_mean", module.input_mean, persistent=False)
        self.register_buffer("input_std", module.input_std, persistent=False)
        self.eval()

    def output_names(self) -> list[str]:
        return ["labels", "scores", "path_score"] + [f"probs_l{k + 1}" for k in range(self.hierarchy.num_levels)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.method(prepare_inputs(x, self.input_mean, self.input_std, self.channels_last))
        labels, scores = decode(logits, self.hierarchy, self.decode_mode, self.leaf_paths)
        probs = [torch.softmax(z.float(), dim=1) for z in logits]
        return (labels, scores, scores.prod(dim=1), *probs)


def run_predictor(predictor: Predictor, batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The predictor's outputs over all ``batches`` (on its device), joined on the CPU; ``()`` for no batch."""
    device = predictor.leaf_paths.device
    parts = []
    with torch.no_grad():
        for x in batches:
            if len(x):
                parts.append([t.cpu() for t in predictor(x.to(device))])
    return tuple(torch.cat(p) for p in zip(*parts))


def output_format(fmt: str | None, output: str | Path | None) -> str:
    """``fmt``, or from ``output``'s suffix (``.jsonl``: JSON lines), or CSV."""
    if fmt is None:
        return "jsonl" if output is not None and Path(output).suffix.lower() in (".jsonl", ".ndjson") else "csv"
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def _level_keys(h: Hierarchy) -> list[str]:
    return [f"l{k + 1}" for k in range(h.num_levels)]


def csv_columns(h: Hierarchy, top_k: int = 0, probabilities: bool = False, skip_bad: bool = False) -> list[str]:
    levels = _level_keys(h)
    columns = ["input"] + [f"{what}_{lk}" for lk in levels for what in ("label", "score")] + ["path_score",
                                                                                            "consistent"]
    for k, lk in enumerate(levels):
        columns += [f"top{r + 1}_{what}_{lk}" for r in range(min(top_k, h.sizes[k])) for what in ("label", "score")]
    if probabilities:
        columns += [f"prob_{lk}:{name}" for k, lk in enumerate(levels) for name in h.classes[k]]
    return columns + (["error"] if skip_bad else [])


def prediction_rows(inputs: Inputs, outputs: tuple[torch.Tensor, ...], h: Hierarchy, top_k: int = 0,
                    probabilities: bool = False, skip_bad: bool = False) -> list[dict[str, Any]]:
    """One row per input (see the module's docstring); ``outputs``: the :class:`Predictor`'s for ``inputs.x``."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ConfigError(f"--top-k {top_k!r}: expected an integer >= 0")
    if not outputs:  # no input could be predicted
        outputs = (torch.empty(0, h.num_levels, dtype=torch.long), torch.empty(0, h.num_levels), torch.empty(0),
                   *(torch.empty(0, c) for c in h.sizes))
    levels = _level_keys(h)
    labels, scores, path_score, probs = outputs[0].tolist(), outputs[1].tolist(), outputs[2].tolist(), outputs[3:]
    consistent = h.is_consistent(outputs[0]).tolist()
    tops = [p.topk(min(top_k, p.shape[1]), dim=1) for p in probs] if top_k else []
    tops = [(v.tolist(), i.tolist()) for v, i in tops]
    probs = [p.tolist() for p in probs] if probabilities else []
    rows, j = [], 0
    for name, error in zip(inputs.names, inputs.errors):
        row: dict[str, Any] = {"input": name}
        ok = error is None
        for k, lk in enumerate(levels):
            row[f"label_{lk}"] = h.classes[k][labels[j][k]] if ok else None
            row[f"score_{lk}"] = _r6(scores[j][k]) if ok else None
        row["path_score"] = _r6(path_score[j]) if ok else None
        row["consistent"] = consistent[j] if ok else None
        for k, (values, indices) in enumerate(tops):
            row[f"top_{levels[k]}"] = [{"label": h.classes[k][i], "score": _r6(v)} for v, i in
                                       zip(values[j], indices[j])] if ok else None
        for k, p in enumerate(probs):
            row[f"probs_{levels[k]}"] = dict(zip(h.classes[k], map(_r6, p[j]))) if ok else None
        if skip_bad:
            row["error"] = error
        rows.append(row)
        j += ok
    return rows


def _r6(value: float) -> float:
    return round(value, 6)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.startswith("top_"):
            lk = key.removeprefix("top_")
            for r, entry in enumerate(value or []):
                out[f"top{r + 1}_label_{lk}"], out[f"top{r + 1}_score_{lk}"] = entry["label"], entry["score"]
        elif key.startswith("probs_"):
            lk = key.removeprefix("probs_")
            out.update({f"prob_{lk}:{name}": p for name, p in (value or {}).items()})
        else:
            out[key] = value
    return out


def write_predictions(rows: list[dict[str, Any]], columns: list[str], fmt: str, output: str | Path | None,
                      echo=print) -> None:
    """``rows`` as CSV (``columns``) or JSON lines, into ``output`` (atomically) or through ``echo``."""
    if fmt == "jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(_flat(row) for row in rows)
        text = buf.getvalue()
    if output is None:
        echo(text.rstrip("\n"))
        return
    atomic_write(Path(output), lambda fh: fh.write(text.encode("utf-8")))
    failed = sum(row.get("error") is not None for row in rows)
    note = f" ({failed} inputs could not be predicted: see the error column)" if failed else ""
    echo(f"wrote {len(rows) - failed} predictions to {output}{note}")
