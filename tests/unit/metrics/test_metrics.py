"""Metrics against values computed by hand on a 3-level example (see the comments)."""

import numpy as np
import pytest
import torch
from hiclass import metrics as hiclass_metrics

from hcal.hierarchy import Hierarchy
from hcal.metrics import (
    FullPathAccuracy,
    HiClassPrecisionRecallF1,
    HierarchicalMetrics,
    HierarchicalPrecisionRecallF1,
    HierarchicalViolationRate,
    LevelAccuracy,
    LinkViolationRate,
)

# Toy tree (conftest): level 1 x=0 y=1 z=2 w=3; level 2 a1=0 a2=1 b1=2; level 3 A=0 B=1.
# Rows are (level 1, level 2, level 3).
TARGET = torch.tensor([[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 2, 1], [3, 2, 1]])


PREDS = torch.tensor(
    [
        [0, 0, 0],  # x a1 A: all right, consistent.            P={x,a1,A}       |P|=3, |P&T|=3
        [0, 0, 0],  # x a1 A vs y a1 A: level 1 wrong.          P={x,a1,A}       |P|=3, |P&T|=2
        [2, 0, 0],  # z a1 A vs z a2 A: parent(z)=a2 != a1.     P={z,a2,a1,A}    |P|=4, |P&T|=3
        [3, 2, 0],  # w b1 A vs w b1 B: parent(b1)=B != A.      P={w,b1,B,A}     |P|=4, |P&T|=3
        [0, 2, 0],  # x b1 A vs w b1 B: both links broken.      P={x,a1,A,b1,B}  |P|=5, |P&T|=2
    ]
)


def test_level_accuracy():
    m = LevelAccuracy(3)
    m.update(PREDS, TARGET)
    assert m.compute().tolist() == pytest.approx([3 / 5, 4 / 5, 3 / 5])


def test_full_path_accuracy():
    m = FullPathAccuracy(3)
    m.update(PREDS, TARGET)
    assert float(m.compute()) == pytest.approx(1 / 5)


def test_hvr_and_links(toy):
    hvr = HierarchicalViolationRate(toy)
    hvr.update(PREDS, TARGET)
    assert float(hvr.compute()) == pytest.approx(3 / 5)  # rows 3, 4, 5
    links = LinkViolationRate(toy)
    links.update(PREDS, TARGET)
    assert links.compute().tolist() == pytest.approx([2 / 5, 2 / 5])  # 1-2: rows 3, 5; 2-3: rows 4, 5


def test_hierarchical_prf(toy):
    m = HierarchicalPrecisionRecallF1(toy)
    m.update(PREDS, TARGET)
    out = m.compute()
    inter, predicted, true = 3 + 2 + 3 + 3 + 2, 3 + 3 + 4 + 4 + 5, 5 * 3
    assert float(out["hp"]) == pytest.approx(inter / predicted)  # 13/19
    assert float(out["hr"]) == pytest.approx(inter / true)  # 13/15
    assert float(out["hf1"]) == pytest.approx(2 * inter / (predicted + true))  # 13/17


def test_hiclass_prf_by_hand(toy):
    # HiClass's predicted set is the three predicted classes (no ancestors): |P| = |T| = 3 per row, and
    # |P&T| counts the levels predicted right: 3, 2, 2, 2, 1 (rows as above).
    m = HiClassPrecisionRecallF1(3)
    m.update(PREDS, TARGET)
    out = m.compute()
    assert {k: float(v) for k, v in out.items()} == pytest.approx(
        {"hp_hiclass": 10 / 15, "hr_hiclass": 10 / 15, "hf1_hiclass": 10 / 15})


def _names(h: Hierarchy, indices: torch.Tensor) -> np.ndarray:
    """Label names, coarsest first, of finest-first class indices, as HiClass takes them."""
    return np.array([h.decode(row) for row in indices.tolist()])


