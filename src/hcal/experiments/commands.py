"""``hcal experiment compare | ablation | sweep``: the paper's experiments, one command each."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from ..checks import weighting_options
from ..config import Config, check_option, option_field, sweepable_options
from ..decoding import DECODINGS
from ..engine.rundir import CONFIG_FILE
from ..errors import ConfigError
from ..plots import pyplot
from .grid import RunSpec, run_grid
from .paper import load_reference, paper_rows
from .tables import markdown_table, summarise, table_columns

__all__ = ["compare", "ablation", "sweep", "ABLATIONS", "DEFAULT_ABLATIONS"]

# The ablation of the paper's Table 2: HCAL's components switched on and off. The paper's
# "single-task" row trains an independent model per level (MTL off) with FA and PP on and fixed
# weights (AWA off: AWA weighs the levels of one model); the other rows share one encoder.
ABLATIONS: dict[str, dict[str, bool | str | float]] = {
    "single-task (FA+PP)": {"mtl": False, "fa": True, "pp": True, "awa": False},
    "MTL+FA": {"mtl": True, "fa": True, "pp": False, "awa": False},
    "MTL+PP": {"mtl": True, "fa": False, "pp": True, "awa": False},
    "MTL+AWA": {"mtl": True, "fa": False, "pp": False, "awa": True},
    "MTL+PP+AWA": {"mtl": True, "fa": False, "pp": True, "awa": True},
    "MTL+FA+AWA": {"mtl": True, "fa": True, "pp": False, "awa": True},
    "MTL+FA+PP": {"mtl": True, "fa": True, "pp": True, "awa": False},
    "HCAL (MTL+FA+PP+AWA)": {"mtl": True, "fa": True, "pp": True, "awa": True},
    # not in the paper's table; reachable with --configs
    "single-task": {"mtl": False, "fa": False, "pp": False, "awa": False},
    "MTL": {"mtl": True, "fa": False, "pp": False, "awa": False},
    # hcal's own FA variant (--fa-mode means+samples); MTL+PP+AWA is the training of hcal-ps
    "MTL+FA(means+samples)+PP+AWA": {"mtl": True, "fa": True, "pp": True, "awa": True, "fa_mode": "means+samples"},
    # hcal's own path term (--path-weight 0.5): on the training of hcal-ps, and on the paper's HCAL
    "MTL+PP+AWA+path(0.5)": {"mtl": True, "fa": False, "pp": True, "awa": True, "path_weight": 0.5},
    "HCAL+path(0.5)": {"mtl": True, "fa": True, "pp": True, "awa": True, "path_weight": 0.5},
    # hcal-ps's training with one encoder per level (the capacity of the `single` baseline)
    "single-task+PP+AWA": {"mtl": False, "fa": False, "pp": True, "awa": True},
    "single-task+PP+AWA+path(0.5)": {"mtl": False, "fa": False, "pp": True, "awa": True, "path_weight": 0.5},
    # hcal's own linear cross-entropy head beside the prototypes (--ce-weight 0.5), one encoder per level
    "single-task+PP+AWA+CE(0.5)": {"mtl": False, "fa": False, "pp": True, "awa": True, "ce_weight": 0.5},
    # hcal's own: no projection, the prototypes on the backbone's features (--projection none), one encoder per level
    "single-task+PP+AWA+noproj": {"mtl": False, "fa": False, "pp": True, "awa": True, "projection": "none"},
}
DEFAULT_ABLATIONS = list(ABLATIONS)[:8]  # the paper's eight rows, in its order


def _header(title: str, base: Config, seeds: list[int], seconds: float, train_seconds: float) -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and base.device != "cpu" else "no GPU"
    return (
        f"## {title}\n\n"
        f"dataset `{base.dataset}`, backbone `{base.backbone}`, {base.epochs} epochs, batch {base.batch_size}, "
        f"seeds {', '.join(map(str, seeds))}, {base.decode} decoding"
        f"{f', at most {base.limit_batches} batches per epoch' if base.limit_batches else ''}; "
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, {gpu}; "
        f"training + validation time summed over runs {train_seconds / 60:.1f} min "
        f"(this invocation's wall time {seconds / 60:.1f} min; runs finished earlier are skipped).\n"
        "Mean ± std over seeds, in %; best mean of each column in bold (HVR: lowest). "
        "Model selection on the validation split; each test set evaluated once per run.\n"
    )


def _finish(out: Path, title: str, label_header: str, base: Config, seeds: list[int], rows, started: float,
            reference: dict | None, note: str | None, echo) -> str:
    if base.backbone == "auto" and rows:  # name the backbone the runs resolved
        run_config = yaml.safe_load((Path(rows[0]["run_dir"]) / CONFIG_FILE).read_text())
        base = base.replace(backbone=run_config["backbone"])
    per_run = {r["run_dir"]: float(r.get("train_seconds") or 0.0) for r in rows}  # --also-decode rows: same run
    train_seconds = sum(per_run.values())
    text = _header(title, base, seeds, time.perf_counter() - started, train_seconds)
    if note:
        text += f"\n{note}\n"
    text += "\n" + markdown_table(rows, label_header, reference) + "\n"
    (out / "results.md").write_text(text, encoding="utf-8")
    echo(text)
    echo(f"wrote {out / 'results.csv'} and {out / 'results.md'}")
    return text


def _seeds(seeds: list[int]) -> list[int]:
    if not seeds:
        raise ConfigError("--seeds: give at least one seed, e.g. --seeds 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: {seeds} repeats a seed")
    return [check_option("seed", s, "--seeds") for s in seeds]


def _references(paper: bool, reference: str | Path | None, base: Config, experiment: str):
    """Rows to print beside the table (``--paper`` and/or ``--reference``) and a note for the user."""
    rows: dict[str, dict[str, float]] = {}
    notes = []
    if paper:
        published, note = paper_rows(base.dataset, experiment, base.dataset_args)
        rows.update(published)
        notes.append(note)
    if reference is not None:
        rows.update(load_reference(reference))
        notes.append(f"rows marked (reference) come from {reference}, as given there (not re-run)")
    return rows or None, "; ".join(notes) or None


def _check_decodings(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in DECODINGS:
            raise ConfigError(f"--also-decode: unknown decoding {name!r}; choose from {', '.join(DECODINGS)}")


def _decode_note(base: Config, also_decode: tuple[str, ...]) -> str | None:
    extra = [d for d in also_decode if d != base.decode]
    if not extra:
        return None
    return (f"rows marked · {' / · '.join(extra)}: the same runs' best checkpoints (selected with {base.decode} "
            "decoding) scored with that decoding, without retraining")


def _join(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def compare(base: Config, methods: list[str], seeds: list[int], out: Path, paper: bool = False,
            echo: Callable[[str], None] = print, reference: str | Path | None = None,
            also_decode: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every (method, seed) with identical data, backbone and budget; Table 1 of the paper.

    ``also_decode``: decodings each run's best checkpoint is also scored with (extra rows)."""
    _check_decodings(also_decode)
    seeds = _seeds(seeds)
    references, note = _references(paper, reference, base, "compare")  # bad files fail before training
    started = time.perf_counter()
    specs = [RunSpec(m, s, {"method": m}) for m in methods for s in seeds]
    rows = run_grid(base, specs, out, "compare", echo, also_decode)
    note = _join(note, _decode_note(base, also_decode))
    _finish(out, "Comparison (paper Table 1 protocol)", "method", base, seeds, rows, started, references, note, echo)
    return rows


