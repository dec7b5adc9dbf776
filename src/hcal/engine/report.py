"""Plain text for the terminal: result tables, durations."""

from __future__ import annotations

from collections.abc import Mapping

from ..metrics import metric_names

__all__ = ["format_table", "format_duration"]


def format_duration(seconds: float) -> str:
    """``4m05s``, or ``1h02m`` from an hour on."""
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _label(key: str) -> str:
    if key.startswith("acc_l"):
        return f"ACC^{key[5:]} (level {key[5:]}{', finest' if key == 'acc_l1' else ''})"
    if key.startswith("hvr_l"):
        a, b = key[5:].split("_l")
        return f"  violations levels {a}-{b}"
    return {
        "acc_mean": "ACC mean over levels",
        "hvr": "HVR (lower is better)",
        "full_path_acc": "full-path accuracy",
        "hp": "hierarchical precision (ancestor sets)",
        "hr": "hierarchical recall (ancestor sets)",
        "hf1": "hierarchical F1 (ancestor sets)",
        "hp_hiclass": "hierarchical precision (HiClass's)",
        "hr_hiclass": "hierarchical recall (HiClass's)",
        "hf1_hiclass": "hierarchical F1 (HiClass's)",
    }.get(key, key)


def format_table(metrics: Mapping[str, float], prefix: str, num_levels: int, title: str = "") -> str:
    """A two-column table of the ``prefix/...`` metrics: ACC per level, HVR, full-path accuracy, hF1."""
    rows = [(_label(k), metrics[f"{prefix}/{k}"]) for k in metric_names(num_levels) if f"{prefix}/{k}" in metrics]
    width = max(len(r[0]) for r in rows)
    lines = [title] if title else []
    lines.append(f"{'metric':<{width}}  {prefix}")
    lines.append("-" * (width + 2 + max(len(prefix), 6)))
    lines += [f"{name:<{width}}  {value:.4f}" for name, value in rows]
    return "\n".join(lines)
