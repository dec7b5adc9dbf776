"""A scikit-learn estimator, :class:`HierarchicalClassifier`: ``fit(X, Y)`` and ``predict(X)`` on data in memory.

``X`` is an ``(n, d)`` array of feature vectors, or a torch ``Dataset`` of images (``(C, S, S)``
tensors, uint8 or floats in [0, 1]; an item may be an ``(image, ...)`` tuple, whose first entry is
taken). ``Y`` holds one label path per sample, **coarsest level first**: an ``(n, m)`` array (a column
per level, as HiClass takes it), or ``n`` strings ``"Animal/Pet/cat"`` joined by ``separator``; then
``predict`` returns joined strings too. Labels keep their type (strings, integers).

``fit`` trains through hcal's own engine, :func:`hcal.fit`, with the same Config, Lightning module,
Trainer and model selection as ``hcal fit``: a seeded ``val_fraction`` of the samples is held out and
the best epoch on it (``monitor``) is kept. The run directory is a temporary one, removed when
``fit`` returns (with ``run_dir=PATH`` the run is kept there, replaced by a later fit, and ``hcal
predict``, ``hcal test`` or ``hcal export`` read its checkpoint); the trained model stays in memory,
in ``module_``, and pickles with the estimator. Quiet unless ``verbose=True``.
"""

from __future__ import annotations

import copy
import inspect
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, validate_data
from torch.utils.data import DataLoader, Dataset

from .config import Config, check_option, option_fields
from .datasets import DataBundle, TensorDataset, split_indices
from .errors import ConfigError
from .hierarchy import Hierarchy
from .inputs import InputSpec
from .quiet import lightning_quietly

__all__ = ["HierarchicalClassifier"]

NOT_PARAMETERS = ("dataset", "data_dir", "dataset_args", "augment_on", "devices", "num_nodes", "strategy", "progress")
"""Config options that name a dataset on disk, distribute training or draw a progress bar: not the estimator's."""
CONFIG_PARAMETERS = tuple(f.name for f in option_fields() if f.name not in NOT_PARAMETERS)


def _silent(*args: Any, **kwargs: Any) -> None:
    pass


def _first(item: Any) -> Any:
    return item[0] if isinstance(item, (tuple, list)) else item


class _Images(Dataset):
    """The images of a user's dataset (``(image, ...)`` items: the image), with targets when training."""

    def __init__(self, images: Dataset, targets: torch.Tensor | None = None, indices: torch.Tensor | None = None):
        self.images, self.targets = images, targets
        self.indices = torch.arange(len(images)) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        x = _first(self.images[j])
        return x if self.targets is None else (x, self.targets[j])


def _image_spec(images: Dataset) -> InputSpec:
    x = _first(images[0]) if len(images) else None
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[0] not in (1, 3) or x.shape[1] != x.shape[2]:
        got = f"a tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"X: a Dataset must give square (C, S, S) image tensors with C 1 or 3, uint8 or floats in "
                         f"[0, 1] (e.g. transform=torchvision.transforms.v2.PILToTensor()); its first item is {got}")
    return InputSpec(kind="image", channels=int(x.shape[0]), size=int(x.shape[1]))


