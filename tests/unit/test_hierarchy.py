"""hierarchy.py: the class tree, its numbering, validation and file formats."""

import json

import pytest
import torch

from hcal.errors import HierarchyError
from hcal.hierarchy import Hierarchy
from tests.helpers import TOY_PATHS


def test_levels_are_numbered_finest_first(toy):
    assert toy.num_levels == 3
    assert toy.classes[0] == ("x", "y", "z", "w")  # level 1 = finest
    assert toy.classes[1] == ("a1", "a2", "b1")
    assert toy.classes[2] == ("A", "B")  # level m = coarsest
    assert toy.sizes == (4, 3, 2)
    assert toy.parents[0] == (0, 0, 1, 2)  # x,y -> a1; z -> a2; w -> b1
    assert toy.parents[1] == (0, 0, 1)  # a1, a2 -> A; b1 -> B
    assert Hierarchy.level_key(0) == "l1"


def test_encode_decode_roundtrip(toy):
    assert toy.encode(("A", "a2", "z")) == (2, 1, 0)
    assert toy.encode("w") == (3, 2, 1)  # a leaf name alone
    assert toy.decode((2, 1, 0)) == ("A", "a2", "z")
    y = toy.encode_many([("B", "b1", "w"), "x", ("B", "b1", "w")])
    assert y.tolist() == [[3, 2, 1], [0, 0, 0], [3, 2, 1]]


def test_leaf_paths_and_ancestors(toy):
    assert toy.leaf_paths().tolist() == [[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 2, 1]]
    assert toy.ancestor_tensor(0, 2).tolist() == [0, 0, 0, 1]
    assert toy.ancestor_tensor(1, 1).tolist() == [0, 1, 2]
    assert toy.leaf_paths_named() == TOY_PATHS


def test_is_consistent(toy):
    rows = torch.tensor([[0, 0, 0], [2, 0, 0], [3, 2, 0]])
    assert toy.is_consistent(rows).tolist() == [True, False, False]


def test_same_name_on_two_levels_is_allowed():
    h = Hierarchy([("animal", "bird", "bird"), ("animal", "pet", "cat")])
    assert h.encode(("animal", "bird", "bird")) == (0, 0, 0)


def test_repeated_paths_are_one_class():
    h = Hierarchy(TOY_PATHS + TOY_PATHS[::-1])
    assert h.sizes == (4, 3, 2)


def test_deeper_and_two_level_trees():
    two = Hierarchy([("p", "c1"), ("p", "c2"), ("q", "c3")])
    assert two.num_levels == 2 and two.sizes == (3, 2)
    deep = Hierarchy([tuple(f"n{i}{j}" for j in range(6)) for i in range(3)])
    assert deep.num_levels == 6


@pytest.mark.parametrize(
    "paths, fragments",
    [
        ([("A", "a1", "x"), ("B", "a1", "y")], ["'a1'", "two parents", "'A'", "'B'"]),
        ([("A", "a1", "x"), ("A", "a2", "x")], ["'x'", "two parents"]),
        ([("A", "a1", "x"), ("A", "y")], ["same depth", "A > y"]),
        ([("A",), ("B",)], ["at least 2"]),
        ([], ["at least one"]),
        ([("A", "", "x")], ["empty class name"]),
    ],
)
def test_invalid_trees_name_the_culprit(paths, fragments):
    with pytest.raises(HierarchyError) as info:
        Hierarchy(paths)
    assert isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_levels_list_validation():
    with pytest.raises(HierarchyError, match="level 2 is empty"):
        Hierarchy([("A", "a", "x")], levels=[["A"], [], ["x"]])
    with pytest.raises(HierarchyError, match="'x' is listed twice on level 1"):
        Hierarchy([("A", "a", "x")], levels=[["A"], ["a"], ["x", "x"]])
    with pytest.raises(HierarchyError, match="'q' on level 1 has no leaf"):
        Hierarchy([("A", "a", "x")], levels=[["A"], ["a"], ["x", "q"]])
    h = Hierarchy(TOY_PATHS, levels=[["B", "A"], ["b1", "a2", "a1"], ["w", "z", "y", "x"]])
    assert h.classes[0] == ("w", "z", "y", "x") and h.encode("x") == (3, 2, 1)


def test_path_that_disagrees_with_the_tree(toy):
    with pytest.raises(HierarchyError, match=r"'z' is under 'a2', not 'a1'"):
        toy.encode(("A", "a1", "z"))
    with pytest.raises(HierarchyError, match=r"label 'q' is not a class of level 1"):
        toy.encode(("A", "a1", "q"))
    with pytest.raises(HierarchyError, match=r"label 'q' is not a leaf"):
        toy.encode("q")
    with pytest.raises(HierarchyError, match="has 2 levels; the hierarchy has 3"):
        toy.encode(("A", "x"))


def test_parent_map(toy):
    h = Hierarchy.from_parent_map({"x": "a1", "y": "a1", "z": "a2", "w": "b1", "a1": "A", "a2": "A", "b1": "B"})
    assert h == toy
    with pytest.raises(HierarchyError, match="same depth"):
        Hierarchy.from_parent_map({"x": "a1", "a1": "A", "y": "A"})
    with pytest.raises(HierarchyError, match="cycle"):
        Hierarchy.from_parent_map({"x": "a", "a": "b", "b": "a"})
    # a class above itself is said so, even where the rest of the map is a tree (not "'cat' is not a leaf")
    with pytest.raises(HierarchyError, match="class 'cat' is its own parent"):
        Hierarchy.from_parent_map({"dog": "Pet", "Pet": "Animal", "cat": "cat"})
    with pytest.raises(HierarchyError, match="the classes 'p' -> 'q' -> 'p' form a cycle"):
        Hierarchy.from_parent_map({"dog": "Pet", "Pet": "Animal", "cat": "p", "p": "q", "q": "p"})


def test_json_roundtrip_and_formats(tmp_path, toy):
    f = tmp_path / "h.json"
    toy.to_json(f)
    assert Hierarchy.from_json(f) == toy
    f.write_text(json.dumps({"parents": {"x": "a1", "y": "a1", "z": "a2", "w": "b1", "a1": "A", "a2": "A", "b1": "B"}}))
    assert Hierarchy.from_json(f) == toy
    f.write_text(json.dumps([list(p) for p in TOY_PATHS]))
    assert Hierarchy.from_json(f) == toy


def test_json_errors_name_the_file(tmp_path):
    f = tmp_path / "h.json"
    f.write_text('{"parents": {"x": "a1", "x": "a2", "a1": "A", "a2": "A"}}')
    with pytest.raises(HierarchyError, match=r"h.json.*'x' appears twice"):
        Hierarchy.from_json(f)
    f.write_text('{"paths": [["A", "a", "x"],\n ["A", "a" "y"]]}')
    with pytest.raises(HierarchyError, match=r"h.json.*line 2"):
        Hierarchy.from_json(f)
    f.write_text('{"nodes": []}')
    with pytest.raises(HierarchyError, match="unknown hierarchy key"):
        Hierarchy.from_json(f)
    with pytest.raises(HierarchyError, match="does not exist"):
        Hierarchy.from_json(tmp_path / "missing.json")


def test_to_dict_is_plain_data(toy):
    d = toy.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert Hierarchy.from_dict(d) == toy
