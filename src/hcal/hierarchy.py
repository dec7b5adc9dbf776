"""The class tree: every sample carries one label on each of its ``m >= 2`` levels.

Label paths are the lingua franca: a path lists one class per level, **coarsest first**
(``("Clothes", "Tops", "T-shirt/top")``), as a user would write it. Inside hcal, levels are
numbered as in the HCAL paper: level 1 is the finest, level ``m`` the coarsest. Python indices
follow the same order: ``hierarchy.classes[0]`` are the leaves (level 1), ``hierarchy.classes[-1]``
the roots (level m), and a label tensor ``y`` of shape ``(n, m)`` holds ``y[:, 0]`` = finest.

A class name is unique within its level; the same name may appear on two levels (CIFAR-10's
``bird`` is both a level-2 and a level-1 class), so classes are addressed by (level, name).

At about 350 lines this is the one module of hcal over 300: :class:`Hierarchy` is one cohesive
structure (its constructors validate the tree once and build the index maps every query reads),
and splitting the class across modules would scatter those invariants.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import HierarchyError

__all__ = ["Hierarchy"]


def _fmt_path(path: Sequence[str]) -> str:
    return " > ".join(map(str, path))


def _fmt_loop(names: Sequence[str]) -> str:
    return " -> ".join(repr(n) for n in names)


def _short_list(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise HierarchyError(f"key {key!r} appears twice (a class with two parents?)")
        out[key] = value
    return out


class Hierarchy:
    """A tree of classes with every leaf at the same depth ``m >= 2``.

    Build it from leaf paths (coarsest first), a child->parent map, or a JSON file::

        h = Hierarchy([("Clothes", "Tops", "T-shirt"), ("Goods", "Shoes", "Sandal")])
        h = Hierarchy.from_parent_map({"T-shirt": "Tops", "Tops": "Clothes", ...})
        h = Hierarchy.from_json("tree.json")

    Paths may repeat (e.g. one per sample); the order of first appearance fixes the class order
    on each level unless ``levels`` (class names per level, coarsest first) is given.
    Invalid trees raise :class:`~hcal.errors.HierarchyError` (a ``ValueError``) naming the class
    or path at fault.
    """

    def __init__(
        self,
        paths: Iterable[Sequence[str]],
        levels: Sequence[Sequence[str]] | None = None,
    ) -> None:
        leaf_paths: dict[str, tuple[str, ...]] = {}
        parent_of: list[dict[str, str]] = []  # per level (coarsest-first index), child -> parent
        order: list[dict[str, None]] = []  # per level (coarsest-first index), ordered set
        num_levels = None
        first = None
        for raw in paths:
            if isinstance(raw, str):
                raise HierarchyError(
                    f"a label path must be a sequence of class names, coarsest first, got the string {raw!r}"
                )
            path = tuple(raw)
            if num_levels is None:
                num_levels, first = len(path), path
                if num_levels < 2:
                    raise HierarchyError(
                        f"path {_fmt_path(path)!r} has {num_levels} level(s); a hierarchy needs at least 2"
                    )
                parent_of = [{} for _ in range(num_levels)]
                order = [{} for _ in range(num_levels)]
            elif len(path) != num_levels:
                raise HierarchyError(
                    f"path {_fmt_path(path)!r} has {len(path)} levels but path {_fmt_path(first)!r} "
                    f"has {num_levels}; every leaf must be at the same depth"
                )
            for j, name in enumerate(path):
                if not isinstance(name, str) or not name.strip():
                    raise HierarchyError(f"path {_fmt_path(path)!r} has an empty class name at position {j + 1}")
                order[j].setdefault(name, None)
                if j > 0:
                    known = parent_of[j].setdefault(name, path[j - 1])
                    if known != path[j - 1]:
                        level = num_levels - j
                        raise HierarchyError(
                            f"class {name!r} (level {level}) has two parents: {known!r} and {path[j - 1]!r}"
                        )
            leaf_paths.setdefault(path[-1], path)
        if num_levels is None:
            raise HierarchyError("a hierarchy needs at least one label path; got none")

        if levels is not None:
            order = self._check_levels(levels, order, num_levels)

        # Store finest first (paper numbering).
        coarse_first = [list(o) for o in order]
        self._classes: tuple[tuple[str, ...], ...] = tuple(tuple(c) for c in reversed(coarse_first))
        self._index: tuple[dict[str, int], ...] = tuple(
            {name: i for i, name in enumerate(level)} for level in self._classes
        )
        parents = []
        for k in range(num_levels - 1):  # finest-first level k, parent on level k + 1
            j = num_levels - 1 - k  # coarsest-first index of level k
            parents.append(
                tuple(self._index[k + 1][parent_of[j][name]] for name in self._classes[k])
            )
        self._parents: tuple[tuple[int, ...], ...] = tuple(parents)
        self._leaf_path_index = {
            leaf: self.encode(path) for leaf, path in leaf_paths.items()
        }

    @staticmethod
    def _check_levels(
        levels: Sequence[Sequence[str]], order: list[dict[str, None]], num_levels: int
    ) -> list[dict[str, None]]:
        if len(levels) != num_levels:
            raise HierarchyError(f"'levels' lists {len(levels)} levels but the paths have {num_levels}")
        checked = []
        for j, names in enumerate(levels):
            level = num_levels - j
            if len(names) == 0:
                raise HierarchyError(f"level {level} is empty; every level needs at least one class")
            seen: dict[str, None] = {}
            for name in names:
                if name in seen:
                    raise HierarchyError(f"class {name!r} is listed twice on level {level}")
                seen[name] = None
            missing = [n for n in order[j] if n not in seen]
            if missing:
                raise HierarchyError(f"class {missing[0]!r} appears in a path but not in level {level}'s list")
            unused = [n for n in seen if n not in order[j]]
            if unused:
                raise HierarchyError(
                    f"class {unused[0]!r} on level {level} has no leaf below it (no path goes through it)"
                )
            checked.append(seen)
        return checked

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_parent_map(cls, parents: Mapping[str, str]) -> "Hierarchy":
        """Build from a child -> parent map; class names must be unique across levels."""
        if not parents:
            raise HierarchyError("the child -> parent map is empty")
        children = set(parents)
        for child in parents:  # every class must reach a root: a class above itself is refused, naming the loop
            path = [child]
            while path[-1] in children:
                nxt = parents[path[-1]]
                if nxt == path[-1]:
                    raise HierarchyError(f"class {nxt!r} is its own parent ({nxt!r} -> {nxt!r}); a class has another "
                                         "class as parent, or none (a root)")
                if nxt in path:
                    loop = path[path.index(nxt):] + [nxt]
                    raise HierarchyError(f"the classes {_fmt_loop(loop)} form a cycle; a parent is always one level "
                                         "up")
                path.append(nxt)
        leaves = [c for c in parents if c not in set(parents.values())]
        paths = []
        for leaf in leaves:
            path = [leaf]
            while path[-1] in children:
                path.append(parents[path[-1]])
            paths.append(tuple(reversed(path)))
        return cls(paths)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Hierarchy":
        """Build from ``{"paths": [...]}``, ``{"parents": {...}}`` or a list of paths; an optional
        ``"levels"`` (class names per level, coarsest first) fixes the class order."""
        if isinstance(data, list):
            return cls(data)
        if not isinstance(data, Mapping):
            raise HierarchyError(f"a hierarchy must be a mapping or a list of paths, got {type(data).__name__}")
        unknown = set(data) - {"paths", "parents", "levels"}
        if unknown:
            raise HierarchyError(
                f"unknown hierarchy key(s) {sorted(unknown)}; allowed: 'paths', 'parents', 'levels'"
            )
        if "paths" in data:
            return cls(data["paths"], levels=data.get("levels"))
        if "parents" in data:
            h = cls.from_parent_map(data["parents"])
            if "levels" in data:
                return cls(h.leaf_paths_named(), levels=data["levels"])
            return h
        raise HierarchyError("a hierarchy needs 'paths' (leaf paths, coarsest first) or 'parents' (child -> parent)")

    @classmethod
    def from_json(cls, path: str | Path) -> "Hierarchy":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
        except FileNotFoundError:
            raise HierarchyError(f"hierarchy file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise HierarchyError(f"hierarchy file {str(path)!r} cannot be read: {e}") from None
        except json.JSONDecodeError as e:
            raise HierarchyError(f"hierarchy file {str(path)!r}, line {e.lineno}: not valid JSON ({e.msg})") from None
        except HierarchyError as e:
            raise HierarchyError(f"hierarchy file {str(path)!r}: {e}") from None
        try:
            return cls.from_dict(data)
        except HierarchyError as e:
            raise HierarchyError(f"hierarchy file {str(path)!r}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists only (safe for ``torch.load(weights_only=True)`` and JSON)."""
        return {"paths": [list(p) for p in self.leaf_paths_named()],
                "levels": [list(c) for c in reversed(self._classes)]}

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ structure
    @property
    def num_levels(self) -> int:
        """Number of levels (``m`` in the paper)."""
        return len(self._classes)

    @property
    def classes(self) -> tuple[tuple[str, ...], ...]:
        """Class names per level, finest (level 1) first."""
        return self._classes

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of classes per level, finest first."""
        return tuple(len(c) for c in self._classes)

    @property
    def parents(self) -> tuple[tuple[int, ...], ...]:
        """``parents[k][i]``: index on level k+1 of the parent of class i on level k (k < m-1)."""
        return self._parents

    def parent_tensor(self, k: int) -> torch.Tensor:
        return torch.tensor(self._parents[k], dtype=torch.long)

    def ancestor_tensor(self, k: int, j: int) -> torch.Tensor:
        """For every class on level k, the index of its ancestor on level j >= k."""
        if not 0 <= k <= j < self.num_levels:
            raise IndexError(f"need 0 <= k <= j < {self.num_levels}, got k={k}, j={j}")
        idx = torch.arange(self.sizes[k])
        for level in range(k, j):
            idx = self.parent_tensor(level)[idx]
        return idx

    def leaf_paths(self) -> torch.Tensor:
        """``(C_1, m)`` long tensor: row i is leaf i's class index on each level, finest first."""
        return torch.stack([self.ancestor_tensor(0, j) for j in range(self.num_levels)], dim=1)

    def leaf_paths_named(self) -> list[tuple[str, ...]]:
        """Every leaf's path of names, coarsest first, in leaf order."""
        return [self.decode(row.tolist()) for row in self.leaf_paths()]

    @staticmethod
    def level_key(k: int) -> str:
        """Report name of 0-based finest-first level ``k``: ``'l1'`` is the finest."""
        return f"l{k + 1}"

    # ------------------------------------------------------------------ labels
    def index(self, k: int, name: str) -> int:
        """Index of class ``name`` on 0-based finest-first level ``k``."""
        try:
            return self._index[k][name]
        except KeyError:
            raise HierarchyError(
                f"label {name!r} is not a class of level {k + 1} of the hierarchy; "
                f"known: {_short_list(self._classes[k])}"
            ) from None

    def encode(self, path: Sequence[str]) -> tuple[int, ...]:
        """Class indices, finest first, of one label path given coarsest first (or a leaf name).

        Raises if a name is unknown or the path disagrees with the tree.
        """
        if isinstance(path, str):
            try:
                return self._leaf_path_index[path]
            except KeyError:
                raise HierarchyError(
                    f"label {path!r} is not a leaf of the hierarchy; known: {_short_list(self._classes[0])}"
                ) from None
        if len(path) != self.num_levels:
            raise HierarchyError(
                f"label path {_fmt_path(path)!r} has {len(path)} levels; the hierarchy has {self.num_levels}"
            )
        idx = tuple(self.index(k, name) for k, name in enumerate(reversed(tuple(path))))
        for k in range(self.num_levels - 1):
            if self._parents[k][idx[k]] != idx[k + 1]:
                child = self._classes[k][idx[k]]
                true_parent = self._classes[k + 1][self._parents[k][idx[k]]]
                raise HierarchyError(
                    f"label path {_fmt_path(path)!r} disagrees with the hierarchy: {child!r} is under "
                    f"{true_parent!r}, not {self._classes[k + 1][idx[k + 1]]!r}"
                )
        return idx

    def encode_many(self, paths: Iterable[Sequence[str] | str]) -> torch.Tensor:
        """``(n, m)`` long tensor of class indices (finest first) for label paths or leaf names."""
        cache: dict[Any, tuple[int, ...]] = {}
        rows = []
        for p in paths:
            key = p if isinstance(p, str) else tuple(p)
            row = cache.get(key)
            if row is None:
                row = cache[key] = self.encode(key)
            rows.append(row)
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), self.num_levels)

    def decode(self, indices: Sequence[int]) -> tuple[str, ...]:
        """Names, coarsest first, of class indices given finest first."""
        return tuple(self._classes[k][int(i)] for k, i in reversed(list(enumerate(indices))))

    def is_consistent(self, indices: torch.Tensor) -> torch.Tensor:
        """Bool ``(n,)``: whether each row of finest-first indices is a path of the tree."""
        ok = torch.ones(indices.shape[0], dtype=torch.bool, device=indices.device)
        for k in range(self.num_levels - 1):
            ok &= self.parent_tensor(k).to(indices.device)[indices[:, k]] == indices[:, k + 1]
        return ok

    # ------------------------------------------------------------------ misc
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hierarchy) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict()))

    def __repr__(self) -> str:
        sizes = ", ".join(f"level {k + 1}: {n}" for k, n in enumerate(self.sizes))
        return f"Hierarchy({self.num_levels} levels; {sizes})"

    def describe(self, max_children: int = 8) -> str:
        """An indented text tree, coarsest first."""
        lines: list[str] = []

        def walk(k: int, i: int, indent: int) -> None:
            lines.append("  " * indent + self._classes[k][i])
            if k == 0:
                return
            kids = [c for c, p in enumerate(self._parents[k - 1]) if p == i]
            for c in kids[:max_children]:
                walk(k - 1, c, indent + 1)
            if len(kids) > max_children:
                lines.append("  " * (indent + 1) + f"... ({len(kids) - max_children} more)")

        for root in range(self.sizes[-1]):
            walk(self.num_levels - 1, root, 0)
        return "\n".join(lines)
