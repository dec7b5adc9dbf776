"""Published numbers printed beside an experiment's table: ``--paper`` (bundled) or ``--reference FILE.csv``.

``PAPER_ROWS`` maps ``dataset -> experiment -> row label -> {column: value in %}`` with columns
named like ``results.csv`` (``test/acc_l1``, ``test/hvr``, ...). hcal was built without access to
the paper's tables, so no rows are bundled: ``--paper`` says so instead of printing numbers nobody
checked. Add rows here, citing the table they come from, to enable the comparison, or put them in
a CSV and pass ``--reference FILE.csv`` (see :func:`load_reference`).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..errors import ConfigError

__all__ = ["paper_rows", "load_reference", "PAPER_ROWS", "PAPER_DATASETS", "REFERENCE_COLUMNS"]

# metric columns a reference CSV may carry (values in %), as in results.csv without the ``test/`` prefix
REFERENCE_COLUMNS = ("acc_l<k>", "hvr", "full_path_acc", "hf1")

PAPER_DATASETS = ("cifar100", "fgvc-aircraft")
PAPER_ROWS: dict[str, dict[str, dict[str, dict[str, float]]]] = {}


def paper_rows(dataset: str, experiment: str) -> tuple[dict[str, dict[str, float]], str]:
    """``(rows, note)``: the published rows for this dataset and experiment, and a line for the user."""
    rows = PAPER_ROWS.get(dataset, {}).get(experiment, {})
    if rows:
        note = f"the paper's published rows for {dataset} ({experiment}) are shown for reference"
        return {f"{label} (paper)": values for label, values in rows.items()}, note
    if dataset not in PAPER_DATASETS:
        return {}, (f"--paper: {dataset} is not one of the paper's datasets ({', '.join(PAPER_DATASETS)}); "
                    "no published rows")
    return {}, (f"--paper: no published rows for {dataset} are bundled yet (see hcal/experiments/paper.py); "
                "nothing shown")


def _reference_column(name: str) -> str | None:
    key = name.strip().removeprefix("test/")
    if key in ("hvr", "full_path_acc", "hf1") or (key.startswith("acc_l") and key[5:].isdigit() and int(key[5:]) >= 1):
        return f"test/{key}"
    return None


def load_reference(path: str | Path) -> dict[str, dict[str, float]]:
    """Rows to print beside a table, from a CSV: a ``label`` column and metric columns in %.

    Metric columns: ``acc_l1``, ``acc_l2``, ... (level 1 = finest), ``hvr``, ``full_path_acc``,
    ``hf1`` (a ``test/`` prefix is accepted); an empty cell means "not reported". Each label is
    shown as ``LABEL (reference)``. Bad files raise :class:`ConfigError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--reference: {path} is not a file; give a CSV with a 'label' column and metric columns in "
                          "%")
    try:  # utf-8-sig and reader.line_num, as hcal's other CSV readers (a BOM from Excel; quoted newlines)
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            lines = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"--reference: cannot read {path}: {e}") from None
    names = [h.strip() for h in header or []]
    if "label" not in names:
        raise ConfigError(f"--reference: {path} line 1 has no 'label' column (found {header or 'nothing'}); "
                          f"columns: label, {', '.join(REFERENCE_COLUMNS)}")
    columns = {}
    for i, name in enumerate(names):
        if name == "label":
            continue
        column = _reference_column(name)
        if column is None:
            raise ConfigError(f"--reference: {path} line 1: unknown column {name!r}; allowed: label, "
                              f"{', '.join(REFERENCE_COLUMNS)}")
        columns[i] = column
    label_at = names.index("label")
    rows: dict[str, dict[str, float]] = {}
    for line, cells in lines:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            raise ConfigError(f"--reference: {path} line {line} has {len(cells)} fields, the header has {len(names)}")
        values = {}
        for i, column in columns.items():
            cell = cells[i].strip()
            if not cell:
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or not 0 <= value <= 100:
                raise ConfigError(f"--reference: {path} line {line}, column {names[i]!r}: {cell!r} is not a "
                                  "percentage between 0 and 100")
            values[column] = value
        label = cells[label_at].strip()
        if not label:
            raise ConfigError(f"--reference: {path} line {line} has an empty label")
        rows[f"{label} (reference)"] = values
    if not rows:
        raise ConfigError(f"--reference: {path} has no rows below its header")
    return rows
