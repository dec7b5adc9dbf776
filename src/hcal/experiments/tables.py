"""Results tables in the paper's form: mean ± std over seeds, the best value of each column in bold."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["summarise", "markdown_table", "table_columns"]


def table_columns(rows: list[dict[str, Any]]) -> list[str]:
    prefix = "test/acc_l"
    levels = sorted({int(k[len(prefix):]) for r in rows for k in r
                     if k.startswith(prefix) and k[len(prefix):].isdigit()})
    return [f"test/acc_l{k}" for k in levels] + ["test/hvr", "test/full_path_acc", "test/hf1"]


def _lower_is_better(column: str) -> bool:
    return column.split("/")[-1].startswith("hvr")


def summarise(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """One entry per label (in first-seen order): ``{label, n, column: (mean, std)}``."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    out = []
    for label in labels:
        mine = [r for r in rows if r["label"] == label]
        entry: dict[str, Any] = {"label": label, "n": len(mine)}
        for c in columns:
            values = [float(r[c]) for r in mine if r.get(c) is not None]
            if values:
                entry[c] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        out.append(entry)
    return out


HEADERS = {"test/hvr": "HVR ↓", "test/full_path_acc": "full path", "test/hf1": "hF1"}


def markdown_table(
    rows: list[dict[str, Any]],
    label_header: str = "method",
    reference: dict[str, dict[str, float]] | None = None,
) -> str:
    """Mean ± std (in %) per label; bold marks the best mean of each column (HVR: lowest).

    ``reference`` rows (label -> column -> value in %) are printed below, as given, unranked.
    """
    columns = table_columns(rows)
    summary = summarise(rows, columns)
    best = {}
    for c in columns:
        means = [e[c][0] for e in summary if c in e]
        if means:
            best[c] = min(means) if _lower_is_better(c) else max(means)
    heads = [HEADERS.get(c, "ACC^" + c[len("test/acc_l"):]) for c in columns]
    lines = [f"| {label_header} | seeds | " + " | ".join(heads) + " |", "|---|---:|" + "---:|" * len(columns)]
    for e in summary:
        cells = []
        for c in columns:
            if c not in e:
                cells.append("–")
                continue
            mean, std = e[c]
            text = f"{100 * mean:.2f} ± {100 * std:.2f}"
            cells.append(f"**{text}**" if abs(mean - best[c]) < 1e-12 else text)
        lines.append(f"| {e['label']} | {e['n']} | " + " | ".join(cells) + " |")
    for label, values in (reference or {}).items():
        cells = [f"{values[c]:.2f}" if c in values else "–" for c in columns]
        lines.append(f"| {label} | – | " + " | ".join(cells) + " |")
    return "\n".join(lines)
