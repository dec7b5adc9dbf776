"""Copy the small records of a grid's finished runs into benchmarks/results/, without checkpoints.

    .venv/bin/python benchmarks/keep_records.py experiments/compare-fashion-mnist benchmarks/results/compare-fmnist

For every run folder ``GRID/runs/NAME`` with a ``metrics.json`` (a finished run), copies
``config.yaml``, ``run.json``, every ``metrics*.json`` (``metrics-consistent.json`` of
``--also-decode``) and the per-epoch CSV logs (``logs/csv/**/metrics.csv``, as
``metrics-epochs-1.csv``, ``-2``, ... in the logs' sorted order: a resumed run's later logs last;
a run copied from benchmarks/results to resume a grid keeps its ``metrics-epochs-*.csv``)
to ``DEST/runs/NAME``: what ``benchmarks/results_table.py`` reads. A record already in DEST with
other contents is not overwritten unless ``--overwrite`` is given; unfinished runs are listed
and skipped.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def epoch_logs(run: Path) -> list[Path]:
    """The per-epoch CSV logs of ``run``, earliest first (a resumed run's later logs last).

    A run folder's ``logs/csv/**/metrics.csv``; in a record (benchmarks/results, or one copied
    back into a grid to resume it) its ``metrics-epochs-N.csv`` in the order of N."""
    logs = sorted(run.glob("logs/csv/**/metrics.csv"))
    return logs or sorted(run.glob("metrics-epochs-*.csv"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def records(run: Path) -> dict[str, Path]:
    """The files of ``run`` to keep, by their name in the copy."""
    files = {p.name: p for p in sorted(run.glob("metrics*.json"))}
    files.update({name: run / name for name in ("config.yaml", "run.json") if (run / name).is_file()})
    for i, log in enumerate(epoch_logs(run), start=1):
        files[f"metrics-epochs-{i}.csv"] = log
    return files


def keep(grid: Path, dest: Path, overwrite: bool = False) -> tuple[list[str], list[str]]:
    """Copy the records; returns (copied run names, skipped messages)."""
    runs = sorted(p for p in (grid / "runs").iterdir() if p.is_dir())
    plan, skipped = {}, []
    for run in runs:
        if not (run / "metrics.json").is_file():
            skipped.append(f"{run.name}: not finished (no metrics.json)")
            continue
        target = dest / "runs" / run.name
        files = records(run)
        clash = sorted(n for n, src in files.items()
                       if (target / n).is_file() and (target / n).read_bytes() != src.read_bytes())
        if clash and not overwrite:
            skipped.append(f"{run.name}: {target} already holds other {', '.join(clash)} (--overwrite replaces them)")
            continue
        plan[run.name] = (target, files)
    for name, (target, files) in plan.items():
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.glob("metrics-epochs-*.csv"):  # a resumed run may have more logs than before
            if stale.name not in files:
                stale.unlink()
        for new_name, src in files.items():
            shutil.copyfile(src, target / new_name)
    return list(plan), skipped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("grid", type=Path, help="an --out folder of hcal experiment compare/ablation/sweep")
    p.add_argument("dest", type=Path, help="its folder under benchmarks/results/")
    p.add_argument("--overwrite", action="store_true", help="replace records that differ")
    args = p.parse_args(argv)
    if not (args.grid / "runs").is_dir():
        p.error(f"grid: {args.grid} has no runs/ folder; give an --out folder of hcal experiment")
    copied, skipped = keep(args.grid, args.dest, args.overwrite)
    for line in skipped:
        print(f"skipped {line}")
    print(f"kept the records of {len(copied)} run(s) in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
