"""One markdown table from finished grids and anchor results: mean ± std over seeds, in %.

    .venv/bin/python benchmarks/results_table.py experiments/compare-dbpedia-linear \\
        --anchors experiments/anchors-dbpedia/results.csv

Reads every run of each grid (``GRID/runs/NAME-seedS``): ``metrics.json`` (the run's own decoding)
and ``metrics-consistent.json`` (written by ``--also-decode consistent``), and each anchor
``results.csv`` of ``benchmarks/anchors.py``. Rows are sorted by full-path accuracy; the best one
is bold. ``train s``: mean training seconds per run from ``run.json`` (anchors: fitting with the
search over C), as measured on whatever else the machine was doing.

``--docs FILE`` checks (``--write``: rewrites) every table of a markdown page that follows a line
``<!-- results_table: ARGS -->``: the table must be what ``results_table.py ARGS`` prints, with
paths relative to the current folder. Exit 1 names the stale tables.

``val Δ`` says whether the runs had converged: per run, the validation full-path accuracy (the
run's own decoding, from its per-epoch CSV log) averaged over the last ``k`` epochs minus the
average over the ``k`` epochs before them, ``k = max(1, epochs // 4)``; in points, mean over the
row's runs. Near 0: the curve is flat at the end; clearly positive: still rising.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keep_records import epoch_logs  # noqa: E402  (a sibling script: which logs a run or record has)

KEYS = ("test/acc_l1", "test/acc_l2", "test/acc_l3", "test/hvr", "test/full_path_acc", "test/hf1")
DECODED = (("metrics.json", None), ("metrics-consistent.json", "consistent"))


def collect(grids: list[Path], anchors: list[Path], only: set[str]) -> dict[tuple[str, str], list[dict]]:
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for grid in grids:
        if not (grid / "runs").is_dir():
            raise SystemExit(f"results_table.py: grid {grid}: no runs/ folder (give the --out folder of an "
                             "hcal experiment, or a record folder of benchmarks/results)")
        for run in sorted((grid / "runs").iterdir()):
            name = run.name.rsplit("-seed", 1)[0]
            if (only and name not in only) or not (run / "metrics.json").is_file():
                continue
            info = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
            own = info.get("config", {}).get("decode") or _config_decode(run)
            trend = val_trend(run)
            for file, decoding in DECODED:
                if (run / file).is_file():
                    metrics = json.loads((run / file).read_text())
                    rows[(name, decoding or own)].append({**metrics, "seconds": info.get("train_seconds"),
                                                          "trend": trend})
    for path in anchors:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                rows[(f"{row['label']} (anchor)", "—")].append(
                    {**{k: float(row[k]) for k in KEYS}, "seconds": float(row["train_seconds"]), "trend": None})
    return rows


def val_trend(run: Path, metric: str = "val/full_path_acc") -> float | None:
    """Last ``k`` epochs' mean of ``metric`` minus the ``k`` before them, in points (None: too few epochs).

    Reads the run's per-epoch CSV logs (:func:`keep_records.epoch_logs`: a run folder's or a
    record's); a resumed run's later logs win."""
    by_epoch: dict[int, float] = {}
    for path in epoch_logs(run):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get(metric):
                    by_epoch[int(row["epoch"])] = float(row[metric])
    values = [by_epoch[e] for e in sorted(by_epoch)]
    if len(values) < 2:
        return None
    k = max(1, len(values) // 4)  # 2 k <= len(values) from 2 epochs on
    return 100 * (statistics.fmean(values[-k:]) - statistics.fmean(values[-2 * k:-k]))


def _config_decode(run: Path) -> str:
    for line in (run / "config.yaml").read_text().splitlines():
        if line.startswith("decode:"):
            return line.split(":", 1)[1].strip()
    return "nearest"


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(rows: dict[tuple[str, str], list[dict]]) -> str:
    full_path = {k: _mean_std([100 * r["test/full_path_acc"] for r in v])[0] for k, v in rows.items()}
    best = max(full_path.values())
    lines = ["| method | decoding | seeds | ACC^1 | ACC^2 | ACC^3 | HVR ↓ | full path | hF1 | train s | val Δ |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in sorted(rows, key=lambda k: -full_path[k]):
        cells = []
        for metric in KEYS:
            m, s = _mean_std([100 * r[metric] for r in rows[key] if metric in r])
            text = f"{m:.2f} ± {s:.2f}"
            cells.append(f"**{text}**" if metric == "test/full_path_acc" and full_path[key] == best else text)
        seconds = [r["seconds"] for r in rows[key] if r["seconds"] is not None]
        spent = f"{statistics.fmean(seconds):.0f}" if seconds else "–"
        trends = [r["trend"] for r in rows[key] if r.get("trend") is not None]
        trend = f"{statistics.fmean(trends):+.2f}" if trends else "–"
        lines.append(f"| {key[0]} | {key[1]} | {len(rows[key])} | {' | '.join(cells)} | {spent} | {trend} |")
    return "\n".join(lines)


MARKER = re.compile(r"^<!-- results_table: (.*) -->$")


def refresh_docs(page: Path, write: bool) -> list[str]:
    """The marked tables of ``page`` that differ from their regenerated text ("line N: ARGS");
    with ``write``, the page is rewritten with the regenerated tables."""
    lines = page.read_text().split("\n")
    out, stale, i = [], [], 0
    while i < len(lines):
        out.append(lines[i])
        marker = MARKER.match(lines[i])
        i += 1
        if not marker:
            continue
        end = i
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        args = _parser().parse_args(shlex.split(marker.group(1)))
        rows = _rows(args)
        fresh = table(rows).split("\n") if rows else ["(no finished runs found)"]
        if fresh != lines[i:end]:
            stale.append(f"line {i + 1}: {marker.group(1)}")
        out.extend(fresh)
        i = end
    if write and stale:
        page.write_text("\n".join(out))
    return stale


def _rows(args: argparse.Namespace) -> dict[tuple[str, str], list[dict]]:
    return collect(args.grids, args.anchors, {m for m in args.only.split(",") if m})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("grids", nargs="*", type=Path, help="output folders of hcal experiment compare/ablation")
    p.add_argument("--anchors", nargs="*", type=Path, default=[], help="results.csv files of benchmarks/anchors.py")
    p.add_argument("--only", default="", help="comma-separated run labels to keep (default: all)")
    p.add_argument("--docs", type=Path, help="check the marked tables of this markdown page instead")
    p.add_argument("--write", action="store_true", help="with --docs: rewrite the stale tables")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.docs:
        if not args.docs.is_file():
            p.error(f"--docs: no such file: {args.docs}")
        stale = refresh_docs(args.docs, args.write)
        for where in stale:
            print(f"{args.docs} {where}: {'rewritten' if args.write else 'stale table'}")
        return 1 if stale and not args.write else 0
    rows = _rows(args)
    if not rows:
        p.error("no finished runs found")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
