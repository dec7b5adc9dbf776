"""Your own images sorted in folders, in one of two layouts.

**(a) Nested folders are the hierarchy**, coarsest first (as for the paper's classroom data)::

    ROOT/train/Animal/Pet/cat/0001.jpg        # label path Animal > Pet > cat
    ROOT/train/Vehicle/Road/truck/0001.jpg
    ROOT/test/...                             # same nesting
    ROOT/val/...                              # optional

Every image sits the same number of folders deep (one per level, at least two levels).

**(b) Flat leaf folders** (torchvision ``ImageFolder`` style) plus a hierarchy file::

    ROOT/train/cat/0001.jpg    ROOT/test/truck/0001.jpg   ...
    --dataset-arg hierarchy=tree.json   (or tree.csv)

The file is JSON as :meth:`hcal.Hierarchy.from_json` reads it (``{"paths": [[coarse, ..., leaf],
...]}`` or ``{"parents": {child: parent}}``), or CSV with one row per leaf, finest first:
``cat,Pet,Animal`` (an optional header row starting with ``leaf`` is skipped). Leaf folders must
be leaves of that tree. With a hierarchy file, nested folders are accepted too and must match it.

``train`` and ``test`` are required; without ``val``, a seeded ``val_fraction`` of ``train`` is
held out. ``--data-dir`` may also be a ``.tar``/``.tar.gz`` archive of that layout (read once,
sequentially, without unpacking; its images are then held in memory). A single top folder above
the split folders (``ROOT/mydata/train/...``) is looked through. Hidden files and folders
(``.DS_Store``, ``__MACOSX``) and non-image files are ignored (counted in the log line).

Class order: the order of first appearance in sorted folder order (children of one parent are
adjacent), or the hierarchy file's order.

Options (``--dataset-arg KEY=VALUE``): ``hierarchy=FILE``; ``size=N`` model input side (default
224); ``in_memory=true|false`` (default: true when ``size <= 64``): decode every image once at
load into one uint8 tensor; ``channels=1|3`` (default 3); ``verify=true``: with files read per
item, decode every image once at load to find bad ones up front.

Unreadable images: with ``in_memory`` every image is decoded at load, so a corrupt file stops
the load with one message naming it (and how many others fail). Otherwise (large images, decoded
per item) hcal does not open every image at load, which would cost a full pass over the data:
the first unreadable image stops training with a message naming the file (``verify=true`` checks
them all first). Images are never skipped silently.

Training augmentation: in memory, a padded random crop (padding ``size/8``) and a horizontal flip;
from files, ``RandomResizedCrop(size)`` and a flip. Evaluation: resize the shorter side to
``size * 8/7`` (256 for 224; none for ``size <= 64``) and centre-crop ``size`` (the input spec's
geometry, which ``hcal predict`` reuses). Normalisation: ImageNet mean/std.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError, HierarchyError
from ..hierarchy import Hierarchy
from ._base import DATASETS, DataBundle, TensorDataset, parse_dataset_args, split_indices
from ._images import (
    IMAGE_SUFFIXES,
    IN_MEMORY_MAX_SIZE,
    ImageFileDataset,
    check_memory,
    eval_geometry,
    image_spec,
    pad_crop_flip,
    read_file_bytes,
    resized_crop_flip,
    stack_images,
)
from ._labels import PathCollector, encode_with, read_hierarchy_file

__all__ = ["load_image_folder", "scan_image_tree", "build_image_bundle", "split_sizes", "check_image_options"]

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"training": "train", "valid": "val", "validation": "val", "dev": "val", "testing": "test"}
OPTIONS = {"hierarchy": str, "size": int, "in_memory": bool, "channels": int, "verify": bool}
DEFAULT_SIZE = 224


@dataclass
class ImageTree:
    """Image files found under a root: ``files[split]`` lists ``(folders below the split, key)``."""

    root: str
    files: dict[str, list[tuple[tuple[str, ...], str]]]
    ignored: int
    archive: dict[str, bytes] | None = None  # member name -> encoded bytes, for archives

    def display(self, split: str, *parts: str) -> str:
        """How messages name a folder: ``ROOT/split/a/b``, or ``ARCHIVE:split/a/b``."""
        if self.archive is not None:
            return f"{self.root}:{'/'.join((split, *parts))}"
        return os.path.join(self.root, split, *parts)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _check_split_names(names: list[str], where: str) -> None:
    for name in names:
        if name.lower() in SPLIT_ALIASES and not any(n == SPLIT_ALIASES[name.lower()] for n in names):
            raise DataError(f"{where}: split folder {name!r} is not a split hcal knows; rename it to {SPLIT_ALIASES[name.lower()]!r}")


def _scan_directory(root: Path) -> ImageTree:
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not _hidden(p.name))
    if "train" not in subdirs and "test" not in subdirs and len(subdirs) == 1:
        inner = root / subdirs[0]
        if (inner / "train").is_dir() or (inner / "test").is_dir():
            return _scan_directory(inner)
    _check_split_names(subdirs, str(root))
    files: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    ignored = 0
    for split in SPLITS:
        top = root / split
        if not top.is_dir():
            continue
        found = files[split] = []
        seen: set[tuple[int, int]] = set()  # folders already walked: symlinked folders are followed, loops are not
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            rel = Path(dirpath).relative_to(top).parts
            for name in sorted(filenames):
                if _hidden(name):
                    continue
                if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                    ignored += 1
                    continue
                found.append((rel, os.path.join(dirpath, name)))
    return ImageTree(str(root), files, ignored)


def _scan_archive(path: Path) -> ImageTree:
    members: list[tuple[tuple[str, ...], bytes]] = []
    ignored = 0
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                parts = tuple(p for p in m.name.split("/") if p not in ("", "."))
                if not m.isfile() or not parts or any(_hidden(p) for p in parts):
                    continue
                if os.path.splitext(parts[-1])[1].lower() not in IMAGE_SUFFIXES:
                    ignored += 1
                    continue
                fh = tf.extractfile(m)
                members.append((parts, fh.read() if fh is not None else b""))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: not a readable .tar/.tar.gz archive ({e}); fetch it again, or unpack it and pass the folder") from None
    tops = {parts[0] for parts, _ in members if len(parts) > 1}
    if not tops & set(SPLITS) and len(tops) == 1:
        members = [(parts[1:], data) for parts, data in members if len(parts) > 1]
    _check_split_names(sorted({parts[0] for parts, _ in members if len(parts) > 1}), str(path))
    files: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    archive: dict[str, bytes] = {}
    for parts, data in sorted(members, key=lambda m: m[0]):
        if len(parts) < 2 or parts[0] not in SPLITS:
            continue
        key = "/".join(parts)
        archive[key] = data
        files.setdefault(parts[0], []).append((parts[1:-1], key))
    files = {s: files[s] for s in SPLITS if s in files}  # train first, as for folders: the same class order
    return ImageTree(str(path), files, ignored, archive)


def scan_image_tree(data_dir: str | None, dataset: str) -> ImageTree:
    """Find the split folders under ``data_dir`` (a folder or a tar archive) and list their images."""
    if data_dir is None:
        raise DataError(f"dataset {dataset!r} needs --data-dir ROOT (a folder with train/ and test/, or a .tar.gz of one)")
    path = Path(data_dir)
    if not path.exists():
        raise DataError(f"--data-dir {data_dir!r} does not exist")
    if path.is_dir():
        tree = _scan_directory(path)
    elif tarfile.is_tarfile(path):
        tree = _scan_archive(path)
    else:
        raise DataError(f"--data-dir {data_dir!r} is a file but not a .tar/.tar.gz archive; give the folder holding train/ and test/")
    for split in ("train", "test"):
        if split not in tree.files:
            found = ", ".join(sorted(tree.files)) or "none"
            raise DataError(
                f"{tree.root}: no {split!r} folder (split folders found: {found}); lay the images out as "
                f"ROOT/train/<class>/.../<image> and ROOT/test/<class>/.../<image> (val/ optional)"
            )
    for split, items in tree.files.items():
        if not items:
            raise DataError(
                f"{tree.display(split)}: the {split!r} split has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "put its images in class folders below it"
            )
    return tree


def _label_rows(tree: ImageTree, hierarchy: Hierarchy | None, hierarchy_source: str):
    """Label path row per image (``rows[split]``), the distinct paths, and the hierarchy."""
    depths = Counter(len(parts) for items in tree.files.values() for parts, _ in items)
    usual = depths.most_common(1)[0][0]
    for split, items in tree.files.items():
        for parts, key in items:
            where = tree.display(split, *parts)
            if not parts:
                raise DataError(f"{where}: image {os.path.basename(key)!r} sits directly in the split folder; move it into its class folder")
            if len(parts) != usual and hierarchy is None:
                raise DataError(
                    f"{where}: image {os.path.basename(key)!r} is {len(parts)} folders below {split}/ but {depths[usual]} "
                    f"images are {usual} deep; nest every image one folder per level, coarsest first"
                )
    if hierarchy is None and usual == 1:
        raise HierarchyError(
            f"{tree.root}: the images sit in one level of class folders (split/<class>/<image>), which gives no hierarchy; "
            "pass the class tree with --dataset-arg hierarchy=FILE (.json or .csv), or nest the folders coarsest first "
            "(split/<coarse>/.../<fine>/<image>)"
        )
    collector = PathCollector(fix="; rename one of the folders")
    rows: dict[str, list[int]] = {}
    by_folder: dict[tuple[str, tuple[str, ...]], int] = {}
    for split, items in tree.files.items():
        split_rows = rows[split] = []
        for parts, _ in items:
            row = by_folder.get((split, parts))
            if row is None:
                where = tree.display(split, *parts)
                if hierarchy is None:
                    row = collector.add(parts, where)
                else:
                    row = _known_path(hierarchy, parts, where, hierarchy_source, collector)
                by_folder[(split, parts)] = row
            split_rows.append(row)
    if hierarchy is None:
        hierarchy = collector.hierarchy()
    return rows, collector.paths, hierarchy


def _known_path(hierarchy: Hierarchy, parts: tuple[str, ...], where: str, source: str, collector: PathCollector) -> int:
    if len(parts) == 1:
        try:
            path = hierarchy.decode(hierarchy.encode(parts[0]))
        except HierarchyError:
            leaves = hierarchy.classes[0]
            shown = ", ".join(repr(n) for n in leaves[:12]) + (", ..." if len(leaves) > 12 else "")
            raise HierarchyError(
                f"{where}: folder {parts[0]!r} is not a leaf class of {source} (leaves: {shown}); "
                "rename the folder or add the class to the hierarchy"
            ) from None
    elif len(parts) == hierarchy.depth:
        try:
            hierarchy.encode(parts)
        except HierarchyError as e:
            raise HierarchyError(f"{where}: {e}; fix the folders or {source}") from None
        path = parts
    else:
        raise DataError(
            f"{where}: images {len(parts)} folders below the split folder; with {source} ({hierarchy.depth} levels) "
            f"use split/<leaf>/<image> or {hierarchy.depth} nested folders, coarsest first"
        )
    return collector.add(path, where)


def load_image_folder(
    data_dir: str | None,
    *,
    name: str,
    seed: int,
    val_fraction: float,
    hierarchy: Hierarchy | None = None,
    hierarchy_source: str = "",
    size: int = DEFAULT_SIZE,
    in_memory: bool | None = None,
    channels: int = 3,
    verify: bool = False,
    mean=None,
    std=None,
    default_backbone: str | None = None,
) -> DataBundle:
    """The ``folder`` dataset's loader, shared with presets (``cifar10``) that bring their own hierarchy."""
    start = time.perf_counter()
    check_image_options(name, size, channels)
    tree = scan_image_tree(data_dir, name)
    if tree.archive is not None and in_memory is False:
        raise DataError(f"{tree.root}: images in an archive are decoded into memory; unpack it and pass the folder to use in_memory=false")
    rows, paths, hierarchy = _label_rows(tree, hierarchy, hierarchy_source)
    order = [s for s in SPLITS if s in tree.files]
    keys = [key for s in order for _, key in tree.files[s]]
    targets = encode_with(hierarchy, paths, [r for s in order for r in rows[s]])
    sizes = {s: len(tree.files[s]) for s in order}
    layout = "nested folders" if hierarchy_source == "" else f"class folders + {hierarchy_source}"
    if tree.archive is not None:
        archive, root = tree.archive, tree.root
        readers = [functools.partial(archive.__getitem__, k) for k in keys]
        names = [f"{root}:{k}" for k in keys]
    else:
        readers, names = None, keys
    bundle = build_image_bundle(
        name, names, targets, hierarchy, split_sizes(sizes, seed, val_fraction),
        spec=image_spec(size, channels, mean, std), in_memory=in_memory, verify=verify, readers=readers,
        note=f"{tree.root}, {layout}", ignored=tree.ignored, default_backbone=default_backbone, start=start,
    )
    if tree.archive is not None:
        tree.archive.clear()
    return bundle


