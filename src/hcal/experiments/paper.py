"""Published numbers printed beside an experiment's table: ``--paper`` (bundled) or ``--reference FILE.csv``.

``--paper`` prints the HCAL paper's own rows (Jiang et al., CIKM 2025, Tables 1 and 2), bundled
as CSV files in ``paper_tables/`` (see its README for where each number comes from) and read
with :func:`load_reference`, the same reader as ``--reference``. ``PAPER_TABLES`` says which
file belongs to which (dataset, experiment, number of levels).
"""

from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path

from ..errors import ConfigError

__all__ = ["paper_rows", "load_reference", "PAPER_TABLES", "PAPER_DATASETS", "REFERENCE_COLUMNS"]

# metric columns a reference CSV may carry (values in %), as in results.csv without the ``test/`` prefix
REFERENCE_COLUMNS = ("acc_l<k>", "hvr", "full_path_acc", "hf1")

# (dataset, experiment, levels) -> bundled file in paper_tables/
PAPER_TABLES: dict[tuple[str, str, int], str] = {
    ("cifar100", "compare", 2): "table1-cifar100.csv",
    ("fgvc-aircraft", "compare", 3): "table1-fgvc-aircraft.csv",
    ("fgvc-aircraft", "ablation", 2): "table2-ablation-fgvc-aircraft-2level.csv",
}
PAPER_DATASETS = ("cifar100", "fgvc-aircraft")
_DEFAULT_LEVELS = {"cifar100": 2, "fgvc-aircraft": 3}


def paper_rows(
    dataset: str, experiment: str, dataset_args: dict | None = None
) -> tuple[dict[str, dict[str, float]], str]:
    """``(rows, note)``: the paper's published rows for this dataset, experiment and tree, and a line for the user.

    The number of levels comes from ``dataset_args`` (``levels=2`` for FGVC-Aircraft's 2-level tree)."""
    if dataset not in PAPER_DATASETS:
        return {}, (f"--paper: {dataset} is not one of the paper's datasets ({', '.join(PAPER_DATASETS)}); "
                    "no published rows")
    try:
        levels = int(str((dataset_args or {}).get("levels", _DEFAULT_LEVELS[dataset])))
    except ValueError:
        levels = _DEFAULT_LEVELS[dataset]
    name = PAPER_TABLES.get((dataset, experiment, levels))
    if name is None:
        have = ", ".join(f"{e} on {d} with {k} levels" for d, e, k in PAPER_TABLES)
        return {}, (f"--paper: the paper publishes no {experiment} table for {dataset} with {levels} levels "
                    f"(it has: {have})")
    with resources.as_file(resources.files(__package__) / "paper_tables" / name) as path:
        rows = load_reference(path, suffix="paper")
    return rows, (f"rows marked (paper) are the published numbers of Jiang et al., CIKM 2025 ({name}; "
                  "the paper selects epochs on the test set, hcal on a validation split)")


def _reference_column(name: str) -> str | None:
    key = name.strip().removeprefix("test/")
    if key in ("hvr", "full_path_acc", "hf1") or (key.startswith("acc_l") and key[5:].isdigit() and int(key[5:]) >= 1):
        return f"test/{key}"
    return None


def load_reference(path: str | Path, suffix: str = "reference") -> dict[str, dict[str, float]]:
    """Rows to print beside a table, from a CSV: a ``label`` column and metric columns in %.

    Metric columns: ``acc_l1``, ``acc_l2``, ... (level 1 = finest), ``hvr``, ``full_path_acc``,
    ``hf1`` (a ``test/`` prefix is accepted); an empty cell means "not reported". Each label is
    shown as ``LABEL (reference)`` (``(paper)`` for the bundled tables). Bad files raise
    :class:`ConfigError` naming the file and line.
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
        rows[f"{label} ({suffix})"] = values
    if not rows:
        raise ConfigError(f"--reference: {path} has no rows below its header")
    return rows
