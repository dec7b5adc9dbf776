"""The paper's experiments as commands, on `synthetic` with tiny budgets."""

import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.fixtures import FIT, make_aircraft, make_cifar100
from tests.helpers import ROOT

TINY = ["--dataset", "synthetic", "--epochs", "1", "--no-progress", "--dataset-arg", "train_size=300"]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_writes_a_table_and_resumes(cli, tmp_path):
    out = tmp_path / "cmp"
    r = cli("experiment", "compare", *TINY, "--methods", "hcal", "--seeds", "0,1", "--out", out)
    assert r.code == 0, r
    rows = _rows(out / "results.csv")
    assert [(x["label"], x["seed"]) for x in rows] == [("hcal", "0"), ("hcal", "1")]
    assert {"test/acc_l1", "test/acc_l3", "test/hvr", "test/full_path_acc", "test/hf1"} <= set(rows[0])
    md = (out / "results.md").read_text()
    assert "| hcal | 2 |" in md and "backbone `mlp`" in md and "seeds 0, 1" in md
    mtime = (out / "runs" / "hcal-seed0" / "metrics.json").stat().st_mtime
    again = cli("experiment", "compare", *TINY, "--methods", "hcal", "--seeds", "0,1", "--out", out)
    assert again.code == 0 and again.out.count("finished earlier, skipped") == 2
    assert (out / "runs" / "hcal-seed0" / "metrics.json").stat().st_mtime == mtime
    # a changed budget must not silently reuse the finished runs
    changed = cli("experiment", "compare", *TINY, "--epochs", "2", "--methods", "hcal", "--seeds", "0", "--out", out)
    assert changed.code != 0 and "epochs: run has 1, now 2" in changed.err


def test_compare_continues_an_interrupted_run(cli, tmp_path):
    out = tmp_path / "cmp"
    assert cli("experiment", "compare", *TINY, "--epochs", "2", "--methods", "hcal", "--seeds", "0", "--out",
               out).code == 0
    run = out / "runs" / "hcal-seed0"
    (run / "metrics.json").unlink()  # as if killed after its last checkpoint
    r = cli("experiment", "compare", *TINY, "--epochs", "2", "--methods", "hcal", "--seeds", "0", "--out", out)
    assert r.code == 0, r
    assert "resuming the interrupted run" in r.out and (run / "metrics.json").is_file()


def test_compare_paper_flag_says_what_it_has(cli, tmp_path):
    r = cli("experiment", "compare", *TINY, "--methods", "hcal", "--seeds", "0", "--out", tmp_path / "o", "--paper")
    assert r.code == 0 and "not one of the paper's datasets" in r.out


def test_compare_on_cifar100_prints_the_seven_published_rows(cli, tmp_path):
    make_cifar100(tmp_path / "data")
    out = tmp_path / "o"
    r = cli("experiment", "compare", "--dataset", "cifar100", "--data-dir", tmp_path / "data", *FIT,
            "--methods", "hcal", "--seeds", "0", "--out", out, "--paper")
    assert r.code == 0, r
    md = (out / "results.md").read_text()
    assert sum(line.startswith("| ") and "(paper)" in line for line in md.splitlines()) == 7
    # ACC^1, ACC^2, HVR; full path and hF1 are not published
    assert "| HCAL (paper) | – | 74.80 | 84.58 | 5.82 | – | – |" in md


def test_ablation_on_two_level_aircraft_prints_the_eight_published_rows(cli, tmp_path):
    make_aircraft(tmp_path / "data")
    out = tmp_path / "o"
    r = cli("experiment", "ablation", "--dataset", "fgvc-aircraft", "--data-dir", tmp_path / "data",
            "--dataset-arg", "levels=2", "--dataset-arg", "size=32", *FIT, "--configs", "MTL+FA",
            "--seeds", "0", "--out", out, "--paper")
    assert r.code == 0, r
    md = (out / "results.md").read_text()
    published = [line for line in md.splitlines() if line.startswith("| ") and "(paper)" in line]
    assert len(published) == 8 and published[-1].startswith("| HCAL (MTL+FA+PP+AWA) (paper) |")


