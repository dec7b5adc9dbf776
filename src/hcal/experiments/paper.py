"""The paper's published numbers, printed beside an experiment's table with ``--paper``.

``PAPER_ROWS`` maps ``dataset -> experiment -> row label -> {column: value in %}`` with columns
named like ``results.csv`` (``test/acc_l1``, ``test/hvr``, ...). hcal was built without access to
the paper's tables, so no rows are bundled: ``--paper`` says so instead of printing numbers nobody
checked. Add rows here, citing the table they come from, to enable the comparison.
"""

from __future__ import annotations

__all__ = ["paper_rows", "PAPER_ROWS", "PAPER_DATASETS"]

PAPER_DATASETS = ("cifar100", "fgvc-aircraft")
PAPER_ROWS: dict[str, dict[str, dict[str, dict[str, float]]]] = {}


def paper_rows(dataset: str, experiment: str) -> tuple[dict[str, dict[str, float]], str]:
    """``(rows, note)``: the published rows for this dataset and experiment, and a line for the user."""
    rows = PAPER_ROWS.get(dataset, {}).get(experiment, {})
    if rows:
        return rows, f"the paper's published rows for {dataset} ({experiment}) are shown for reference"
    if dataset not in PAPER_DATASETS:
        return {}, f"--paper: {dataset} is not one of the paper's datasets ({', '.join(PAPER_DATASETS)}); no published rows"
    return {}, f"--paper: no published rows for {dataset} are bundled yet (see hcal/experiments/paper.py); nothing shown"
