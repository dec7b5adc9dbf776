"""engine/predictions.py and hcal.predict: the Predictor's outputs; rows with top-k, probabilities, errors; CSV, JSON
lines."""

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from hcal import predict
from hcal.decoding import decode
from hcal.engine.module import HierarchicalModule
from hcal.engine.predict_inputs import array_inputs
from hcal.engine.predictions import Predictor, csv_columns, output_format, prediction_rows, run_predictor
from hcal.errors import ConfigError, DataError
from hcal.inputs import InputSpec
from tests.helpers import untrained_checkpoint

SPEC = InputSpec(kind="vector", dim=6)


@pytest.fixture
def ckpt(tmp_path, toy):
    return untrained_checkpoint(tmp_path / "m.ckpt", toy, SPEC)


@pytest.fixture
def x():
    return torch.randn(9, 6, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("mode", ["nearest", "consistent"])
def test_predictor_is_the_modules_prediction_with_probabilities(ckpt, x, mode):
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    predictor = Predictor(module, mode)
    with torch.no_grad():
        labels, scores, path_score, *probs = predictor(x)
        expected_labels, expected_scores = decode(module(x), module.hierarchy, mode)
    assert predictor.output_names() == ["labels", "scores", "path_score", "probs_l1", "probs_l2", "probs_l3"]
    assert torch.equal(labels, expected_labels)
    torch.testing.assert_close(scores, expected_scores)
    torch.testing.assert_close(path_score, scores.prod(dim=1))
    assert [p.shape for p in probs] == [(9, 4), (9, 3), (9, 2)]
    for k, p in enumerate(probs):
        torch.testing.assert_close(p.sum(dim=1), torch.ones(9))
        torch.testing.assert_close(p.gather(1, labels[:, k : k + 1]).squeeze(1), scores[:, k])
    # batches give the same as one pass
    joined = run_predictor(predictor, x.split(4))
    for a, b in zip(joined, (labels, scores, path_score, *probs)):
        torch.testing.assert_close(a, b)


def test_rows_top_k_probabilities_and_errors(ckpt, x, toy):
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    predictor = Predictor(module, "consistent")
    given = x.numpy().copy()
    given[2, 0] = np.nan
    inputs = array_inputs(given, SPEC)
    outputs = run_predictor(predictor, [inputs.x])
    rows = prediction_rows(inputs, outputs, toy, top_k=3, probabilities=True, skip_bad=True)
    assert len(rows) == 9 and [r["input"] for r in rows] == list(range(9))
    bad = rows[2]
    assert bad["error"].startswith("holds a non-finite value (nan)")
    assert bad["label_l1"] is None and bad["top_l1"] is None and bad["probs_l2"] is None
    good = rows[3]  # the third row predicted (the NaN row is left out of outputs)
    labels, scores, path_score, *probs = (t[2] for t in outputs)
    assert good["error"] is None and good["consistent"] is True  # consistent decoding
    assert [good[f"label_l{k + 1}"] for k in range(3)] == [toy.classes[k][int(labels[k])] for k in range(3)]
    assert good["path_score"] == pytest.approx(float(path_score), abs=1e-6)
    assert good["path_score"] == pytest.approx(math.prod(good[f"score_l{k + 1}"] for k in range(3)), abs=1e-5)
    top = good["top_l1"]
    assert len(top) == 3 and [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
    assert top[0]["score"] == pytest.approx(float(probs[0].max()), abs=1e-6)
    assert len(good["top_l3"]) == 2  # K is cut to the level's size
    assert list(good["probs_l2"]) == list(toy.classes[1])
    assert sum(good["probs_l2"].values()) == pytest.approx(1.0, abs=1e-5)
    assert good["probs_l1"][top[0]["label"]] == top[0]["score"]
    # every row is a JSON document
    assert json.loads(json.dumps(rows)) == rows


def test_csv_columns_flatten_the_rows(ckpt, x, toy, tmp_path):
    out = tmp_path / "p.csv"
    rows = predict(ckpt, x, output=out, top_k=2, probabilities=True, echo=lambda *a: None)
    table = list(csv.DictReader(out.open()))
    columns = csv_columns(toy, top_k=2, probabilities=True)
    assert list(table[0]) == columns
    assert columns[:9] == ["input", "label_l1", "score_l1", "label_l2", "score_l2", "label_l3", "score_l3",
                           "path_score", "consistent"]
    assert columns[9:13] == ["top1_label_l1", "top1_score_l1", "top2_label_l1", "top2_score_l1"]
    assert columns[-2:] == ["prob_l3:A", "prob_l3:B"]
    for row, line in zip(rows, table):
        assert line["label_l2"] == row["label_l2"] and float(line["score_l2"]) == row["score_l2"]
        assert line["top2_label_l1"] == row["top_l1"][1]["label"]
        assert float(line["prob_l1:z"]) == row["probs_l1"]["z"]


def test_json_lines_and_printing(ckpt, x, tmp_path):
    out = tmp_path / "p.jsonl"  # the suffix chooses JSON lines
    echoed = []
    rows = predict(ckpt, x, output=out, top_k=1, echo=echoed.append)
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    assert echoed == [f"wrote 9 predictions to {out}"]
    printed = []
    predict(ckpt, x[:2], format="jsonl", top_k=1, echo=printed.append)
    assert [json.loads(line) for line in printed[0].splitlines()] == rows[:2]
    assert output_format(None, None) == "csv" and output_format(None, "a.csv") == "csv"
    with pytest.raises(ConfigError, match="--format 'xml'"):
        output_format("xml", None)
    with pytest.raises(ConfigError, match="--top-k -1: expected an integer >= 0"):
        predict(ckpt, x, top_k=-1, echo=printed.append)


def test_python_predict_takes_paths_arrays_and_tensors_alike(ckpt, x, tmp_path):
    np.save(tmp_path / "x.npy", x.numpy())
    quiet = {"echo": lambda *a: None}
    from_file = predict(ckpt, [str(tmp_path / "x.npy")], **quiet)
    from_path = predict(ckpt, tmp_path / "x.npy", **quiet)
    from_array, from_tensor = predict(ckpt, x.numpy(), **quiet), predict(ckpt, x, **quiet)
    assert from_file == from_path
    assert [r["input"] for r in from_file[:2]] == [f"{tmp_path / 'x.npy'}:0", f"{tmp_path / 'x.npy'}:1"]
    strip = [{k: v for k, v in r.items() if k != "input"} for r in from_file]
    assert [{k: v for k, v in r.items() if k != "input"} for r in from_array] == strip
    assert from_tensor == from_array


def test_bad_rows_stop_or_are_recorded(ckpt, x, tmp_path):
    bad = x.numpy().copy()
    bad[4, 1] = np.inf
    with pytest.raises(DataError, match=r"input '4': holds a non-finite value \(inf\).*--skip-bad"):
        predict(ckpt, bad, echo=lambda *a: None)
    echoed = []
    rows = predict(ckpt, bad, output=tmp_path / "p.csv", skip_bad=True, echo=echoed.append)
    assert [r["error"] is not None for r in rows] == [False] * 4 + [True] + [False] * 4
    assert echoed == [f"wrote 8 predictions to {tmp_path / 'p.csv'} (1 inputs could not be predicted: see the error "
                      "column)"]
    line = list(csv.DictReader(io.StringIO((tmp_path / "p.csv").read_text())))[4]
    assert line["label_l1"] == "" and line["error"].startswith("holds a non-finite value")
    # nothing that can be predicted: only error rows
    np.save(tmp_path / "empty.npy", np.zeros((0, 6), "float32"))
    rows = predict(ckpt, [str(tmp_path / "empty.npy")], skip_bad=True, echo=lambda *a: None)
    assert rows == [{"input": str(tmp_path / "empty.npy"), "label_l1": None, "score_l1": None, "label_l2": None,
                     "score_l2": None, "label_l3": None, "score_l3": None, "path_score": None, "consistent": None,
                     "error": "holds no rows (shape (0, 6))"}]
