"""A tiny hierarchical dataset generated in memory (seeded): for tests and smoke runs.

Class centres are drawn down the tree: each root gets a random centre, each child its parent's
centre plus a smaller random offset, and samples are a leaf's centre plus Gaussian noise. The
tree has ``levels`` levels with ``branching`` children per node (``branching ** levels`` leaves).
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..hierarchy import Hierarchy
from ..inputs import InputSpec
from ._base import DATASETS, DataBundle, TensorDataset, split_indices

MAX_LEAVES = 100_000  # branching ** levels
MAX_BYTES = 4 * 2**30  # the samples and class centres, as float32


def _check_sizes(levels: int, branching: int, dim: int, train_size: int, test_size: int) -> None:
    """Refuse, before anything is allocated, a tree or a data set too large to build in memory."""
    leaves = 1
    for _ in range(levels):  # at most log2(MAX_LEAVES) + 1 steps: no huge power is computed
        leaves *= branching
        if leaves > MAX_LEAVES:
            break
    if leaves > MAX_LEAVES:
        raise ConfigError(
            f"synthetic dataset: levels={levels}, branching={branching} give {branching}**{levels} leaf classes; "
            f"at most {MAX_LEAVES} (fewer levels or a smaller branching)"
        )
    need = 4 * dim * (train_size + test_size + 2 * leaves)
    if need > MAX_BYTES:
        raise ConfigError(
            f"synthetic dataset: dim={dim} with train_size={train_size}, test_size={test_size} and "
            f"{leaves} leaves needs {need / 2**30:.1f} GiB of memory; at most {MAX_BYTES // 2**30} GiB "
            "(a smaller dim, train_size or test_size)"
        )


def make_synthetic(levels: int = 3, branching: int = 2, dim: int = 16, train_size: int = 1200,
                   test_size: int = 400, noise: float = 1.0, data_seed: int = 0):
    """Returns ``(hierarchy, x_train, y_train, x_test, y_test)``."""
    if levels < 2 or branching < 2 or dim < 1 or train_size < 2 or test_size < 1 or noise < 0:
        raise ConfigError(
            "synthetic dataset: need levels >= 2, branching >= 2, dim >= 1, train_size >= 2, test_size >= 1, "
            f"noise >= 0; got levels={levels}, branching={branching}, dim={dim}, train_size={train_size}, "
            f"test_size={test_size}, noise={noise}"
        )
    _check_sizes(levels, branching, dim, train_size, test_size)
    g = torch.Generator().manual_seed(data_seed)
    names = [[f"c{i}"] for i in range(branching)]
    centres = [torch.randn(dim, generator=g) * 4.0 for _ in range(branching)]
    scale = 4.0
    for _ in range(levels - 1):
        scale /= 2
        names = [p + [f"{p[-1]}.{i}"] for p in names for i in range(branching)]
        centres = [c + torch.randn(dim, generator=g) * scale for c in centres for _ in range(branching)]
    hierarchy = Hierarchy(names)
    leaves = torch.stack(centres)
    paths = hierarchy.leaf_paths()

    def sample(n: int):
        leaf = torch.randint(len(names), (n,), generator=g)
        return leaves[leaf] + noise * torch.randn(n, dim, generator=g), paths[leaf]

    x_train, y_train = sample(train_size)
    x_test, y_test = sample(test_size)
    return hierarchy, x_train, y_train, x_test, y_test


@DATASETS.register(
    "synthetic",
    description="tiny seeded Gaussian hierarchy in memory (levels=3, branching=2, 16-d vectors); for tests",
    options={"levels": int, "branching": int, "dim": int, "train_size": int, "test_size": int, "noise": float,
             "data_seed": int},
)
def synthetic(data_dir: str | None = None, *, seed: int = 0, val_fraction: float = 0.1, **options) -> DataBundle:
    hierarchy, x_train, y_train, x_test, y_test = make_synthetic(**options)
    train_idx, val_idx = split_indices(x_train.shape[0], val_fraction, seed)
    return DataBundle(
        name="synthetic",
        hierarchy=hierarchy,
        input_spec=InputSpec(kind="vector", dim=x_train.shape[1]),
        train=TensorDataset(x_train, y_train, train_idx),
        val=TensorDataset(x_train, y_train, val_idx),
        test=TensorDataset(x_test, y_test),
        default_backbone="mlp",
        source="generated in memory",
    )
