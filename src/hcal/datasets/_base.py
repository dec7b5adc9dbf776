from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError, warn
from ..hierarchy import Hierarchy
from ..inputs import InputSpec
from ..registry import Registry

DATASETS: Registry = Registry("dataset")
"""Every dataset registers ``options={KEY: type}``: the ``--dataset-arg`` keys its factory takes as keywords."""

SPLITS = ("train", "val", "test")


@dataclass
class DataBundle:
    """What a dataset factory returns: the three splits and what a model needs to know about them.

    Every split yields ``(x, y)`` with ``y`` a ``(m,)`` long tensor of class indices, finest first.
    """

    name: str
    hierarchy: Hierarchy
    input_spec: InputSpec
    train: Dataset
    val: Dataset
    test: Dataset
    default_backbone: str
    source: str = ""  # where the files were found, for the log


class TensorDataset(Dataset):
    """Samples held in memory as one tensor (uint8 images or float vectors), optionally transformed."""

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        indices: torch.Tensor | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"{inputs.shape[0]} inputs but {targets.shape[0]} targets")
        self.inputs, self.targets, self.transform = inputs, targets, transform
        self.indices = torch.arange(inputs.shape[0]) if indices is None else indices

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(self.indices[i])
        x = self.inputs[j]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.targets[j]


def resolve_data_file(data_dir: str | None, *, dataset: str, suffix: str, what: str, usage: str) -> Path:
    """``--data-dir`` as one ``suffix`` file: the file itself, or a folder holding exactly one such file."""
    if data_dir is None:
        raise DataError(f"dataset {dataset!r} needs --data-dir {usage}")
    path = Path(data_dir)
    if not path.exists():
        raise DataError(f"--data-dir {data_dir!r} does not exist")
    if path.is_dir():
        found = sorted(path.glob(f"*{suffix}"))
        if len(found) != 1:
            raise DataError(f"--data-dir {data_dir!r} is a folder with {len(found)} {suffix} files; give the {what} "
                            "file itself")
        path = found[0]
    return path


def split_indices(n: int, val_fraction: float, seed: int, held_out: str = "validation",
                  option: str = "--val-fraction ") -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random split of ``range(n)`` into (kept, held out); the same seed gives the same split.

    ``held_out`` and ``option`` name the part and the option that sets its fraction in messages (the
    validation split by default; the test hold-out of ``features`` and ``csv`` is
    ``--dataset-arg test_fraction``)."""
    n_val = int(round(n * val_fraction))
    if n_val < 1 or n_val >= n:
        kept = "training" if held_out == "validation" else "the other splits"
        raise ConfigError(
            f"{option}{val_fraction} of {n} sample(s) holds out {n_val} for {held_out} and keeps {n - n_val} for "
            f"{kept}; both need at least one (give more samples or another fraction)"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def split_index(sizes: dict[str, int], seed: int, val_fraction: float) -> dict[str, torch.Tensor]:
    """Indices of each split over samples stored split after split (train, [val,] test); without
    a val split, a seeded ``val_fraction`` of train."""
    index: dict[str, torch.Tensor] = {}
    offset = 0
    for s in SPLITS:
        if s in sizes:
            index[s] = torch.arange(offset, offset + sizes[s])
            offset += sizes[s]
    if "val" not in index:
        sub_train, sub_val = split_indices(len(index["train"]), val_fraction, seed)
        index["train"], index["val"] = index["train"][sub_train], index["train"][sub_val]
    return index


_ARG_KINDS = {bool: "true or false", int: "an integer", float: "a finite number"}


def _dataset_arg_value(kind: type, value: Any) -> Any:
    """``value`` as ``kind``; ValueError when it is not one: no truncation (2.5 is not an int), a bool only from
    true/false (YAML's yes/no/on/off too), never from any other string."""
    if isinstance(value, (dict, list)):
        raise ValueError
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError
        return value
    if isinstance(value, bool):  # True is no number
        raise ValueError
    if kind is int:
        if isinstance(value, str):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ValueError
        return value
    if kind is float:
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError
        return number
    return kind(value)


def check_dataset_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Dataset ``name``'s ``--dataset-arg`` values checked against the keys and types it registered."""
    allowed: dict[str, type] = DATASETS.get(name).extra.get("options", {})
    out = {}
    for key, value in args.items():
        if key not in allowed:
            raise ConfigError(
                f"dataset {name!r} has no option {key!r}; allowed: {', '.join(sorted(allowed)) or 'none'}"
            )
        kind = allowed[key]
        try:
            out[key] = _dataset_arg_value(kind, value)
        except (TypeError, ValueError):
            wanted = _ARG_KINDS.get(kind, f"a {kind.__name__}")
            raise ConfigError(f"dataset {name!r} option {key!r}: expected {wanted}, got {value!r}") from None
    return out


def _split_targets(dataset: Dataset) -> torch.Tensor | None:
    """The ``(n, m)`` targets of a split, when its dataset holds them as hcal's do (else None: not read)."""
    targets, indices = getattr(dataset, "targets", None), getattr(dataset, "indices", None)
    if isinstance(targets, torch.Tensor) and isinstance(indices, torch.Tensor):
        return targets[indices]
    return None


def check_training_data(bundle: DataBundle, quiet: bool = False) -> None:
    """Refuse a level with a single class; warn (unless ``quiet``) of classes without a training sample."""
    h = bundle.hierarchy
    for k, names in enumerate(h.classes):
        if len(names) == 1:
            raise DataError(
                f"{bundle.source or bundle.name}: level {k + 1} of {h.num_levels} has one class only ({names[0]!r}); "
                "a level with one class tells nothing and inflates the mean accuracy and hF1; drop it from the labels"
            )
    targets = _split_targets(bundle.train)
    if targets is None or quiet:
        return
    missing = [f"{names[i]!r} (level {k + 1})" for k, names in enumerate(h.classes)
               for i in (torch.bincount(targets[:, k], minlength=len(names)) == 0).nonzero().flatten().tolist()]
    if missing:
        shown = ", ".join(missing[:8]) + (f", ... ({len(missing)} in all)" if len(missing) > 8 else "")
        n = len(missing)
        warn(f"{n} class{'es have' if n > 1 else ' has'} no training sample, so the model cannot learn "
             f"{'them' if n > 1 else 'it'}: {shown} (an empty class folder, a class only in the test or validation "
             "split, or a hierarchy file with classes the data lacks)")
