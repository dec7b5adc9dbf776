"""A CSV manifest of images: one row per image, registered as the ``csv`` dataset.

The first row is a header naming the columns (required):

* ``path`` (required): the image file, relative to the manifest's own folder (or absolute);
* ``split`` (optional): ``train``, ``val`` or ``test``;
* every other column is one level of labels; **left to right = coarsest to finest**, at least
  two. Their header names are free (``kingdom,family,species``) and only used in messages.

Columns may come in any order around the level columns, e.g.
``path,group,animal,split`` / ``images/cat1.jpg,pet,cat,train``. Fields with commas need CSV
quotes. Blank lines are skipped; ``--data-dir`` is the manifest file (or a folder holding exactly
one ``.csv``).

Without a ``split`` column, a seeded ``test_fraction`` (default 0.2) of the rows is held out for
test; without ``val`` rows, ``val_fraction`` of the training rows is held out for validation.
The hierarchy is read from the label columns (class order: first appearance), or from
``--dataset-arg hierarchy=FILE`` (.json or .csv, as for ``folder``), then every row must agree with it.

Every listed file must exist (checked at load, one ``stat`` per row) and be listed once: a second
row with other labels, in another split (a test image also trained on) or the same is refused. Images are read as for
``folder`` (same options ``size``, ``in_memory``, ``channels``, ``verify``; same policy: in memory,
unreadable images stop the load naming the file; from files, the first unreadable image stops
training naming the file). Errors name the manifest's line.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import torch

from ..errors import DataError, HierarchyError
from ._base import DATASETS, SPLITS, DataBundle, resolve_data_file, split_index, split_indices
from ._image_bundle import ImageSamples, build_image_bundle, check_image_options
from ._images import image_spec
from ._labels import PathCollector, encode_with, read_hierarchy_file

__all__ = ["read_manifest"]

HEADER_HELP = "the first row must name the columns: path, one column per level (coarsest first), optional split"


def read_manifest(path: Path):
    """``(files, label paths, splits or None, line numbers, level column names)``, checked row by row."""
    files: list[str] = []
    labels: list[tuple[str, ...]] = []
    splits: list[str] = []
    lines: list[int] = []
    base = path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty; {HEADER_HELP}")
            header = [h.strip() for h in header]
            where = f"{path}, line 1"
            if "path" not in header:
                raise DataError(f"{where}: the header has no 'path' column (found: {', '.join(header)}); {HEADER_HELP}")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise DataError(f"{where}: column {dup[0]!r} appears twice in the header; name every column once")
            path_col = header.index("path")
            split_col = header.index("split") if "split" in header else None
            level_cols = [i for i, h in enumerate(header) if h not in ("path", "split")]
            if len(level_cols) < 2:
                raise DataError(
                    f"{where}: {len(level_cols)} label column(s) "
                    f"({', '.join(header[i] for i in level_cols) or 'none'}); "
                    f"a hierarchy needs at least 2, coarsest first; {HEADER_HELP}"
                )
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                where = f"{path}, line {reader.line_num}"
                if len(row) != len(header):
                    raise DataError(
                        f"{where}: {len(row)} fields but the header has {len(header)} ({','.join(header)}); "
                        "fix the row (quote fields that contain commas)"
                    )
                cells = [c.strip() for c in row]
                for i in [path_col, *level_cols]:
                    if not cells[i]:
                        raise DataError(f"{where}: the {header[i]!r} field is empty; every row needs a path and one "
                                        "label per level")
                if split_col is not None and cells[split_col] not in SPLITS:
                    raise DataError(f"{where}: split {cells[split_col]!r} is not one of {', '.join(SPLITS)}")
                files.append(str(base / cells[path_col]))
                labels.append(tuple(cells[i] for i in level_cols))
                if split_col is not None:
                    splits.append(cells[split_col])
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path} cannot be read as CSV: {e}") from None
    if not files:
        raise DataError(f"{path} has a header but no rows; add one row per image")
    return files, labels, (splits if split_col is not None else None), lines, [header[i] for i in level_cols]


def _check_listed_once(path: Path, files: list[str], labels: list[tuple[str, ...]], splits: list[str] | None,
                       lines: list[int]) -> None:
    """Each image once: a second row gives it a second label, puts a test image into training, or counts it twice."""
    first: dict[str, int] = {}
    for i, f in enumerate(files):
        j = first.setdefault(os.path.normpath(os.path.abspath(f)), i)
        if j == i:
            continue
        where = f"{path}, line {lines[i]}"
        if labels[i] != labels[j]:
            why = (f"with labels {' > '.join(labels[i])} here but {' > '.join(labels[j])} on line {lines[j]}; an image "
                   "has one label path")
        elif splits is not None and splits[i] != splits[j]:
            why = (f"in split {splits[i]!r} here and {splits[j]!r} on line {lines[j]}; an image in two splits leaks "
                   "the test set into training or selection")
        else:
            why = f"again (first on line {lines[j]}); list each image once"
        raise DataError(f"{where}: image {f!r} is listed {why}")


@DATASETS.register(
    "csv",
    description="a CSV manifest of images: header path,<level columns coarsest first>[,split]; --data-dir FILE.csv",
    options={"hierarchy": str, "size": int, "in_memory": bool, "channels": int, "verify": bool,
             "test_fraction": float},
)
def manifest(
    data_dir: str | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    hierarchy: str | None = None,
    size: int = 224,
    in_memory: bool | None = None,
    channels: int = 3,
    verify: bool = False,
    test_fraction: float = 0.2,
) -> DataBundle:
    start = time.perf_counter()
    check_image_options("csv", size, channels)
    path = resolve_data_file(data_dir, dataset="csv", suffix=".csv", what="manifest",
                             usage="MANIFEST.csv (columns: path, one per level coarsest first, optional split)")
    files, labels, splits, lines, _ = read_manifest(path)

    missing = [i for i, f in enumerate(files) if not os.path.isfile(f)]
    if missing:
        i = missing[0]
        more = f" ({len(missing)} listed files are missing)" if len(missing) > 1 else ""
        raise DataError(
            f"{path}, line {lines[i]}: image {files[i]!r} does not exist{more}; paths are relative to the manifest's "
            "folder"
        )

    fixed = read_hierarchy_file(hierarchy) if hierarchy is not None else None
    collector = PathCollector(fix="; fix the manifest")
    rows = []
    for label, line in zip(labels, lines):
        where = f"{path}, line {line}"
        if fixed is not None and label not in collector:
            try:
                fixed.encode(label)
            except HierarchyError as e:
                raise HierarchyError(f"{where}: {e}; fix the row or the hierarchy file {hierarchy!r}") from None
        rows.append(collector.add(label, where))
    tree = fixed if fixed is not None else collector.hierarchy()
    targets_all = encode_with(tree, collector.paths, rows)

    # Store samples split after split so the in-memory tensor and the indices line up.
    if splits is None:
        rest, test_idx = split_indices(len(files), test_fraction, seed + 1, "test", "--dataset-arg test_fraction=")
        by_split = {"train": rest.tolist(), "test": test_idx.tolist()}
    else:
        by_split = {s: [i for i, v in enumerate(splits) if v == s] for s in SPLITS}
        for s in ("train", "test"):
            if not by_split[s]:
                raise DataError(f"{path}: no row has split {s!r}; the train and test splits need at least one image "
                                "each")
        if not by_split["val"]:
            del by_split["val"]
    _check_listed_once(path, files, labels, splits, lines)
    order = [i for s in SPLITS if s in by_split for i in by_split[s]]
    samples = ImageSamples(
        names=[files[i] for i in order],
        targets=targets_all[torch.as_tensor(order, dtype=torch.long)],
        index=split_index({s: len(v) for s, v in by_split.items()}, seed, val_fraction),
        root=str(path),
    )
    return build_image_bundle("csv", samples, tree, image_spec(size, channels), source=f"{path}, manifest",
                              in_memory=in_memory, verify=verify, start=start)
