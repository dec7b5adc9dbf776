"""FGVC-Aircraft 2013b (Maji et al., 2013): aircraft photos labelled variant < family < manufacturer.

The official release layout: ``fgvc-aircraft-2013b/data/images/<id>.jpg``, the label files
``images_{variant,family,manufacturer}_{train,val,trainval,test}.txt`` (lines ``<id> <name>``;
names have spaces and slashes, e.g. ``F/A-18``), ``images_box.txt`` (``<id> xmin ymin xmax ymax``,
1-based, inclusive) and, optionally, ``variants.txt``/``families.txt``/``manufacturers.txt`` (the
class order). ``--data-dir`` is ``fgvc-aircraft-2013b``, its ``data`` folder, or their parent.

Levels: three, variant (100) > family (70) > manufacturer (30), taken from the label files; or,
with ``--dataset-arg levels=2``, the paper's family > manufacturer.
``--dataset-arg train_split=trainval`` (default) trains on train+val and carves the validation
split from it (seeded ``val_fraction``); ``train_split=train`` trains on train and selects on the
official val. Test is the official test split either way.

Every image loses the 20-pixel copyright banner at its bottom (as the release asks);
``--dataset-arg bbox=true`` also crops it to the aircraft's bounding box.

The paper's transforms at 224 px (``--dataset-arg size=N`` to change): training
``RandomResizedCrop(224)`` + horizontal flip; evaluation: resize the shorter side to 256, centre
crop 224 (the input spec's geometry, so ``hcal predict`` matches; give it banner-free images);
ImageNet mean/std. Default backbone ``resnet18`` (ImageNet stem).

Images (about 1-2 MP each) are decoded per item, in the data-loader workers. The label files are
read once, and every listed image is checked to exist at load (one folder listing); an image
that is corrupt stops training with a message naming the file (``verify=true`` decodes all of
them at load instead). Nothing is skipped silently.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from ..errors import ConfigError, DataError, HierarchyError
from ..hierarchy import Hierarchy
from ._base import DATASETS, DataBundle, split_index
from ._image_bundle import ImageSamples, build_image_bundle, check_image_options
from ._images import image_spec

__all__ = ["locate_aircraft", "read_label_file"]

LEVELS = ("manufacturer", "family", "variant")  # coarsest first
CLASS_LISTS = {"manufacturer": "manufacturers.txt", "family": "families.txt", "variant": "variants.txt"}
BANNER_PX = 20


def locate_aircraft(data_dir: str | None) -> Path:
    """The release's ``data`` folder (holding ``images/`` and the label files)."""
    if data_dir is None:
        raise DataError("dataset 'fgvc-aircraft' needs --data-dir pointing at fgvc-aircraft-2013b (the official "
                        "release, unpacked)")
    root = Path(data_dir)
    if not root.exists():
        raise DataError(f"--data-dir {data_dir!r} does not exist")
    for candidate in (root, root / "data", root / "fgvc-aircraft-2013b" / "data"):
        if (candidate / "images_variant_test.txt").is_file() or (candidate / "images_family_test.txt").is_file():
            if not (candidate / "images").is_dir():
                raise DataError(f"{candidate}: the label files are there but the images/ folder is missing; unpack the "
                                "full release (2.6 GB), not only the annotations")
            return candidate
    raise DataError(
        f"--data-dir {data_dir!r}: no FGVC-Aircraft release found (expected "
        "fgvc-aircraft-2013b/data/images_variant_test.txt and data/images/); download fgvc-aircraft-2013b.tar.gz "
        "from https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ and unpack it"
    )


def read_label_file(path: Path) -> dict[str, tuple[str, int]]:
    """``image id -> (name, line number)`` from lines ``<id> <name with spaces>``."""
    if not path.is_file():
        raise DataError(f"{path} is missing; it is part of the official release, unpack the full archive again")
    out: dict[str, tuple[str, int]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path} cannot be read: {e}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        image_id, _, name = line.strip().partition(" ")
        name = name.strip()
        if not name:
            raise DataError(f"{path}, line {n}: expected '<image id> <class name>', got {line.strip()!r}")
        if out.setdefault(image_id, (name, n))[0] != name:
            raise DataError(f"{path}, line {n}: image {image_id} is labelled {name!r} here but {out[image_id][0]!r} on "
                            f"line {out[image_id][1]}")
    if not out:
        raise DataError(f"{path} lists no images; the split needs at least one")
    return out


def read_boxes(path: Path) -> dict[str, tuple[int, int, int, int]]:
    if not path.is_file():
        raise DataError(f"{path} is missing; bbox=true needs the release's images_box.txt")
    boxes = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            xmin, ymin, xmax, ymax = (int(float(v)) for v in parts[1:])
        except ValueError:
            raise DataError(f"{path}, line {n}: expected '<image id> xmin ymin xmax ymax', got "
                            f"{line.strip()!r}") from None
        if xmax < xmin or ymax < ymin:
            raise DataError(f"{path}, line {n}: box ({xmin}, {ymin}, {xmax}, {ymax}) is empty (xmax < xmin or ymax < "
                            "ymin)")
        boxes[parts[0]] = (xmin - 1, ymin - 1, xmax, ymax)  # 1-based inclusive -> 0-based, exclusive end
    return boxes


