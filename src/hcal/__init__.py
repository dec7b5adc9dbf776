"""hcal: hierarchy-consistent hierarchical classification (HCAL, CIKM 2025, and baselines).

Every sample carries one label on each level of a class tree; level 1 is the finest.
Start with :class:`Hierarchy`, :class:`Config` and :func:`fit` (or the scikit-learn estimator
:class:`HierarchicalClassifier`); plug-ins live in the registries
:data:`METHODS`, :data:`BACKBONES`, :data:`DATASETS` and :data:`WEIGHTINGS`.

The names below are imported on first use (``from hcal import fit`` imports the engine then), so
``import hcal`` and ``hcal --help`` do not load torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module (under hcal) that defines it
_EXPORTS = {
    "Hierarchy": "hierarchy",
    "Config": "config",
    "Registry": "registry",
    "METHODS": "methods",
    "BACKBONES": "backbones",
    "DATASETS": "datasets",
    "WEIGHTINGS": "weighting",
    "HierarchicalMethod": "methods",
    "Weighting": "weighting",
    "DataBundle": "datasets",
    "HierarchicalMetrics": "metrics",
    "create_method": "methods",
    "create_backbone": "backbones",
    "create_dataset": "datasets",
    "create_weighting": "weighting",
    "decode": "decoding",
    "fit": "engine",
    "evaluate": "engine",
    "predict": "engine",
    "export": "engine",
    "HierarchicalClassifier": "estimator",
    "HcalError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "HierarchyError": "errors",
    "CheckpointError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hcal' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
