"""path_loss.py (hcal's own): the per-level losses of the path distribution, against a
re-computation by enumerating the tree's paths in Python, and on a tiny batch by hand."""

import math

import pytest
import torch

from hcal.hierarchy import Hierarchy
from hcal.path_loss import path_level_nll, path_scores


def _enumerated(logits, y, h):
    """Every sample: the probability of each path by explicit exponentials, then per level the
    probability mass of the paths whose class on that level is the true one."""
    paths = h.leaf_paths().tolist()
    losses = [0.0] * h.num_levels
    n = y.shape[0]
    for i in range(n):
        weights = [math.exp(sum(float(logits[k][i, path[k]]) for k in range(h.num_levels))) for path in paths]
        total = sum(weights)
        for k in range(h.num_levels):
            mass = sum(w for w, path in zip(weights, paths) if path[k] == int(y[i, k]))
            losses[k] += -math.log(mass / total) / n
    return losses


@pytest.mark.parametrize("seed", range(3))
def test_path_level_nll_matches_path_enumeration(seed):
    torch.manual_seed(seed)
    h = Hierarchy([(f"r{i % 7 % 3}", f"m{i % 7}", f"leaf{i}") for i in range(21)])
    logits = [torch.randn(12, n) * 2 for n in h.sizes]
    y = h.leaf_paths()[torch.randint(0, h.sizes[0], (12,))]
    got = path_level_nll(logits, y, h.leaf_paths())
    assert got.tolist() == pytest.approx(_enumerated(logits, y, h), rel=1e-5)


def test_path_level_nll_by_hand_on_two_paths():
    """Tree a > {x, y}: one root, two leaves. Scores: leaf level (1, 0), root level (5). Path
    scores 6 and 5: the leaf loss is -log(e^6 / (e^6 + e^5)) = log(1 + e^-1); the root holds
    every path, so its loss is 0."""
    h = Hierarchy([("a", "x"), ("a", "y")])
    logits = [torch.tensor([[1.0, 0.0]]), torch.tensor([[5.0]])]
    y = torch.tensor([[h.index(0, "x"), 0]])
    x_first = h.index(0, "x") == 0
    leaf_scores = logits[0] if x_first else logits[0].flip(1)
    got = path_level_nll([leaf_scores, logits[1]], y, h.leaf_paths())
    assert got.tolist() == pytest.approx([math.log(1 + math.exp(-1)), 0.0], abs=1e-6)


def test_per_level_softmax_normalisers_do_not_change_the_loss():
    """Adding a constant to one level's scores moves every path by the same amount."""
    torch.manual_seed(0)
    h = Hierarchy([(f"r{i % 2}", f"m{i % 4}", f"leaf{i}") for i in range(8)])
    logits = [torch.randn(5, n) for n in h.sizes]
    y = h.leaf_paths()[torch.tensor([0, 3, 5, 7, 2])]
    shifted = [z + 3.0 * (k + 1) for k, z in enumerate(logits)]
    torch.testing.assert_close(path_level_nll(logits, y, h.leaf_paths()), path_level_nll(shifted, y, h.leaf_paths()))
    assert path_scores(shifted, h.leaf_paths()).shape == (5, 8)
    with pytest.raises(ValueError, match="expected 3 levels"):
        path_scores(logits[:2], h.leaf_paths())