def test_compare_prints_reference_rows_from_a_csv(cli, tmp_path):
    ref = tmp_path / "published.csv"
    ref.write_text("label,acc_l1,acc_l3,hvr\nSomeone's HCAL,81.25,,3.5\n", encoding="utf-8")
    out = tmp_path / "o"
    r = cli("experiment", "compare", *TINY, "--methods", "hcal", "--seeds", "0", "--out", out, "--reference", ref)
    assert r.code == 0, r
    md = (out / "results.md").read_text()
    # ACC^1, ACC^2, ACC^3, HVR, full path, hF1: given cells as written, the rest a dash
    assert "| Someone's HCAL (reference) | – | 81.25 | – | – | 3.50 | – | – |" in md
    assert f"come from {ref}" in md


def test_reference_csv_errors_name_the_file_line_and_value(cli, tmp_path):
    cases = {
        "label,acc_l1\nx,abc\n": "line 2, column 'acc_l1': 'abc' is not a percentage between 0 and 100",
        "label,acc_l1\nx,130\n": "'130' is not a percentage",
        "label,top5\nx,1\n": "line 1: unknown column 'top5'",
        "method,acc_l1\nx,1\n": "line 1 has no 'label' column",
        "label,acc_l1\nx,1,2\n": "line 2 has 3 fields, the header has 2",
        "label,acc_l1\n": "has no rows below its header",
    }
    for i, (text, message) in enumerate(cases.items()):
        ref = tmp_path / f"ref{i}.csv"
        ref.write_text(text, encoding="utf-8")
        r = cli("experiment", "compare", *TINY, "--methods", "hcal", "--seeds", "0", "--out", tmp_path / f"o{i}",
                "--reference", ref)
        assert r.code != 0 and message in r.err and str(ref) in r.err and "Traceback" not in r.err, (text, r)
        assert not (tmp_path / f"o{i}").exists()  # rejected before any training
    missing = cli("experiment", "ablation", *TINY, "--seeds", "0", "--reference", tmp_path / "nope.csv")
    assert missing.code != 0 and "nope.csv is not a file" in missing.err


def test_ablation_runs_the_configurations(cli, tmp_path):
    out = tmp_path / "abl"
    labels = ["single-task (FA+PP)", "MTL", "HCAL (MTL+FA+PP+AWA)", "MTL+PP+AWA+path(0.5)",
              "single-task+PP+AWA+CE(0.5)", "single-task+PP+AWA+noproj"]
    r = cli("experiment", "ablation", *TINY, "--configs", ",".join(labels), "--seeds", "0", "--out", out,
            "--gamma", "1.0")
    assert r.code == 0, r
    rows = _rows(out / "results.csv")
    assert [x["label"] for x in rows] == labels

    def run_config(label):
        return yaml.safe_load((out / "runs" / f"{label}-seed0" / "config.yaml").read_text())
    path_row = run_config("MTL+PP+AWA+path(0.5)")
    assert (path_row["fa"], path_row["path_weight"]) == (False, 0.5)  # hcal's own rows reach the fit
    ce_row = run_config("single-task+PP+AWA+CE(0.5)")
    assert (ce_row["mtl"], ce_row["ce_weight"], ce_row["path_weight"]) == (False, 0.5, 0.0)
    noproj_row = run_config("single-task+PP+AWA+noproj")
    assert (noproj_row["mtl"], noproj_row["projection"], noproj_row["ce_weight"]) == (False, "none", 0.0)
    # --gamma is AWA's: the rows with AWA get it, the rows without keep the default (no refusal)
    assert (run_config("HCAL (MTL+FA+PP+AWA)")["gamma"], run_config("MTL")["gamma"]) == (1.0, 0.5)

    single = run_config("single-task (FA+PP)")
    assert (single["mtl"], single["fa"], single["pp"], single["awa"]) == (False, True, True, False)  # the paper's row
    assert "| MTL | 1 |" in (out / "results.md").read_text()
    bad = cli("experiment", "ablation", *TINY, "--configs", "MTL+XYZ", "--out", out)
    assert bad.code == 2 and "unknown configuration 'MTL+XYZ'" in bad.err


def test_sweep_writes_csv_and_a_real_png(cli, tmp_path):
    out = tmp_path / "sw"
    r = cli("experiment", "sweep", *TINY, "--param", "gamma", "--values", "0.1,1,5", "--seeds", "0", "--out", out,
            "--method", "hcal-ps", "--also-decode", "consistent")
    assert r.code == 0, r
    rows = _rows(out / "results.csv")
    assert [(float(x["gamma"]), x["decode"]) for x in rows] == [
        (g, d) for g in (0.1, 1.0, 5.0) for d in ("nearest", "consistent")]
    assert all(float(x["test/hvr"]) == 0.0 for x in rows if x["decode"] == "consistent")
    assert "method hcal-ps" in (out / "results.md").read_text()

    run_config = yaml.safe_load((out / "runs" / "gamma=5-seed0" / "config.yaml").read_text())
    assert (run_config["gamma"], run_config["method"]) == (5.0, "hcal-ps")
    with Image.open(out / "sweep_gamma.png") as img:
        assert img.format == "PNG" and img.size[0] >= 400 and img.size[1] >= 300
        assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3),
                             axis=0)) > 20  # a drawn plot, not a blank canvas
    bad = cli("experiment", "sweep", *TINY, "--param", "epsilon", "--values", "-1", "--out", out)
    assert bad.code == 2 and ">= 0" in bad.err


