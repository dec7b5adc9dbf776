"""hcal: hierarchy-consistent hierarchical classification (HCAL, CIKM 2025, and baselines).

Every sample carries one label on each level of a class tree; level 1 is the finest.
Start with :class:`Hierarchy`, :class:`Config` and :func:`fit` (or the scikit-learn estimator
:class:`HierarchicalClassifier`); plug-ins live in the registries
:data:`METHODS`, :data:`BACKBONES`, :data:`DATASETS` and :data:`WEIGHTINGS`.
"""

__version__ = "0.1.0"

from .backbones import BACKBONES, create_backbone
from .config import Config
from .datasets import DATASETS, DataBundle, create_dataset
from .decoding import decode
from .engine import evaluate, export, fit, predict
from .errors import CheckpointError, ConfigError, DataError, HcalError, HierarchyError
from .estimator import HierarchicalClassifier
from .hierarchy import Hierarchy
from .methods import METHODS, HierarchicalMethod, create_method
from .metrics import HierarchicalMetrics
from .registry import Registry
from .weighting import WEIGHTINGS, Weighting, create_weighting

__all__ = [
    "__version__",
    "Hierarchy",
    "Config",
    "Registry",
    "METHODS",
    "BACKBONES",
    "DATASETS",
    "WEIGHTINGS",
    "HierarchicalMethod",
    "Weighting",
    "DataBundle",
    "HierarchicalMetrics",
    "HierarchicalClassifier",
    "create_method",
    "create_backbone",
    "create_dataset",
    "create_weighting",
    "decode",
    "fit",
    "evaluate",
    "predict",
    "export",
    "HcalError",
    "ConfigError",
    "DataError",
    "HierarchyError",
    "CheckpointError",
]
