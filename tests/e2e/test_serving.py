"""hcal predict's outputs and hcal export through the real command line, on trained models.

The exported files are run by plain torch and onnxruntime in a fresh process that never imports hcal,
and give what ``hcal predict`` wrote, to 1e-5.
"""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from hcal.cli import main
from hcal.datasets.synthetic import make_synthetic
from tests.fixtures import FIT, make_nested
from tests.helpers import assert_one_line_error

SERVE = """
import json, sys
import numpy as np
fmt, model_path, x_path = sys.argv[1:4]
x = np.load(x_path)
if fmt == "torchscript":
    import torch
    files = {"hcal.json": ""}
    model = torch.jit.load(model_path, _extra_files=files)
    outputs = [t.numpy() for t in model(torch.from_numpy(x))]
    meta = json.loads(files["hcal.json"])
else:
    import onnxruntime
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["hcal"])
    outputs = session.run(None, {"input": x})
assert not [m for m in sys.modules if m.split(".")[0] == "hcal"], "the exported model needed hcal"
labels, scores, path_score, *probs = outputs
names = [[meta["classes"][k][i] for k, i in enumerate(row)] for row in labels.tolist()]
print(json.dumps({"labels": names, "scores": scores.tolist(), "path_score": path_score.tolist(),
                  "probs": [p.tolist() for p in probs], "meta": meta}))
"""


def _serve(fmt: str, model, x_path) -> dict:
    proc = subprocess.run([sys.executable, "-c", SERVE, fmt, str(model), str(x_path)], capture_output=True, text=True,
                          timeout=120, env={"PYTHONWARNINGS": "ignore", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _assert_matches(served: dict, rows: list[dict], levels: int) -> None:
    """The export's outputs are hcal predict's rows (scores rounded to 6 decimals there)."""
    assert len(served["labels"]) == len(rows)
    for i, row in enumerate(rows):
        assert served["labels"][i] == [row[f"label_l{k + 1}"] for k in range(levels)], i
        for k in range(levels):
            assert served["scores"][i][k] == pytest.approx(float(row[f"score_l{k + 1}"]), abs=1e-5)
            assert served["probs"][k][i] == pytest.approx([float(p) for p in row[f"probs_l{k + 1}"].values()],
                                                          abs=1e-5)
        assert served["path_score"][i] == pytest.approx(float(row["path_score"]), abs=1e-5)


def _run(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def vector_ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("serving") / "run"
    assert _run("fit", "--dataset", "synthetic", "--epochs", "1", "--no-progress", "--run-dir", run) == 0
    return run / "checkpoints" / "best.ckpt"


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_vector_model_gives_what_hcal_predict_gives(vector_ckpt, cli, tmp_path, fmt):
    _, _, _, x_test, _ = make_synthetic()
    np.save(tmp_path / "x.npy", x_test[:40].numpy())
    preds = tmp_path / "p.jsonl"
    r = cli("predict", "--ckpt", vector_ckpt, tmp_path / "x.npy", "--probabilities", "--decode", "consistent",
            "--output", preds)
    assert r.code == 0, r
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert all(row["consistent"] for row in rows)
    model = tmp_path / f"model.{fmt}"
    r = cli("export", "--ckpt", vector_ckpt, "--format", fmt, "--out", model, "--decode", "consistent")
    assert r.code == 0, r
    assert f"wrote {fmt} model to {model}" in r.out and r.err == ""
    served = _serve(fmt, model, tmp_path / "x.npy")
    _assert_matches(served, rows, 3)
    assert served["meta"]["decode"] == "consistent" and served["meta"]["input"]["shape"] == [None, 16]
    again = cli("export", "--ckpt", vector_ckpt, "--format", fmt, "--out", model)
    assert_one_line_error(again, "--out", "exists", "--overwrite")


def test_exported_image_model_with_the_preprocessing_its_metadata_states(cli, tmp_path):
    root = make_nested(tmp_path / "data", per_class=3, size=(20, 14))
    run = tmp_path / "run"
    assert cli("fit", "--dataset", "folder", "--data-dir", root, "--dataset-arg", "size=28", *FIT,
               "--run-dir", run).code == 0
    ckpt = run / "checkpoints" / "best.ckpt"
    images = sorted((root / "test").rglob("*.png"))
    preds = tmp_path / "p.csv"
    assert cli("predict", "--ckpt", ckpt, root / "test", "--probabilities", "--output", preds).code == 0
    table = list(csv.DictReader(preds.open()))
    assert [row["input"] for row in table] == [str(f) for f in images]
    classes = json.loads((run / "hierarchy.json").read_text())["levels"][::-1]  # finest first
    rows = [{**row, **{f"probs_l{k + 1}": {c: row[f"prob_l{k + 1}:{c}"] for c in classes[k]} for k in range(3)}}
            for row in table]
    model = tmp_path / "model.onnx"
    assert cli("export", "--ckpt", ckpt, "--format", "onnx", "--out", model).code == 0
    meta = json.loads(
        subprocess.run([sys.executable, "-c", "import json, onnx, sys; m = onnx.load(sys.argv[1]); "
                        "print({p.key: p.value for p in m.metadata_props}['hcal'])", str(model)],
                       capture_output=True, text=True, check=True).stdout)
    spec = meta["input"]["spec"]
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["shape"] == [None, 3, 28, 28]
    assert f"resize the shorter side to {spec['resize'] or spec['size']} pixels" in meta["preprocessing"]
    # what a serving program does, from the metadata alone: decode as RGB, resize, centre-crop, uint8 (n, C, H, W)
    geometry = v2.Compose([v2.Resize(spec["resize"] or spec["size"], antialias=True), v2.CenterCrop(spec["size"])])
    x = torch.stack([geometry(v2.functional.pil_to_tensor(Image.open(f).convert("RGB"))) for f in images])
    np.save(tmp_path / "x.npy", x.numpy())
    _assert_matches(_serve("onnx", model, tmp_path / "x.npy"), rows, 3)