def test_visualize_draws_every_level_at_init_and_after_training(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("fit", *TINY, "--epochs", "2", "--run-dir", run).code == 0
    assert (run / "checkpoints" / "init.ckpt").is_file()
    r = cli("visualize", "--ckpt", run / "checkpoints" / "best.ckpt", "--samples", "150", "--perplexity", "10")
    assert r.code == 0, r
    names = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert names == sorted([f"tsne_{s}_{k}.png" for s in ("init", "trained") for k in ("l1", "l2", "l3", "all")])
    for p in (run / "figures").glob("*.png"):
        with Image.open(p) as img:
            assert img.format == "PNG" and img.size == (1275, 975)
            assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 50
    # progress: one t-SNE per state (the levels share one embedding space), announced as it starts
    assert "[1/2] init: t-SNE of 150 test embeddings and every level's 14 prototypes" in r.out
    assert "[2/2] trained: t-SNE" in r.out and f"wrote {run / 'figures' / 'tsne_trained_all.png'}" in r.out


def test_paper_claims_script_reads_the_tables(cli, tmp_path):
    """benchmarks/paper_claims.py: verdicts and ablation deltas from results.csv, checked by hand here."""
    root = ROOT

    cmp, abl = tmp_path / "cmp", tmp_path / "abl"
    assert cli("experiment", "compare", *TINY, "--methods", "hcal,ew", "--seeds", "0,1", "--out", cmp).code == 0
    assert cli("experiment", "ablation", *TINY, "--configs", "MTL,MTL+FA", "--seeds", "0", "--out", abl).code == 0
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "paper_claims.py"), "--compare", str(cmp),
                        "--ablation", str(abl)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = _rows(cmp / "results.csv")

    def stats(label, column):
        values = [100 * float(x[column]) for x in rows if x["label"] == label]
        return statistics.fmean(values), statistics.stdev(values)

    (h, hs), (e, es) = stats("hcal", "test/acc_l2"), stats("ew", "test/acc_l2")
    verdict = "tie" if abs(h - e) < max(hs, es) else ("better" if h > e else "worse")
    line = next(x for x in r.stdout.splitlines() if x.startswith("| ACC^2: HCAL > best baseline |"))
    numbers = [float(v) for v in re.findall(r"\d+\.\d+", line)]
    assert numbers == pytest.approx([h, hs, e, es], abs=0.006) and "| ew " in line and line.endswith(f"| {verdict} |")
    by = {x["label"]: x for x in _rows(abl / "results.csv")}
    delta = 100 * (float(by["MTL+FA"]["test/hvr"]) - float(by["MTL"]["test/hvr"]))
    fa_row = "| FA | MTL → MTL+FA |"
    assert fa_row in r.stdout and f"{delta:+.2f}" in r.stdout.split(fa_row)[1].split("\n")[0]


