"""aggregation.py: FA's class means, by hand."""

import pytest
import torch

from hcal.aggregation import class_means


def test_class_means_by_hand():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, 0.0]], requires_grad=True)
    labels = torch.tensor([1, 0, 1, 1])
    means, classes, present = class_means(feats, labels, 3)  # 3 classes <= 4 samples: row c is class c
    assert classes.tolist() == [0, 1, 2] and present.tolist() == [True, True, False]
    assert means.flatten().tolist() == pytest.approx([0.0, 1.0, 7 / 3, 2 / 3, 0.0, 0.0])
    means.sum().backward()  # each sample's gradient is 1 / (size of its class)
    assert feats.grad[:, 0].tolist() == pytest.approx([1 / 3, 1.0, 1 / 3, 1 / 3])


def test_class_means_with_more_classes_than_samples():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    labels = torch.tensor([40, 7, 40])  # 50 classes, 3 samples: rows are the distinct classes, ascending
    means, classes, present = class_means(feats, labels, 50)
    assert means.shape == (3, 2) and present.tolist() == [True, True, False]
    assert classes[:2].tolist() == [7, 40]
    assert means[:2].tolist() == [[0.0, 1.0], [2.0, 1.5]]
    assert means[2].tolist() == [0.0, 0.0]
