"""``hcal test``'s per-class report, written into one folder (by default the run's ``report/``):

* ``per_class.csv``: one row per class of every level: ``level, class, parent, precision, recall, f1, support,
  predicted`` (support: test samples of the class; predicted: samples predicted as it);
* ``report.md``: the same per level as tables with the macro average, each followed by the level's confusion
  matrix (``confusion_lK.png``) or, for a level of more than :data:`MATRIX_MAX` classes, a table of its
  :data:`TOP_CONFUSIONS` most frequent confusions;
* ``confusion_lK.png``: level K's confusion matrix (rows: true class, columns: predicted).

The scores are those of :func:`hcal.metrics.per_class.per_class_scores`, with the decoding the test used.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import torch

from ..hierarchy import Hierarchy
from ..metrics.per_class import per_class_scores
from ..plots import plot_confusion
from .checkpoint import atomic_write

__all__ = ["class_rows", "write_class_report", "top_confusions", "MATRIX_MAX", "TOP_CONFUSIONS"]

MATRIX_MAX = 30  # classes up to which a level's confusion matrix is drawn
TOP_CONFUSIONS = 20
FIELDS = ["level", "class", "parent", "precision", "recall", "f1", "support", "predicted"]


def class_rows(confusions: Sequence[torch.Tensor], hierarchy: Hierarchy) -> list[dict[str, Any]]:
    """The rows of ``per_class.csv``: every class of every level, finest level first, in the hierarchy's order."""
    rows = []
    for k, confusion in enumerate(confusions):
        scores = per_class_scores(confusion)
        for i, name in enumerate(hierarchy.classes[k]):
            parent = hierarchy.classes[k + 1][hierarchy.parents[k][i]] if k + 1 < hierarchy.num_levels else ""
            rows.append({"level": k + 1, "class": name, "parent": parent,
                         **{s: round(float(scores[s][i]), 6) for s in ("precision", "recall", "f1")},
                         "support": int(scores["support"][i]), "predicted": int(scores["predicted"][i])})
    return rows


def top_confusions(confusion: torch.Tensor, names: Sequence[str], n: int = TOP_CONFUSIONS) -> list[tuple]:
    """The ``n`` largest off-diagonal counts: ``(true class, predicted class, count, share of the true class)``."""
    off = confusion.clone()
    off.fill_diagonal_(0)
    support = confusion.sum(dim=1)
    counts, flat = off.flatten().sort(descending=True, stable=True)
    out = []
    for count, index in zip(counts[:n].tolist(), flat[:n].tolist()):
        if count == 0:
            break
        i, j = divmod(index, confusion.shape[1])
        out.append((names[i], names[j], count, count / max(1, int(support[i]))))
    return out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _level_section(k: int, rows: list[dict[str, Any]], confusion: torch.Tensor, hierarchy: Hierarchy,
                   png: str | None) -> list[str]:
    m, n = hierarchy.num_levels, hierarchy.sizes[k]
    where = " (finest)" if k == 0 else " (coarsest)" if k == m - 1 else ""
    lines = [f"## Level {k + 1}{where}: {n} classes", "",
             "| class | parent | precision | recall | F1 | support |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {_cell(r['class'])} | {_cell(r['parent'])} | {r['precision']:.4f} | {r['recall']:.4f} | "
              f"{r['f1']:.4f} | {r['support']} |" for r in rows]
    macro = {s: sum(r[s] for r in rows) / len(rows) for s in ("precision", "recall", "f1")}
    lines += [f"| **macro average** | | {macro['precision']:.4f} | {macro['recall']:.4f} | {macro['f1']:.4f} | "
              f"{sum(r['support'] for r in rows)} |", ""]
    if png:
        lines += [f"![level-{k + 1} confusion matrix]({png})", ""]
    else:
        top = top_confusions(confusion, hierarchy.classes[k])
        lines += [f"Most frequent confusions ({len(top)} largest off-diagonal counts of the {n} x {n} matrix):", "",
                  "| true class | predicted class | count | share of the true class |", "|---|---|---:|---:|"]
        lines += [f"| {_cell(t)} | {_cell(p)} | {c} | {s:.4f} |" for t, p, c, s in top]
        lines.append("")
    return lines


def write_class_report(out: Path, confusions: Sequence[torch.Tensor], hierarchy: Hierarchy, title: str) -> list[Path]:
    """Write ``per_class.csv``, ``report.md`` and the confusion-matrix PNGs into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = class_rows(confusions, hierarchy)
    pngs = []
    lines = ["# Per-class report", "", title, ""]
    for k, confusion in enumerate(confusions):
        png = None
        if hierarchy.sizes[k] <= MATRIX_MAX:
            png = f"confusion_l{k + 1}.png"
            pngs.append(plot_confusion(out / png, confusion.numpy(), hierarchy.classes[k],
                                       f"level {k + 1} confusion matrix\n{title}"))
        lines += _level_section(k, [r for r in rows if r["level"] == k + 1], confusion, hierarchy, png)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    for name, text in (("per_class.csv", buf.getvalue()), ("report.md", "\n".join(lines))):
        atomic_write(out / name, lambda fh, t=text: fh.write(t.encode("utf-8")))
    return [out / "per_class.csv", out / "report.md", *pngs]