class HierarchicalClassifier(ClassifierMixin, BaseEstimator):
    """Hierarchical classification with hcal's methods (HCAL by default) behind the scikit-learn API.

    Parameters (keyword-only; defaults as ``hcal fit``'s, whose ``--help`` describes each):
    ``method`` ("hcal"), ``backbone`` ("auto": mlp for vectors, small-cnn/resnet18 for images),
    ``epochs`` (10), ``batch_size`` (32), ``lr``, ``decode`` ("nearest" or "consistent"), ``device``
    ("auto", "cpu", "cuda"), ``seed`` (0), ``val_fraction`` (0.1), ``monitor``, ``run_dir`` (None: a
    temporary run) and every other option of :class:`~hcal.config.Config` but those in
    :data:`NOT_PARAMETERS`; ``separator`` ("/": of label paths given as strings); ``verbose``
    (False: nothing printed; True: hcal fit's lines and, on a terminal, its progress bar).

    Fitted attributes: ``hierarchy_`` (the :class:`~hcal.Hierarchy`, its classes in ``classes_``'s
    order), ``classes_`` (per level, coarsest first as ``Y``'s columns, an array of the labels),
    ``module_`` (the trained :class:`~hcal.engine.HierarchicalModule`, best epoch), ``config_`` (the
    :class:`~hcal.Config` it trained with), ``n_features_in_`` (vectors), ``paths_joined_``.
    """

    def __init__(self, **params: Any) -> None:
        bound = _SIGNATURE.bind(self, **params)  # a TypeError for an unknown name, as a written-out signature gives
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # one column per level
        tags.target_tags.single_output = False  # a hierarchy has at least two levels
        return tags

    # ------------------------------------------------------------------ targets
    def _label_paths(self, Y: Any) -> tuple[np.ndarray, bool]:
        """``(n, m)`` label paths, coarsest first, and whether they were given as joined strings."""
        Y = check_array(Y, dtype=None, ensure_2d=False, input_name="y")
        if Y.ndim == 2:
            for j in range(Y.shape[1]):
                check_classification_targets(Y[:, j])
        joined = Y.ndim == 1
        if joined:
            if not all(isinstance(y, str) for y in Y):
                raise ValueError(f"y: a 1-d target must hold label paths joined by separator {self.separator!r} "
                                 f"(e.g. 'Animal{self.separator}Pet{self.separator}cat'), got {Y[:3].tolist()!r}; "
                                 "or give an (n, m) array of label paths, coarsest level first")
            parts = [y.split(self.separator) for y in Y]
            widths = {len(p) for p in parts}
            if len(widths) > 1:
                i = next(i for i, p in enumerate(parts) if len(p) != len(parts[0]))
                raise ValueError(f"y: row {i} ({str(Y[i])!r}) has {len(parts[i])} levels but row 0 ({str(Y[0])!r}) has "
                                 f"{len(parts[0])}; every path needs one label per level")
            Y = np.array(parts, dtype=object)
        if Y.ndim != 2 or Y.shape[1] < 2:
            raise ValueError(f"y: expected label paths of at least 2 levels, (n, m) with m >= 2 (coarsest level first) "
                             f"or strings joined by separator {self.separator!r}; got shape {Y.shape}")
        return Y, joined

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> "HierarchicalClassifier":
        from .engine.module import HierarchicalModule
        from .engine.runner import fit as run_fit

        options = {name: check_option(name, getattr(self, name), f"HierarchicalClassifier({name}=...)")
                   for name in CONFIG_PARAMETERS}
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        images = isinstance(X, Dataset) or getattr(X, "ndim", None) == 4
        if images:
            X = X if isinstance(X, Dataset) else torch.as_tensor(np.asarray(X))
            spec = _image_spec(X)
        else:
            X = validate_data(self, X, dtype=np.float32)
            spec = InputSpec(kind="vector", dim=X.shape[1])
        paths, joined = self._label_paths(y)
        check_consistent_length(X, paths)
        classes = [np.unique(paths[:, j]) for j in range(paths.shape[1])]
        codes = np.stack([np.searchsorted(c, paths[:, j]) for j, c in enumerate(classes)], axis=1)  # coarsest first
        names = [[str(c) for c in level] for level in classes]
        tree = Hierarchy([tuple(names[j][i] for j, i in enumerate(row)) for row in np.unique(codes, axis=0)],
                         levels=names)
        targets = torch.as_tensor(codes[:, ::-1].copy(), dtype=torch.long)  # finest first, as hcal's engine takes them
        config = Config(**options, dataset="folder" if images else "features", progress=bool(self.verbose))
        try:
            train, val = split_indices(len(targets), config.val_fraction, config.seed)
        except ConfigError:
            n, n_val = len(targets), round(len(targets) * config.val_fraction)
            raise ValueError(f"{n} sample{'s' if n != 1 else ''}: val_fraction={config.val_fraction} holds out {n_val} "
                             f"to select the best epoch and leaves {n - n_val} to train on; both need at least one"
                             ) from None
        if images:
            splits = [_Images(X, targets, idx) for idx in (train, val)]
            default_backbone = "small-cnn" if spec.size <= 64 else "resnet18"
        else:
            inputs = torch.as_tensor(X)
            splits = [TensorDataset(inputs, targets, idx) for idx in (train, val)]
            default_backbone = "mlp"
        # no test split: hcal fit's closing evaluation runs on the validation samples
        bundle = DataBundle(name="arrays", hierarchy=tree, input_spec=spec, train=splits[0], val=splits[1],
                            test=splits[1], default_backbone=default_backbone, source="given in memory")
        with tempfile.TemporaryDirectory(prefix="hcal-estimator-") as tmp, lightning_quietly():  # as hcal fit is
            run_dir = Path(self.run_dir) if self.run_dir else Path(tmp) / "run"
            result = run_fit(config.replace(run_dir=str(run_dir)), overwrite=True, bundle=bundle,
                             echo=print if self.verbose else _silent)
            self.module_, ckpt = HierarchicalModule.from_checkpoint(result.best_checkpoint)
        self.config_ = Config.from_dict(ckpt["hyper_parameters"]["config"]).replace(run_dir=self.run_dir)
        self.hierarchy_, self.classes_, self.paths_joined_ = tree, classes, joined
        return self

    # ------------------------------------------------------------------ predict
    def _outputs(self, X: Any) -> tuple[torch.Tensor, ...]:
        from .engine.predictions import Predictor, run_predictor

        check_is_fitted(self)
        predictor = Predictor(self.module_, self.decode)
        if self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available()):
            predictor = copy.deepcopy(predictor).to("cuda")  # module_ stays on the CPU, where it pickles
        if self.module_.input_spec.kind == "image":
            images = X if isinstance(X, Dataset) else torch.as_tensor(np.asarray(X))
            batches = DataLoader(_Images(images), batch_size=256, num_workers=self.num_workers)
        else:
            batches = torch.as_tensor(validate_data(self, X, dtype=np.float32, reset=False)).split(256)
        return run_predictor(predictor, batches)

    def predict(self, X: Any) -> np.ndarray:
        """``(n, m)`` label paths, coarsest level first (or joined strings, if ``fit`` was given them)."""
        labels = self._outputs(X)[0].numpy()
        m = len(self.classes_)
        dtypes = {c.dtype for c in self.classes_}
        paths = np.empty((len(labels), m), dtype=dtypes.pop() if len(dtypes) == 1 else object)
        for j, classes in enumerate(self.classes_):
            paths[:, j] = classes[labels[:, m - 1 - j]]
        if self.paths_joined_:
            return np.array([self.separator.join(map(str, row)) for row in paths], dtype=object)
        return paths

    def predict_proba(self, X: Any) -> list[np.ndarray]:
        """Per level, coarsest first, ``(n, len(classes_[j]))`` probabilities, columns in ``classes_[j]``'s order."""
        probs = self._outputs(X)[3:]
        return [probs[len(probs) - 1 - j].numpy().astype(np.float64) for j in range(len(probs))]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Full-path accuracy: the fraction of samples with every level right."""
        (predicted, _), (truth, _) = self._label_paths(self.predict(X)), self._label_paths(y)
        right = np.all(predicted.astype(object) == truth.astype(object), axis=1)
        return float(np.average(right, weights=sample_weight))


_SIGNATURE = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default) for f in option_fields()
       if f.name in CONFIG_PARAMETERS]
    + [inspect.Parameter("separator", inspect.Parameter.KEYWORD_ONLY, default="/"),
       inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False)]
)
HierarchicalClassifier.__init__.__signature__ = _SIGNATURE  # what get_params, clone and help() read
