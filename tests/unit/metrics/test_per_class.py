"""metrics/per_class.py: the confusion matrices and per-class scores agree with scikit-learn's."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from hcal.metrics.per_class import LevelConfusionMatrices, per_class_scores


def _random_predictions(toy, n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = toy.leaf_paths()[torch.randint(len(toy.classes[0]), (n,), generator=g)]
    preds = torch.stack([torch.randint(s, (n,), generator=g) for s in toy.sizes], dim=1)
    keep = torch.rand(n, generator=g) < 0.5  # half right, so the scores are not all near chance
    return torch.where(keep[:, None], target, preds), target


def test_confusion_matrices_equal_scikit_learns_in_batches(toy):
    preds, target = _random_predictions(toy)
    matrices = LevelConfusionMatrices(toy)
    for start in range(0, len(preds), 64):
        matrices.update(preds[start : start + 64], target[start : start + 64])
    for k, m in enumerate(matrices.compute()):
        expected = confusion_matrix(target[:, k], preds[:, k], labels=list(range(toy.sizes[k])))
        assert np.array_equal(m.numpy(), expected)
    matrices.reset()
    assert all(int(level.confmat.sum()) == 0 for level in matrices.levels)


def test_per_class_scores_equal_scikit_learns_with_zero_division():
    target = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])
    preds = torch.tensor([0, 1, 1, 1, 0, 1, 1, 0])  # class 2 never predicted right, 3 never predicted; 4 absent
    m = torch.from_numpy(confusion_matrix(target, preds, labels=[0, 1, 2, 3, 4]))
    scores = per_class_scores(m)
    p, r, f, s = precision_recall_fscore_support(target, preds, labels=[0, 1, 2, 3, 4], zero_division=0)
    assert scores["precision"].numpy() == pytest.approx(p)
    assert scores["recall"].numpy() == pytest.approx(r)
    assert scores["f1"].numpy() == pytest.approx(f)
    assert scores["support"].tolist() == s.tolist() == [2, 3, 2, 1, 0]
    assert scores["predicted"].tolist() == [3, 5, 0, 0, 0]