def test_compare_also_scores_each_checkpoint_with_consistent_decoding(cli, tmp_path):
    out = tmp_path / "cmp"
    r = cli("experiment", "compare", *TINY, "--methods", "hcal-ps", "--seeds", "0", "--out", out,
            "--also-decode", "consistent")
    assert r.code == 0, r
    rows = _rows(out / "results.csv")
    assert [(x["label"], x["decode"]) for x in rows] == [("hcal-ps", "nearest"), ("hcal-ps · consistent", "consistent")]
    assert float(rows[1]["test/hvr"]) == 0.0  # a tree path for every sample
    scored = out / "runs" / "hcal-ps-seed0" / "metrics-consistent.json"
    assert scored.is_file() and "without retraining" in (out / "results.md").read_text()
    # benchmarks/results_table.py: both decodings of the run, in %, from the run directory
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "results_table.py"), str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in r.stdout.splitlines()[2:]}
    assert set(lines) == {("hcal-ps", "nearest"), ("hcal-ps", "consistent")}
    for (_, decoding), line in lines.items():
        row = rows[0] if decoding == "nearest" else rows[1]
        assert f"| {100 * float(row['test/acc_l1']):.2f} ± 0.00 |" in line
        assert f"| {100 * float(row['test/full_path_acc']):.2f} ± 0.00 |" in line or \
            f"| **{100 * float(row['test/full_path_acc']):.2f} ± 0.00** |" in line
    mtime = scored.stat().st_mtime
    again = cli("experiment", "compare", *TINY, "--methods", "hcal-ps", "--seeds", "0", "--out", out,
                "--also-decode", "consistent")
    assert again.code == 0 and scored.stat().st_mtime == mtime  # scored once, then read back
    # the run trained on since (fit --resume --epochs N rewrites metrics.json): the old score is stale, so it is redone
    result = out / "runs" / "hcal-ps-seed0" / "metrics.json"
    os.utime(result, (mtime + 60, mtime + 60))
    scored.write_text(scored.read_text().replace('"test/hvr": 0.0', '"test/hvr": 0.5'))
    assert cli("experiment", "compare", *TINY, "--methods", "hcal-ps", "--seeds", "0", "--out", out,
               "--also-decode", "consistent").code == 0
    assert json.loads(scored.read_text())["test/hvr"] == 0.0 and scored.stat().st_mtime > mtime
    # a kept record copied back to resume a grid (benchmarks/keep_records.py): no checkpoints/, and copying can
    # leave the score older than the result; the record's own score is read, not re-made from a missing checkpoint
    shutil.rmtree(out / "runs" / "hcal-ps-seed0" / "checkpoints")
    later = scored.stat().st_mtime + 60
    os.utime(result, (later, later))
    kept = cli("experiment", "compare", *TINY, "--methods", "hcal-ps", "--seeds", "0", "--out", out,
               "--also-decode", "consistent")
    assert kept.code == 0, kept
    assert [float(x["test/hvr"]) for x in _rows(out / "results.csv")][1] == 0.0
    bad = cli("experiment", "compare", *TINY, "--also-decode", "fancy", "--out", tmp_path / "bad")
    assert bad.code == 2 and "--also-decode: unknown decoding 'fancy'" in bad.err and not (tmp_path / "bad").exists()


def test_anchors_script_scores_logistic_regressions_with_and_without_consistent_decoding(tmp_path):
    """benchmarks/anchors.py: the per-level logistic regressions, and the same decoded as tree paths,
    against a brute-force re-computation over every leaf's path."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from hcal.datasets import create_dataset
    from hcal.datasets.synthetic import make_synthetic

    h, x, y, _, _ = make_synthetic(levels=3, branching=2, train_size=300, noise=2.0)
    data = tmp_path / "feats.npz"
    np.savez(data, X=x.numpy(), paths=np.array([h.decode(row) for row in y.tolist()]))
    out = tmp_path / "anchors"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "anchors.py"), "--data", str(data), "--seeds", "0",
                        "--Cs", "1", "--anchors", "logreg per level,logreg per level · consistent", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {x["label"]: x for x in _rows(out / "results.csv")}
    assert set(rows) == {"logreg per level", "logreg per level · consistent"}
    assert float(rows["logreg per level · consistent"]["test/hvr"]) == 0.0

    bundle = create_dataset("features", data, seed=0, val_fraction=0.1)
    h = bundle.hierarchy  # the features file's own class order
    split = {name: (s.inputs[s.indices].numpy(), s.targets[s.indices].numpy())
             for name, s in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test))}
    x_fit, y_fit = (np.concatenate([split["train"][i], split["val"][i]]) for i in (0, 1))
    x_test, truth = split["test"]
    paths = h.leaf_paths().numpy()  # (leaves, m), finest first
    score = np.zeros((len(x_test), len(paths)))
    independent = []
    for k in range(h.num_levels):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(x_fit, y_fit[:, k])
        full = np.full((len(x_test), h.sizes[k]), -1e9)
        full[:, model.classes_] = model.predict_log_proba(x_test)
        score += full[:, paths[:, k]]
        independent.append(full.argmax(1))
    best = paths[score.argmax(1)]
    assert float(rows["logreg per level · consistent"]["test/full_path_acc"]) == pytest.approx(
        (best == truth).all(1).mean(), abs=1e-9)
    assert float(rows["logreg per level"]["test/acc_l1"]) == pytest.approx((independent[0] == truth[:, 0]).mean(),
                                                                           abs=1e-9)
