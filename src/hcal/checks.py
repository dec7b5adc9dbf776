"""Checks of a configuration against what is registered, run before any data or checkpoint is loaded.

:class:`~hcal.config.Config` checks each value on its own (types, ranges, choices); here, what needs
the registries: the method, backbone, dataset and weighting names, the dataset's options, the
monitored metric's form, and that every method-specific option set away from its default is one the
chosen method uses. ``fit``, ``test``, ``predict``, ``visualize`` and every experiment call
:func:`check_config` first, so a misspelt name costs nothing, not a data load.
"""

from __future__ import annotations

import re

from .backbones import BACKBONES
from .config import Config, flag, option_field
from .datasets import check_dataset_args
from .errors import ConfigError
from .methods import METHODS
from .metrics import metric_names
from .weighting import WEIGHTINGS
from .weighting._base import GradientWeighting

__all__ = ["check_config", "check_monitor", "method_options", "weighting_options"]


def method_weightings(method: str) -> tuple[str, ...]:
    """The weightings method ``method`` may train with (registered with it; default: equal weights)."""
    return tuple(METHODS.get(method).extra.get("weightings", ("equal",)))


def weighting_options(name: str) -> set[str]:
    """The Config fields weighting ``name`` reads (e.g. AWA's ``gamma``)."""
    return set(WEIGHTINGS.get(name).extra.get("options", {}).values())


def method_options(method: str) -> set[str]:
    """The Config fields method ``method`` reads beyond the shared ones: its own and its weightings'."""
    own = set(METHODS.get(method).extra.get("options", ()))
    for name in method_weightings(method):
        own |= weighting_options(name)
    return own


def _method_specific_options() -> list[str]:
    names: set[str] = set()
    for method in METHODS.names():
        names |= method_options(method)
    return sorted(names)


def _check_method_options(config: Config) -> None:
    """An option the method does not read, set away from its default, is refused rather than ignored."""
    used = method_options(config.method)
    ignored = [name for name in _method_specific_options()
               if name not in used and getattr(config, name) != option_field(name).default]
    if not ignored:
        return
    flags = [flag(name, getattr(config, name)) for name in ignored]
    users = [", ".join(m for m in METHODS.names() if name in method_options(m)) for name in ignored]
    applies = "; ".join(f"{f} applies to {u}" for f, u in zip(flags, users))
    hint = " (an independent model per level is --method single)" if "mtl" in ignored else ""
    raise ConfigError(
        f"{', '.join(flags)}: {'does' if len(flags) == 1 else 'do'} not apply to method {config.method!r} "
        f"({applies}); drop {'it' if len(flags) == 1 else 'them'}{hint}"
    )


def check_monitor(monitor: str, num_levels: int | None = None) -> None:
    """``monitor`` must be a validation metric: of a ``num_levels``-level hierarchy, or (None) of any."""
    name = monitor.removeprefix("val/") if monitor.startswith("val/") else None
    if num_levels is not None:
        allowed = [f"val/{k}" for k in metric_names(num_levels)]
        ok = monitor in allowed
    else:  # the form only: level numbers are checked once the data says how many levels there are
        allowed = [f"val/{k}" for k in metric_names(2)] + ["..."]
        ok = name is not None and re.sub(r"\d+", "#", name) in {re.sub(r"\d+", "#", k) for k in metric_names(2)}
    if not ok:
        raise ConfigError(f"--monitor {monitor!r} is not a validation metric; choose one of: {', '.join(allowed)}")


def check_config(config: Config) -> None:
    """Every name in ``config`` is registered, its dataset options exist, its options fit its method."""
    METHODS.get(config.method)
    if config.backbone != "auto":
        BACKBONES.get(config.backbone)
    for name in method_weightings(config.method):
        WEIGHTINGS.get(name)
    _check_shared_parameters(config)
    check_dataset_args(config.dataset, config.dataset_args)  # also: the dataset is registered
    check_monitor(config.monitor)
    _check_method_options(config)
    _check_awa_options(config)
    _check_projection(config)


def _check_awa_options(config: Config) -> None:
    """AWA's own options (``--gamma``) mean nothing with ``--no-awa``: refused, not ignored."""
    if config.awa or "awa" not in method_weightings(config.method):
        return
    set_ = [n for n in sorted(weighting_options("awa")) if getattr(config, n) != option_field(n).default]
    if set_:
        flags = ", ".join(f"{flag(n)} {getattr(config, n)}" for n in set_)
        raise ConfigError(f"{flags}: AWA's option{'s' if len(set_) > 1 else ''}, but --no-awa switches AWA off "
                          "(fixed weights 1/m); drop one of them")


def _check_projection(config: Config) -> None:
    """``--embed-dim`` means nothing with ``--projection none`` (the backbone's width is the embedding's)."""
    if config.projection == "none" and config.embed_dim != option_field("embed_dim").default:
        raise ConfigError(f"--embed-dim {config.embed_dim}: not used with --projection none (the embedding is the "
                          "backbone's features, of its width); drop one of them")


def _check_shared_parameters(config: Config) -> None:
    """A weighting of the levels' gradients on the backbone's parameters needs a backbone that has some."""
    if config.backbone == "auto" or BACKBONES.get(config.backbone).extra.get("parameters", True):
        return
    for name in method_weightings(config.method):
        weighting = WEIGHTINGS.get(name).obj
        if isinstance(weighting, type) and issubclass(weighting, GradientWeighting):
            raise ConfigError(
                f"method {config.method!r} combines the levels' gradients on the backbone's parameters "
                f"(weighting {name!r}), but backbone {config.backbone!r} has none; use a backbone with "
                "parameters (e.g. mlp) or a loss-weighting method"
            )
