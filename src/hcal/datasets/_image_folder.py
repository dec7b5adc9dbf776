"""Images sorted in split folders, or a tar archive of them: the loader of ``folder`` and of presets such as
``cifar10`` (the layouts are described in :mod:`hcal.datasets.folder`).

:func:`scan_image_tree` lists the images below ``ROOT/{train,val,test}`` (or an archive's members),
:func:`load_image_folder` turns the folders into label paths, checks them against a hierarchy when
one is given, and builds the bundle with :func:`~hcal.datasets._image_bundle.build_image_bundle`.
"""

from __future__ import annotations

import functools
import os
import tarfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, HierarchyError, warn
from ..hierarchy import Hierarchy
from ._base import SPLITS, DataBundle, split_index
from ._image_bundle import ImageSamples, build_image_bundle, check_image_options
from ._images import IMAGE_SUFFIXES, image_spec
from ._labels import PathCollector, encode_with

__all__ = ["ImageTree", "scan_image_tree", "load_image_folder"]

SPLIT_ALIASES = {"training": "train", "valid": "val", "validation": "val", "dev": "val", "testing": "test"}


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
            raise DataError(f"{where}: split folder {name!r} is not a split hcal knows; rename it to "
                            f"{SPLIT_ALIASES[name.lower()]!r}")


def _scan_directory(root: Path) -> ImageTree:
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not _hidden(p.name))
    if "train" not in subdirs and "test" not in subdirs and len(subdirs) == 1:
        inner = root / subdirs[0]
        if (inner / "train").is_dir() or (inner / "test").is_dir():
            return _scan_directory(inner)
    _check_split_names(subdirs, str(root))
    files: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    ignored = 0
    empty: list[str] = []  # class folders without an image: not classes at all, which the user must hear
    for split in SPLITS:
        top = root / split
        if not top.is_dir():
            continue
        found = files[split] = []
        hollow: list[str] = []
        seen: set[tuple[int, int]] = set()  # folders already walked: symlinked folders are followed, loops are not
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            rel = Path(dirpath).relative_to(top).parts
            if rel and not dirnames and not any(os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES for n in filenames):
                hollow.append(os.path.join(split, *rel))
            for name in sorted(filenames):
                if _hidden(name):
                    continue
                if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                    ignored += 1
                    continue
                found.append((rel, os.path.join(dirpath, name)))
        if found:  # a split without any image is an error of its own
            empty += hollow
    if empty:
        shown = ", ".join(repr(e) for e in empty[:3]) + (f" and {len(empty) - 3} more" if len(empty) > 3 else "")
        warn(f"{root}: {len(empty)} class folder{'s hold' if len(empty) > 1 else ' holds'} no images, so "
             f"{'they are' if len(empty) > 1 else 'it is'} left out of the classes: {shown}")
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
        raise DataError(f"{path}: not a readable .tar/.tar.gz archive ({e}); fetch it again, or unpack it and pass the "
                        "folder") from None
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
        raise DataError(f"dataset {dataset!r} needs --data-dir ROOT (a folder with train/ and test/, or a .tar.gz of "
                        "one)")
    path = Path(data_dir)
    if not path.exists():
        raise DataError(f"--data-dir {data_dir!r} does not exist")
    if path.is_dir():
        tree = _scan_directory(path)
    elif tarfile.is_tarfile(path):
        tree = _scan_archive(path)
    else:
        raise DataError(f"--data-dir {data_dir!r} is a file but not a .tar/.tar.gz archive; give the folder holding "
                        "train/ and test/")
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
                raise DataError(f"{where}: image {os.path.basename(key)!r} sits directly in the split folder; move it "
                                "into its class folder")
            if len(parts) != usual and hierarchy is None:
                raise DataError(
                    f"{where}: image {os.path.basename(key)!r} is {len(parts)} folders below {split}/ but "
                    f"{depths[usual]} "
                    f"images are {usual} deep; nest every image one folder per level, coarsest first"
                )
    if hierarchy is None and usual == 1:
        raise HierarchyError(
            f"{tree.root}: the images sit in one level of class folders (split/<class>/<image>), which gives no "
            "hierarchy; "
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
            hint = ("; its rows may be written coarsest first (a CSV row is leaf,parent,grandparent,...)"
                    if parts[0] in hierarchy.classes[-1] and source.endswith(".csv'") else "")
            raise HierarchyError(
                f"{where}: folder {parts[0]!r} is not a leaf class of {source} (leaves: {shown}){hint}; "
                "rename the folder or add the class to the hierarchy"
            ) from None
    elif len(parts) == hierarchy.num_levels:
        try:
            hierarchy.encode(parts)
        except HierarchyError as e:
            raise HierarchyError(f"{where}: {e}; fix the folders or {source}") from None
        path = parts
    else:
        raise DataError(
            f"{where}: images {len(parts)} folders below the split folder; with {source} ({hierarchy.num_levels} "
            "levels) "
            f"use split/<leaf>/<image> or {hierarchy.num_levels} nested folders, coarsest first"
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
    size: int = 224,
    in_memory: bool | None = None,
    channels: int = 3,
    verify: bool = False,
    mean=None,
    std=None,
    default_backbone: str | None = None,
) -> DataBundle:
    """Images in split folders (or a tar archive of them) as a bundle: the ``folder`` dataset, and presets
    (``cifar10``) that bring their own hierarchy."""
    start = time.perf_counter()
    check_image_options(name, size, channels)
    tree = scan_image_tree(data_dir, name)
    rows, paths, hierarchy = _label_rows(tree, hierarchy, hierarchy_source)
    order = [s for s in SPLITS if s in tree.files]
    keys = [key for s in order for _, key in tree.files[s]]
    samples = ImageSamples(
        names=keys,
        targets=encode_with(hierarchy, paths, [r for s in order for r in rows[s]]),
        index=split_index({s: len(tree.files[s]) for s in order}, seed, val_fraction),
        root=tree.root,
    )
    if tree.archive is not None:
        samples.names = [f"{tree.root}:{k}" for k in keys]
        samples.readers = [functools.partial(tree.archive.__getitem__, k) for k in keys]
    layout = "nested folders" if hierarchy_source == "" else f"class folders + {hierarchy_source}"
    bundle = build_image_bundle(
        name, samples, hierarchy, image_spec(size, channels, mean, std), source=f"{tree.root}, {layout}",
        in_memory=in_memory, verify=verify, ignored=tree.ignored, default_backbone=default_backbone, start=start,
    )
    if tree.archive is not None:
        tree.archive.clear()
    return bundle