def _class_order(data: Path, level: str, seen: set[str]) -> list[str]:
    listed = data / CLASS_LISTS[level]
    lines = listed.read_text(encoding="utf-8").splitlines() if listed.is_file() else []
    names = [line.strip() for line in lines if line.strip()]
    order = [n for n in dict.fromkeys(names) if n in seen]
    return order + sorted(seen - set(order))


def _read_splits(data: Path, level_names: tuple[str, ...], splits: list[str]):
    """Per split the image ids and their label paths (coarsest first), every listed image checked to exist."""
    images_dir = data / "images"
    present = set(os.listdir(images_dir))
    ids: dict[str, list[str]] = {}
    names: dict[str, list[tuple[str, ...]]] = {}
    finest = level_names[-1]
    for split in splits:
        files = {level: data / f"images_{level}_{split}.txt" for level in level_names}
        tables = {level: read_label_file(f) for level, f in files.items()}
        ids[split] = list(tables[finest])
        for level in level_names[:-1]:
            extra = [i for i in tables[level] if i not in tables[finest]]
            missing = [i for i in tables[finest] if i not in tables[level]]
            if missing or extra:
                i, f = (missing[0], files[level]) if missing else (extra[0], files[finest])
                raise DataError(f"{f}: image {i} is not listed there but is in the other {split} label files; "
                                "every image needs a label on each level")
        names[split] = [tuple(tables[level][i][0] for level in level_names) for i in ids[split]]
        absent = [i for i in ids[split] if f"{i}.jpg" not in present]
        if absent:
            more = f" ({len(absent)} listed images are missing)" if len(absent) > 1 else ""
            raise DataError(f"{images_dir / (absent[0] + '.jpg')} is missing (listed in {files[finest]}){more}; "
                            "unpack the full release again")
    return ids, names


def _hierarchy(data: Path, level_names: tuple[str, ...], ids, names) -> Hierarchy:
    """The tree of the label files; a class under two parents names both images."""
    parent_at: list[dict[str, tuple[str, str]]] = [{} for _ in level_names]
    for split in ids:
        for image_id, path in zip(ids[split], names[split]):
            for j in range(1, len(level_names)):
                known = parent_at[j].setdefault(path[j], (path[j - 1], image_id))
                if known[0] != path[j - 1]:
                    raise HierarchyError(
                        f"{data}/images_{level_names[j]}_{split}.txt: {level_names[j]} {path[j]!r} is under "
                        f"{level_names[j - 1]} "
                        f"{path[j - 1]!r} for image {image_id} but under {known[0]!r} for image {known[1]}; "
                        "the label files disagree, unpack them again"
                    )
    distinct = list(dict.fromkeys(p for split in ids for p in names[split]))
    order = [_class_order(data, level, {p[j] for p in distinct}) for j, level in enumerate(level_names)]
    return Hierarchy(distinct, levels=order)


@DATASETS.register(
    "fgvc-aircraft",
    description="FGVC-Aircraft 2013b, 3 levels: 30 manufacturers > 70 families > 100 variants (levels=2: family "
    "> manufacturer); banner removed; train_split=trainval|train, bbox=true",
    reference="Maji et al. 2013",
    options={"levels": int, "train_split": str, "bbox": bool, "size": int, "verify": bool},
)
def fgvc_aircraft(
    data_dir: str | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    levels: int = 3,
    train_split: str = "trainval",
    bbox: bool = False,
    size: int = 224,
    verify: bool = False,
) -> DataBundle:
    if levels not in (2, 3):
        raise ConfigError(f"dataset 'fgvc-aircraft': levels={levels}; use 3 (variant > family > manufacturer) "
                          "or 2 (family > manufacturer)")
    if train_split not in ("trainval", "train"):
        raise ConfigError(f"dataset 'fgvc-aircraft': train_split={train_split!r}; use trainval (val carved from it) "
                          "or train (official val)")
    check_image_options("fgvc-aircraft", size, 3)
    start = time.perf_counter()
    data = locate_aircraft(data_dir)
    level_names = LEVELS if levels == 3 else LEVELS[:2]
    splits = [train_split] + (["val"] if train_split == "train" else []) + ["test"]
    ids, names = _read_splits(data, level_names, splits)
    hierarchy = _hierarchy(data, level_names, ids, names)
    all_ids = [i for s in splits for i in ids[s]]
    boxes = None
    if bbox:
        box_file = data / "images_box.txt"
        known_boxes = read_boxes(box_file)
        missing = [i for i in all_ids if i not in known_boxes]
        if missing:
            raise DataError(f"{box_file}: no box for image {missing[0]} ({len(missing)} images lack one); "
                            "drop bbox=true or unpack the release again")
        boxes = torch.tensor([known_boxes[i] for i in all_ids], dtype=torch.long)
    # trainval (or train) is stored as the training split: without val, the validation split is carved from it
    sizes = {"train" if s == train_split else s: len(ids[s]) for s in splits}
    samples = ImageSamples(
        names=[str(data / "images" / f"{i}.jpg") for i in all_ids],
        targets=hierarchy.encode_many([p for s in splits for p in names[s]]),
        index=split_index(sizes, seed, val_fraction),
        root=str(data),
        boxes=boxes,
        crop_bottom=BANNER_PX,
    )
    source = f"{data}, {' > '.join(level_names)}, train split {train_split}{', bounding boxes' if bbox else ''}"
    spec = image_spec(size, 3, resize=round(size * 256 / 224))
    return build_image_bundle("fgvc-aircraft", samples, hierarchy, spec, source=source, in_memory=False,
                              verify=verify, default_backbone="resnet18", start=start)
