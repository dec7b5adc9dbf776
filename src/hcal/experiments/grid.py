"""Running a grid of fits (methods x seeds, ablation configurations, sweep values) with resume.

Each run lives in ``OUT/runs/<label>-seed<k>/`` and is an ordinary ``hcal fit`` run directory.
Re-running the same command skips finished runs (their ``metrics.json`` is read back), continues
an interrupted one from its last checkpoint, and refuses to mix in a run made with other settings.
``OUT/results.csv`` gets one row per finished run, rewritten after each run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..checks import check_config
from ..config import Config
from ..engine import evaluate, fit
from ..engine.checkpoint import atomic_write
from ..engine.report import format_duration
from ..engine.rundir import BEST, CHECKPOINTS, CONFIG_FILE, LAST, METRICS_FILE, RUN_INFO_FILE
from ..errors import ConfigError

__all__ = ["RunSpec", "run_grid", "read_results", "RERUN_HINT"]

RERUN_HINT = ("run the same command again to continue (finished runs are skipped, the interrupted one resumes from "
              "its last checkpoint)")  # after a stop
# Keys that may differ between a finished run and a re-run of the same experiment.
IGNORED_KEYS = {"run_dir", "progress", "num_workers", "device"}


@dataclass
class RunSpec:
    label: str  # the row of the results table: a method, an ablation configuration, a swept value
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # extra columns for results.csv (e.g. the swept value)

    @property
    def name(self) -> str:
        return f"{self.label}-seed{self.seed}"


def _check_same(existing: Path, wanted: Config) -> None:
    saved = yaml.safe_load(existing.read_text()) or {}
    if saved.get("data_dir"):  # runs made before hcal saved it absolute
        saved["data_dir"] = os.path.abspath(saved["data_dir"])
    defaults = Config().to_dict()
    diff = [
        f"{k}: run has {saved.get(k)!r}, now {v!r}"
        for k, v in wanted.to_file_dict().items()  # as a run saves it (data_dir absolute)
        if k not in IGNORED_KEYS and saved.get(k) != v and not (k == "backbone" and v == "auto")
        # an option added to hcal after the run was made, at its default: the run had that behaviour
        and not (k not in saved and v == defaults[k])
    ]
    if diff:
        raise ConfigError(
            f"{existing.parent} was made with other settings ({'; '.join(diff[:4])}); "
            "use another --out, or delete that run to redo it"
        )


def run_grid(
    base: Config,
    specs: list[RunSpec],
    out: Path,
    experiment: str,
    echo: Callable[[str], None] = print,
    also_decode: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Fit every spec (skipping finished runs), write ``results.csv`` and return its rows.

    Every run's configuration is checked before the first one trains. ``also_decode``: decodings
    to score each run's best checkpoint with too (no retraining; ``metrics-<decoding>.json`` in the
    run directory), one more row per run labelled ``LABEL · DECODING``."""
    configs = [base.replace(seed=spec.seed, run_dir=str(out / "runs" / spec.name), **spec.overrides) for spec in specs]
    for config in configs:
        check_config(config)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    spent: list[float] = []
    start = time.perf_counter()
    for i, (spec, config) in enumerate(zip(specs, configs), 1):
        run_dir = Path(config.run_dir)
        done = (run_dir / METRICS_FILE).is_file()
        left = ""
        if spent:
            remaining = sum(1 for s in specs[i - 1 :] if not (out / "runs" / s.name / METRICS_FILE).is_file())
            left = f", ~{format_duration(remaining * sum(spent) / len(spent))} left"
        state = "finished earlier, skipped" if done else "training"
        elapsed = format_duration(time.perf_counter() - start)
        echo(f"[{i}/{len(specs)}] {experiment}: {spec.label}, seed {spec.seed} ({state}; elapsed {elapsed}{left})")
        if (run_dir / CONFIG_FILE).is_file():
            _check_same(run_dir / CONFIG_FILE, config)
        if not done:
            t = time.perf_counter()
            if (run_dir / CHECKPOINTS / LAST).is_file():
                echo(f"  resuming the interrupted run in {run_dir}")
                fit(Config.from_dict({**config.to_dict(), "progress": base.progress}), resume=run_dir, echo=echo)
            else:
                fit(config, overwrite=run_dir.exists(), echo=echo)
            spent.append(time.perf_counter() - t)
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        info = json.loads((run_dir / RUN_INFO_FILE).read_text()) if (run_dir / RUN_INFO_FILE).is_file() else {}
        row = {"experiment": experiment, "label": spec.label, "seed": spec.seed, **spec.extra,
               "decode": config.decode, **{k: v for k, v in metrics.items() if k.startswith("test/")},
               "train_seconds": info.get("train_seconds"), "run_dir": str(run_dir)}
        rows.append(row)
        for decoding in (d for d in also_decode if d != config.decode):
            scored = run_dir / f"metrics-{decoding}.json"
            best = run_dir / CHECKPOINTS / BEST
            stale = scored.is_file() and scored.stat().st_mtime < (run_dir / METRICS_FILE).stat().st_mtime
            if not scored.is_file() or (stale and best.is_file()):
                # missing, or older than the run's result (the run was trained on since: fit --resume --epochs N);
                # a kept record copied back has no checkpoint: its own score is the one there is
                evaluate(best, decode=decoding, device=config.device, output=scored,
                         overwrite=True, echo=lambda *_: None)
            other = json.loads(scored.read_text())
            rows.append({**row, "label": f"{spec.label} · {decoding}", "decode": decoding,
                         **{k: v for k, v in other.items() if k.startswith("test/")}})
        write_results(rows, out / "results.csv")
    return rows


def write_results(rows: list[dict[str, Any]], path: Path) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda fh: fh.write(buf.getvalue().encode("utf-8")))


def read_results(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for k, v in row.items():
            if k.startswith("test/") or k in ("train_seconds",):
                row[k] = float(v) if v not in ("", None) else None
    return rows