def check_image_options(name: str, size: int, channels: int) -> None:
    if size < 8:
        raise ConfigError(f"dataset {name!r}: size={size} is too small; give --dataset-arg size=N with N >= 8")
    if channels not in (1, 3):
        raise ConfigError(f"dataset {name!r}: channels={channels}; use 1 (grey) or 3 (RGB)")


def split_sizes(sizes: dict[str, int], seed: int, val_fraction: float) -> dict[str, torch.Tensor]:
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


_DECODED: dict = {}  # one entry: an experiment grid loads the same images for every (method, seed)


def _decoded(where: str, files: list[str], readers, spec) -> torch.Tensor:
    """``stack_images`` of these files, reused while this process loads the same ones again."""
    try:
        stamp = os.stat(where).st_mtime_ns
    except OSError:
        stamp = None
    key = (where, stamp, len(files), hash(tuple(files)), spec)
    if key not in _DECODED:
        _DECODED.clear()
        _DECODED[key] = stack_images(zip(files, readers), len(files), spec)[0]
    return _DECODED[key]


def build_image_bundle(
    name: str,
    files: list[str],
    targets: torch.Tensor,
    hierarchy: Hierarchy,
    index: dict[str, torch.Tensor],
    *,
    spec,
    in_memory: bool | None,
    verify: bool = False,
    readers: list[Callable[[], bytes]] | None = None,
    note: str = "",  # "<root>, <layout>": for the log line and messages
    ignored: int = 0,
    default_backbone: str | None = None,
    start: float | None = None,
) -> DataBundle:
    """Image samples (files, or ``readers`` of archive members' bytes) and their targets as a DataBundle.

    In memory (default when ``spec.size <= 64``, always with ``readers``): every image decoded
    now into one uint8 tensor, padded-crop + flip augmentation. Otherwise decoded per item,
    random-resized-crop + flip for training, the spec's resize + centre crop for evaluation.
    """
    start = time.perf_counter() if start is None else start
    if in_memory is None:
        in_memory = readers is not None or spec.size <= IN_MEMORY_MAX_SIZE
    where = note.split(", ")[0]  # the root folder, archive or manifest
    note += f", {len(files)} images"
    if in_memory:
        check_memory(len(files), spec, where)
        if readers is None:
            readers = [functools.partial(read_file_bytes, f) for f in files]
        inputs = _decoded(where, files, readers, spec)
        train_tf = pad_crop_flip(spec.size)
        datasets = {s: TensorDataset(inputs, targets, index[s], train_tf if s == "train" else None) for s in SPLITS}
        note += f", decoded into memory in {time.perf_counter() - start:.1f} s"
    else:
        train_tf, eval_tf = resized_crop_flip(spec.size), eval_geometry(spec)
        names = np.array(files)  # one array of file names, shared by the splits
        if verify:
            ImageFileDataset(names, targets, None, None, spec.channels).verify()
        datasets = {
            s: ImageFileDataset(names, targets, index[s], train_tf if s == "train" else eval_tf, spec.channels)
            for s in SPLITS
        }
    if ignored:
        note += f", {ignored} non-image files ignored"
    if default_backbone is None:
        default_backbone = "resnet18-cifar" if spec.size <= IN_MEMORY_MAX_SIZE else "resnet18"
    return DataBundle(
        name=name,
        hierarchy=hierarchy,
        input_spec=spec,
        train=datasets["train"],
        val=datasets["val"],
        test=datasets["test"],
        default_backbone=default_backbone,
        source=note,
    )


@DATASETS.register(
    "folder",
    description="your images in folders: ROOT/{train,val,test}/<coarse>/.../<fine>/<image>, or leaf folders "
    "+ --dataset-arg hierarchy=FILE (.json/.csv); --data-dir ROOT or ROOT.tar.gz",
)
def folder(data_dir: str | None = None, *, seed: int = 0, val_fraction: float = 0.1, **args) -> DataBundle:
    opts = parse_dataset_args("folder", args, OPTIONS)
    hierarchy, source = None, ""
    if "hierarchy" in opts:
        hierarchy = read_hierarchy_file(opts["hierarchy"])
        source = f"hierarchy file {opts['hierarchy']!r}"
    return load_image_folder(
        data_dir,
        name="folder",
        seed=seed,
        val_fraction=val_fraction,
        hierarchy=hierarchy,
        hierarchy_source=source,
        size=opts.get("size", DEFAULT_SIZE),
        in_memory=opts.get("in_memory"),
        channels=opts.get("channels", 3),
        verify=opts.get("verify", False),
    )