def ablation(base: Config, configs: list[str], seeds: list[int], out: Path, echo: Callable[[str], None] = print,
             paper: bool = False, reference: str | Path | None = None, also_decode: tuple[str, ...] = ()):
    """HCAL with its components switched on and off; Table 2 of the paper."""
    unknown = [c for c in configs if c not in ABLATIONS]
    if unknown:
        raise ConfigError(f"--configs: unknown configuration {unknown[0]!r}; choose from: {', '.join(ABLATIONS)}")
    _check_decodings(also_decode)
    seeds = _seeds(seeds)
    references, note = _references(paper, reference, base, "ablation")
    started = time.perf_counter()
    specs = [RunSpec(c, s, {"method": "hcal", **ABLATIONS[c], **_awa_off(base, ABLATIONS[c])})
             for c in configs for s in seeds]
    rows = run_grid(base.replace(method="hcal"), specs, out, "ablation", echo, also_decode)
    note = _join(note, _decode_note(base, also_decode))
    _finish(out, "Ablation (paper Table 2 protocol)", "configuration", base.replace(method="hcal"), seeds, rows,
            started, references, note, echo)
    return rows


def _awa_off(base: Config, row: dict) -> dict:
    """A row with AWA off takes AWA's options (``--gamma``) back to their defaults:
    given to the whole grid, they apply to its AWA rows."""
    if row.get("awa", base.awa):
        return {}
    return {name: option_field(name).default for name in weighting_options("awa")}


