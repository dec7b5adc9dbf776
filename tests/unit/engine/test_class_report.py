"""engine/class_report.py: hcal test's per-class report (CSV, markdown, confusion-matrix PNGs)."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from hcal.engine.class_report import MATRIX_MAX, TOP_CONFUSIONS, top_confusions, write_class_report
from hcal.hierarchy import Hierarchy
from hcal.metrics.per_class import LevelConfusionMatrices


def _assert_drawn_png(path, min_size=(500, 400)):
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 20  # not a blank canvas


def test_report_files_hold_each_classes_scores(toy, tmp_path):
    # toy tree, finest first: x, y (under a1), z (a2), w (b1); every sample of y predicted as x
    target = torch.tensor([toy.encode(p) for p in [("A", "a1", "x")] * 3 + [("A", "a1", "y")] * 2
                           + [("A", "a2", "z")] * 4 + [("B", "b1", "w")]])
    preds = target.clone()
    preds[3:5, 0] = toy.index(0, "x")
    matrices = LevelConfusionMatrices(toy)
    matrices.update(preds, target)
    files = write_class_report(tmp_path / "report", matrices.compute(), toy, "Test split of toy, 10 samples.")
    assert [f.name for f in files] == ["per_class.csv", "report.md", "confusion_l1.png", "confusion_l2.png",
                                      "confusion_l3.png"]
    rows = list(csv.DictReader(open(tmp_path / "report" / "per_class.csv")))
    assert list(rows[0]) == ["level", "class", "parent", "precision", "recall", "f1", "support", "predicted"]
    by = {(r["level"], r["class"]): r for r in rows}
    assert len(rows) == sum(toy.sizes)
    x, y = by[("1", "x")], by[("1", "y")]
    assert (float(x["precision"]), float(x["recall"]), x["support"], x["predicted"]) == (0.6, 1.0, "3", "5")
    assert float(x["f1"]) == pytest.approx(0.75)
    assert (float(y["precision"]), float(y["recall"]), float(y["f1"]), y["support"]) == (0.0, 0.0, 0.0, "2")
    assert x["parent"] == "a1" and by[("3", "A")]["parent"] == ""
    assert all(float(r["f1"]) == 1.0 for r in rows if r["level"] != "1")  # coarse levels all right
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| x | a1 | 0.6000 | 1.0000 | 0.7500 | 3 |" in md
    assert "| **macro average** | | 0.6500 | 0.7500 | 0.6875 | 10 |" in md  # (0.6+0+1+1)/4, ...
    assert "![level-1 confusion matrix](confusion_l1.png)" in md
    for png in files[2:]:
        _assert_drawn_png(png)


def test_a_large_level_gets_its_top_confusions_instead_of_a_matrix(tmp_path):
    leaves = MATRIX_MAX + 5
    h = Hierarchy([(f"g{i % 3}", f"c{i}") for i in range(leaves)])
    k = 0  # the large, finest level
    target = torch.arange(leaves).repeat(4)
    preds = target.clone()
    preds[:leaves] = (target[:leaves] + 1) % leaves  # one confusion per class, each once
    preds[0] = preds[leaves] = 7  # class 0 mistaken for c7 twice
    confusion = torch.from_numpy(np.bincount(target * leaves + preds, minlength=leaves * leaves).reshape(leaves,
                                                                                                        leaves))
    top = top_confusions(confusion, h.classes[k])
    assert len(top) == TOP_CONFUSIONS and top[0] == ("c0", "c7", 2, 0.5)
    assert all(a[2] >= b[2] for a, b in zip(top, top[1:]))
    coarse = torch.eye(3, dtype=torch.long) * 10
    files = write_class_report(tmp_path, [confusion, coarse], h, "t")
    assert [f.name for f in files] == ["per_class.csv", "report.md", "confusion_l2.png"]
    md = (tmp_path / "report.md").read_text()
    assert f"Most frequent confusions ({TOP_CONFUSIONS} largest off-diagonal counts of the {leaves} x {leaves}" in md
    assert "| c0 | c7 | 2 | 0.5000 |" in md
