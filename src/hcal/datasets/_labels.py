"""Label paths gathered from data files, checked as they come, and hierarchy files.

:class:`PathCollector` takes one label path (coarsest first) at a time together with where it
was found (``"manifest.csv, line 7"``, a folder), so a class under two parents is reported with
both places. :func:`read_hierarchy_file` reads a tree from JSON (as :meth:`Hierarchy.from_json`
accepts) or from CSV rows ``leaf,parent,grandparent,...`` (finest first).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import torch

from ..errors import HierarchyError
from ..hierarchy import Hierarchy

__all__ = ["PathCollector", "read_hierarchy_file", "encode_with"]


class PathCollector:
    """Collects distinct label paths; ``add`` returns the path's row in :attr:`paths`."""

    def __init__(self, fix: str = "") -> None:
        self.paths: list[tuple[str, ...]] = []
        self._row: dict[tuple[str, ...], int] = {}
        self._parent: list[dict[str, tuple[str, str]]] = []  # coarsest-first level -> name -> (parent, where)
        self._first: tuple[tuple[str, ...], str] | None = None
        self.fix = fix

    def add(self, path: Sequence[str], where: str) -> int:
        path = tuple(path)
        row = self._row.get(path)
        if row is not None:
            return row
        if self._first is None:
            if len(path) < 2:
                raise HierarchyError(f"{where}: {len(path)} level(s) of labels; a hierarchy needs at least 2")
            self._first = (path, where)
            self._parent = [{} for _ in path]
        elif len(path) != len(self._first[0]):
            raise HierarchyError(
                f"{where}: {len(path)} levels of labels ({' > '.join(path)}) but {self._first[1]} has "
                f"{len(self._first[0])}; every sample needs one label on each level"
            )
        for j, name in enumerate(path):
            if not name.strip():
                raise HierarchyError(f"{where}: empty class name on level {len(path) - j} (counted from the finest)")
            if j == 0:
                continue
            known = self._parent[j].setdefault(name, (path[j - 1], where))
            if known[0] != path[j - 1]:
                raise HierarchyError(
                    f"{where}: class {name!r} (level {len(path) - j}) is under {path[j - 1]!r} here but under "
                    f"{known[0]!r} in {known[1]}; a class has one parent{self.fix}"
                )
        self._row[path] = len(self.paths)
        self.paths.append(path)
        return self._row[path]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (tuple, list)) and tuple(path) in self._row

    def hierarchy(self) -> Hierarchy:
        if not self.paths:
            raise HierarchyError("no labels were found")
        return Hierarchy(self.paths)


def encode_with(hierarchy: Hierarchy, paths: Sequence[Sequence[str]], rows: Sequence[int]) -> torch.Tensor:
    """``(n, m)`` finest-first targets: sample i has label path ``paths[rows[i]]``."""
    table = hierarchy.encode_many(paths) if paths else torch.empty((0, hierarchy.num_levels), dtype=torch.long)
    return table[torch.as_tensor(list(rows), dtype=torch.long)]


def read_hierarchy_file(path: str | Path) -> Hierarchy:
    """A hierarchy from ``FILE.json`` (see :meth:`Hierarchy.from_json`) or a CSV of rows
    ``leaf,parent,grandparent,...`` (finest first; a first row starting with ``leaf`` is a header)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return Hierarchy.from_json(path)
    if not path.is_file():
        raise HierarchyError(
            f"hierarchy file {str(path)!r} does not exist (relative paths start in the current folder)"
        )
    rows: list[tuple[tuple[str, ...], str]] = []  # (cells, where)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for row in reader:
                cells = [c.strip() for c in row]
                if not any(cells) or cells[0].startswith("#"):
                    continue
                if reader.line_num == 1 and cells[0].lower() == "leaf":
                    continue  # header
                where = f"hierarchy file {str(path)!r}, line {reader.line_num}"
                if len(cells) < 2 or not all(cells):
                    raise HierarchyError(
                        f"{where}: expected leaf,parent[,grandparent,...] (finest first, no empty fields), got {row!r}"
                    )
                rows.append((tuple(cells), where))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise HierarchyError(f"hierarchy file {str(path)!r} cannot be read: {e}") from None
    if not rows:
        raise HierarchyError(f"hierarchy file {str(path)!r} has no rows; write one row per leaf: "
                             "leaf,parent,grandparent,...")
    try:
        return _tree_of_rows(rows, path, finest_first=True)
    except HierarchyError as e:
        try:  # rows written coarsest first make a tree read the other way round: say so, not what failed
            _tree_of_rows(rows, path, finest_first=False)
        except HierarchyError:
            raise e from None
        cells, where = rows[0]
        raise HierarchyError(
            f"{where}: the rows look written coarsest first ({','.join(cells)}); a hierarchy CSV lists each leaf "
            f"finest first: leaf,parent,grandparent,... ({','.join(reversed(cells))})"
        ) from None


def _tree_of_rows(rows: Sequence[tuple[tuple[str, ...], str]], path: Path, finest_first: bool) -> Hierarchy:
    collector = PathCollector(fix="; fix the hierarchy file")
    for cells, where in rows:
        collector.add(tuple(reversed(cells)) if finest_first else cells, where)
    try:
        return collector.hierarchy()
    except HierarchyError as e:
        raise HierarchyError(f"hierarchy file {str(path)!r}: {e}") from None