def sweep(base: Config, param: str, values: list[float], seeds: list[int], out: Path,
          echo: Callable[[str], None] = print, also_decode: tuple[str, ...] = ()):
    """One hyper-parameter over values (the paper's Fig. 5): CSV, table and a PNG line plot.

    ``also_decode``: decodings each run's best checkpoint is also scored with (extra rows and lines)."""
    if param not in sweepable_options():
        raise ConfigError(f"--param: cannot sweep {param!r}; choose one of: {', '.join(sweepable_options())}")
    if not values:
        raise ConfigError("--values: give at least one value, e.g. --values 0.1,0.5,1")
    for v in values:
        check_option(param, float(v), f"--values ({param})")
    _check_decodings(also_decode)
    seeds = _seeds(seeds)
    started = time.perf_counter()
    specs = [RunSpec(f"{param}={v:g}", s, {param: float(v)}, {param: float(v)}) for v in values for s in seeds]
    rows = run_grid(base, specs, out, f"sweep-{param}", echo, also_decode)
    png = out / f"sweep_{param}.png"
    plot_sweep(rows, param, png)
    _finish(out, f"Sweep of {param} (paper Fig. 5 protocol; method {base.method})", param, base, seeds, rows,
            started, None, _join(f"![{param} sweep]({png.name})", _decode_note(base, also_decode)), echo)
    return rows


def plot_sweep(rows: list[dict[str, Any]], param: str, path: Path) -> None:
    """ACC per level, full-path accuracy and HVR against the swept value, mean ± std over seeds.

    One panel per metric, each on its own y range: differences between swept values are often
    under a point, which a shared 0-100 % axis would hide.
    """
    plt = pyplot()
    columns = table_columns(rows)
    metrics = [c for c in columns if c.startswith("test/acc_l")] + ["test/full_path_acc", "test/hvr"]
    metrics = [c for c in metrics if any(r.get(c) is not None for r in rows)]
    by_decode: dict[str, dict[float, list[dict[str, Any]]]] = {}
    for r in rows:
        by_decode.setdefault(str(r.get("decode")), {}).setdefault(float(r[param]), []).append(r)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 3.2), dpi=120, sharex=True,
                             squeeze=False)
    xs_all = sorted({x for by_value in by_decode.values() for x in by_value})
    log_x = len(xs_all) > 1 and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 20
    for ax, c in zip(axes[0], metrics):
        for decode, by_value in by_decode.items():
            xs = sorted(by_value)
            stats = [summarise([{**r, "label": "x"} for r in by_value[x]], [c])[0].get(c, (float("nan"), 0.0))
                     for x in xs]
            ax.errorbar(xs, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats], marker="o", capsize=3,
                        linestyle="--" if c == "test/hvr" else "-", label=f"{decode} decoding")
        title = {"test/hvr": "HVR", "test/full_path_acc": "full path"}.get(c, "ACC$^{" + c[len("test/acc_l"):] + "}$")
        if log_x:
            ax.set_xscale("log")
        ax.set_title(f"{title} (%)", fontsize=9)
        ax.set_xlabel(param, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if len(by_decode) > 1:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(f"test metrics against {param} (mean ± std over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
