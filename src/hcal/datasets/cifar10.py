"""CIFAR-10 (Krizhevsky, 2009) with the three-level hierarchy of B-CNN (Zhu & Bain, 2017).

Level 3: transport = {airplane, automobile, ship, truck}, animal = {bird, cat, deer, dog, frog,
horse}. Level 2: sky = {airplane}, water = {ship}, road = {automobile, truck}, bird = {bird},
reptile = {frog}, pet = {cat, dog}, medium = {deer, horse}. Level 1: the ten classes (``bird`` is
a class on levels 1 and 2).

A preset of the ``folder`` dataset (its loader, :mod:`hcal.datasets._image_folder`), layout (b) with
this hierarchy built in: ``--data-dir`` is a
folder ``train/<class>/*.jpg``, ``test/<class>/*.jpg`` (e.g. the CIFAR-10 JPEG folders), or a
``.tar``/``.tar.gz`` of it, read in one sequential pass without unpacking. The 60,000 images are
decoded once at load into one uint8 tensor (about 180 MB; a few seconds) and served from memory.

Training augmentation: random crop 32 with padding 4, horizontal flip; CIFAR-10 mean/std.
Default backbone ``resnet18-cifar``; ``--dataset-arg size=N`` resizes (default 32).
"""

from __future__ import annotations

from ..hierarchy import Hierarchy
from ._base import DATASETS, DataBundle
from ._image_folder import load_image_folder

__all__ = ["CIFAR10_PATHS", "cifar10_hierarchy"]

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

# Leaf paths, coarsest first, in CIFAR-10's label order 0..9.
CIFAR10_PATHS = [
    ("transport", "sky", "airplane"),
    ("transport", "road", "automobile"),
    ("animal", "bird", "bird"),
    ("animal", "pet", "cat"),
    ("animal", "medium", "deer"),
    ("animal", "pet", "dog"),
    ("animal", "reptile", "frog"),
    ("animal", "medium", "horse"),
    ("transport", "water", "ship"),
    ("transport", "road", "truck"),
]


def cifar10_hierarchy() -> Hierarchy:
    return Hierarchy(
        CIFAR10_PATHS,
        levels=[
            ["transport", "animal"],
            ["sky", "water", "road", "bird", "reptile", "pet", "medium"],
            [p[-1] for p in CIFAR10_PATHS],
        ],
    )


@DATASETS.register(
    "cifar10",
    description="CIFAR-10 from JPEG folders or their .tar.gz, 3 levels: 2 > 7 > 10 (B-CNN hierarchy); --data-dir ROOT",
    reference="Krizhevsky 2009; hierarchy: Zhu & Bain 2017 (B-CNN)",
    options={"size": int},
)
def cifar10(data_dir: str | None = None, *, seed: int = 0, val_fraction: float = 0.1, size: int = 32) -> DataBundle:
    return load_image_folder(
        data_dir,
        name="cifar10",
        seed=seed,
        val_fraction=val_fraction,
        hierarchy=cifar10_hierarchy(),
        hierarchy_source="the cifar10 preset's hierarchy",
        size=size,
        in_memory=True,
        mean=MEAN,
        std=STD,
        default_backbone="resnet18-cifar",
    )
