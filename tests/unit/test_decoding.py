"""decoding.py: consistent decoding is the best path of the tree."""

import pytest
import torch

from hcal.decoding import decode
from hcal.hierarchy import Hierarchy
from hcal.metrics import HierarchicalViolationRate


def _brute_force_best_path(logits, h):
    best = []
    for i in range(logits[0].shape[0]):
        scores = {}
        for leaf in range(h.sizes[0]):
            path = h.leaf_paths()[leaf]
            scores[leaf] = sum(float(torch.log_softmax(z[i], 0)[path[k]]) for k, z in enumerate(logits))
        best.append(h.leaf_paths()[max(scores, key=scores.get)].tolist())
    return best


@pytest.mark.parametrize("seed", range(5))
def test_consistent_decoding_never_violates_and_is_the_best_path(seed):
    torch.manual_seed(seed)
    h = Hierarchy([(f"r{i % 7 % 3}", f"m{i % 7}", f"leaf{i}") for i in range(21)])
    logits = [torch.randn(40, n) * 3 for n in h.sizes]
    preds, probs = decode(logits, h, "consistent")
    hvr = HierarchicalViolationRate(h)
    hvr.update(preds)
    assert float(hvr.compute()) == 0.0
    assert bool(h.is_consistent(preds).all())
    assert preds.tolist() == _brute_force_best_path(logits, h)
    nearest, _ = decode(logits, h, "nearest")
    assert not bool(h.is_consistent(nearest).all())  # random logits do violate: the test can fail
    for k in range(h.num_levels):
        expected = torch.softmax(logits[k], 1).gather(1, preds[:, k : k + 1]).squeeze(1)
        assert torch.allclose(probs[:, k], expected, atol=1e-6)