@pytest.mark.parametrize("seed", range(3))
def test_hiclass_prf_equals_hiclass_metrics_on_inconsistent_predictions(seed):
    # 3 roots x 3 x 3 with names unique across levels; random per-level predictions break the tree often.
    h = Hierarchy([(f"R{a}", f"R{a}.{b}", f"R{a}.{b}.{c}") for a in range(3) for b in range(3) for c in range(3)])
    g = torch.Generator().manual_seed(seed)
    target = h.leaf_paths()[torch.randint(h.sizes[0], (200,), generator=g)]
    preds = torch.stack([torch.where(torch.rand(200, generator=g) < 0.7, target[:, k],
                                     torch.randint(n, (200,), generator=g)) for k, n in enumerate(h.sizes)], dim=1)
    assert not h.is_consistent(preds).all()
    m = HiClassPrecisionRecallF1(3)
    m.update(preds, target)
    out = m.compute()
    y_true, y_pred = _names(h, target), _names(h, preds)
    assert float(out["hp_hiclass"]) == pytest.approx(hiclass_metrics.precision(y_true, y_pred), abs=1e-12)
    assert float(out["hr_hiclass"]) == pytest.approx(hiclass_metrics.recall(y_true, y_pred), abs=1e-12)
    assert float(out["hf1_hiclass"]) == pytest.approx(hiclass_metrics.f1(y_true, y_pred), abs=1e-12)
    # hcal's own hF1 counts the ancestors of inconsistent predictions: lower precision, the same recall
    hcal = HierarchicalPrecisionRecallF1(h)
    hcal.update(preds, target)
    ours = hcal.compute()
    assert float(ours["hp"]) < float(out["hp_hiclass"]) and float(ours["hr"]) >= float(out["hr_hiclass"])


def test_hcal_prf_equals_hiclass_metrics_on_consistent_paths():
    h = Hierarchy([(f"R{a}", f"R{a}.{b}", f"R{a}.{b}.{c}") for a in range(2) for b in range(3) for c in range(2)])
    g = torch.Generator().manual_seed(0)
    target, preds = (h.leaf_paths()[torch.randint(h.sizes[0], (100,), generator=g)] for _ in range(2))
    hcal, hiclass = HierarchicalPrecisionRecallF1(h), HiClassPrecisionRecallF1(3)
    hcal.update(preds, target)
    hiclass.update(preds, target)
    expected = hiclass_metrics.f1(_names(h, target), _names(h, preds))
    assert float(hcal.compute()["hf1"]) == pytest.approx(expected, abs=1e-12)
    assert float(hiclass.compute()["hf1_hiclass"]) == pytest.approx(expected, abs=1e-12)


def test_hierarchical_prf_matches_hiclass_on_consistent_paths(toy):
    # For path predictions, HiClass's hP = sum|P&T| / sum|P| over the label paths' node sets.
    preds = torch.tensor([[1, 0, 0], [2, 1, 0], [3, 2, 1]])
    target = torch.tensor([[0, 0, 0], [3, 2, 1], [3, 2, 1]])
    m = HierarchicalPrecisionRecallF1(toy)
    m.update(preds, target)
    # row 1: {y,a1,A} vs {x,a1,A} -> 2; row 2: {z,a2,A} vs {w,b1,B} -> 0; row 3: 3.
    assert float(m.compute()["hp"]) == pytest.approx(5 / 9)
    assert float(m.compute()["hr"]) == pytest.approx(5 / 9)


def test_accumulates_over_batches_and_resets(toy):
    m = HierarchicalMetrics(toy)
    m.update(PREDS[:2], TARGET[:2])
    m.update(PREDS[2:], TARGET[2:])
    out = m.compute()
    assert out["acc_l1"] == pytest.approx(0.6) and out["acc_l2"] == pytest.approx(0.8)
    assert out["hvr"] == pytest.approx(0.6) and out["hvr_l1_l2"] == pytest.approx(0.4)
    assert out["full_path_acc"] == pytest.approx(0.2) and out["hf1"] == pytest.approx(13 / 17)
    assert out["acc_mean"] == pytest.approx((0.6 + 0.8 + 0.6) / 3) == pytest.approx(out["hf1_hiclass"])
    assert list(out) == [
        "acc_l1", "acc_l2", "acc_l3", "acc_mean", "hvr", "hvr_l1_l2", "hvr_l2_l3", "full_path_acc", "hp", "hr", "hf1",
        "hp_hiclass", "hr_hiclass", "hf1_hiclass",
    ]
    m.reset()
    m.update(TARGET, TARGET)
    out = m.compute()
    assert out["acc_mean"] == 1.0 and out["hvr"] == 0.0 and out["hf1"] == 1.0 and out["hf1_hiclass"] == 1.0


def test_shape_errors(toy):
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        LevelAccuracy(3).update(PREDS[:, :2], TARGET[:, :2])
