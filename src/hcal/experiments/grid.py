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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import Config
from ..engine.checkpoint import atomic_write
from ..errors import ConfigError

__all__ = ["RunSpec", "run_grid", "read_results"]

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


def _fmt_duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _check_same(existing: Path, wanted: Config) -> None:
    import yaml

    saved = yaml.safe_load(existing.read_text()) or {}
    defaults = Config().to_dict()
    diff = [
        f"{k}: run has {saved.get(k)!r}, now {v!r}"
        for k, v in wanted.to_dict().items()
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
) -> list[dict[str, Any]]:
    """Fit every spec (skipping finished runs), write ``results.csv`` and return its rows."""
    from ..engine.runner import METRICS_FILE, RUN_INFO_FILE, fit

    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    spent: list[float] = []
    start = time.perf_counter()
    for i, spec in enumerate(specs, 1):
        run_dir = out / "runs" / spec.name
        config = base.replace(seed=spec.seed, run_dir=str(run_dir), **spec.overrides)
        done = (run_dir / METRICS_FILE).is_file()
        left = ""
        if spent:
            remaining = sum(1 for s in specs[i - 1 :] if not (out / "runs" / s.name / METRICS_FILE).is_file())
            left = f", ~{_fmt_duration(remaining * sum(spent) / len(spent))} left"
        echo(f"[{i}/{len(specs)}] {experiment}: {spec.label}, seed {spec.seed}"
             f" ({'finished earlier, skipped' if done else 'training'}; elapsed {_fmt_duration(time.perf_counter() - start)}{left})")
        if (run_dir / "config.yaml").is_file():
            _check_same(run_dir / "config.yaml", config)
        if not done:
            t = time.perf_counter()
            if (run_dir / "checkpoints" / "last.ckpt").is_file():
                echo(f"  resuming the interrupted run in {run_dir}")
                fit(Config.from_dict({**config.to_dict(), "progress": base.progress}), resume=run_dir, echo=echo)
            else:
                fit(config, overwrite=run_dir.exists(), echo=echo)
            spent.append(time.perf_counter() - t)
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        info = json.loads((run_dir / RUN_INFO_FILE).read_text()) if (run_dir / RUN_INFO_FILE).is_file() else {}
        rows.append({"experiment": experiment, "label": spec.label, "seed": spec.seed, **spec.extra,
                     **{k: v for k, v in metrics.items() if k.startswith("test/")},
                     "train_seconds": info.get("train_seconds"), "run_dir": str(run_dir)})
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
