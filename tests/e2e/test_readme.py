"""The README's commands and examples are run here, so they cannot rot."""

import csv
import json
import re
import shlex

import yaml

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def _blocks_after(marker: str) -> list[tuple[str, str]]:
    """The fenced code blocks (language, code) from the marker up to the next heading."""
    lines, fenced = README[README.index(f"<!-- readme-test: {marker} -->"):].splitlines(keepends=True), False
    for end, line in enumerate(lines):
        fenced ^= line.startswith("```")
        if line.startswith("#") and not fenced:  # a heading, not a line of a block
            lines = lines[:end]
            break
    return re.findall(r"```(\w+)\n(.*?)```", "".join(lines), flags=re.S)


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(bash setup\.sh[^\n]*)\n```", README)
    assert commands[:2] == ["bash setup.sh && .venv/bin/hcal fit", "bash setup.sh --dev && .venv/bin/python -m pytest "
                                                                   "-q"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_readme_has_no_placeholder():
    assert "PLACEHOLDER" not in README


def test_own_features_example(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks_after("own-features")
    assert [lang for lang, _ in blocks] == ["python", "bash"]
    exec(compile(blocks[0][1], "README:own-features", "exec"), {})
    args = shlex.split(blocks[1][1].strip())
    assert args[0] == ".venv/bin/hcal"
    r = cli(*args[1:], "--no-progress")
    assert r.code == 0, r
    metrics = json.loads((tmp_path / "runs" / "my-features" / "metrics.json").read_text())
    assert metrics["test/acc_l1"] > 0.9  # four well-separated classes
    # the run's config.yaml re-runs from another folder: its data_dir is absolute
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = cli("fit", "--config", "../runs/my-features/config.yaml", "--run-dir", "again", "--epochs", "1")
    assert again.code == 0, again
    saved = yaml.safe_load((tmp_path / "elsewhere" / "again" / "config.yaml").read_text())
    assert saved["data_dir"] == str(tmp_path / "my_features.npz")


def test_reports_example(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (bash, commands), (text, excerpt) = _blocks_after("reports")
    assert (bash, text) == ("bash", "text")
    lines = [shlex.split(line) for line in commands.strip().splitlines()]
    assert all(args[0] == ".venv/bin/hcal" for args in lines) and len(lines) == 4
    demo = tmp_path / "runs" / "demo"
    for args in lines:
        r = cli(*args[1:], *(["--no-progress"] if args[1] == "fit" else []))
        assert r.code == 0, (args, r)
        if args[1:3] == ["fit", "--dataset"]:
            assert (demo / "training_curves.png").is_file()
    info = json.loads((demo / "run.json").read_text())
    assert [h["command"].split()[1:3] for h in info["history"]] == [["fit", "--dataset"], ["fit", "--resume"]]
    assert info["epochs_completed"] == 4 and yaml.safe_load((demo / "config.yaml").read_text())["epochs"] == 4
    report = (demo / "report" / "report.md").read_text().splitlines()
    shown = excerpt.strip().splitlines()
    start = report.index(shown[0])
    assert report[start : start + 4] == shown[:4]  # the level heading and the table's header, as the README shows
    rows = {tuple(line.split(" | ")[:2]) for line in report}
    assert all(tuple(line.split(" | ")[:2]) in rows for line in shown[4:])  # its classes and parents
    with open(demo / "report" / "per_class.csv") as fh:
        assert ",".join(next(csv.reader(fh))) in README  # the README names the columns
    assert [f"confusion_l{k}.png" for k in (1, 2, 3)] == sorted(p.name for p in (demo / "report").glob("*.png"))
    again = tmp_path / "runs" / "demo-again"
    assert yaml.safe_load((again / "config.yaml").read_text()) == yaml.safe_load((demo / "config.yaml").read_text())
    assert (again / "metrics.json").is_file()


def test_python_api_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (lang, code), = _blocks_after("python-api")
    assert lang == "python"
    exec(compile(code, "README:python-api", "exec"), {})
    out = capsys.readouterr().out
    assert "(2, 2, 2)" in out
    assert (tmp_path / "runs" / "api-demo" / "metrics.json").is_file()


def test_estimator_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (lang, code), = _blocks_after("estimator")
    assert lang == "python" and len([line for line in code.splitlines() if line.strip()]) <= 10
    scope: dict = {}
    exec(compile(code, "README:estimator", "exec"), scope)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["[['Clothes' 'Tops' 'Shirt']", " ['Clothes' 'Tops' 'Pullover']]"]  # as its comment says
    assert float(out[2]) > 0.9  # the comment's 0.97, give or take a sample
    assert [p.shape for p in scope["proba"]] == [(100, 2), (100, 3), (100, 4)]
    assert list(tmp_path.iterdir()) == []  # nothing left on disk


def test_predict_and_export_examples(cli, tmp_path, monkeypatch, capsys):
    """The features example's model, then the README's hcal predict and hcal export blocks, run as shown."""
    monkeypatch.chdir(tmp_path)
    features = _blocks_after("own-features")
    exec(compile(features[0][1], "README:own-features", "exec"), {})
    assert cli(*shlex.split(features[1][1])[1:], "--no-progress").code == 0
    blocks = _blocks_after("predict")
    assert [lang for lang, _ in blocks] == ["python", "bash", "json"]
    exec(compile(blocks[0][1], "README:predict", "exec"), {})
    args = shlex.split(blocks[1][1])
    r = cli(*args[1:])
    assert r.code == 0, r
    rows = [json.loads(line) for line in (tmp_path / args[args.index("--output") + 1]).read_text().splitlines()]
    shown = json.loads(blocks[2][1])
    assert len(rows) == 3 and list(shown) == list(rows[0])
    assert {k: v for k, v in shown.items() if k.startswith("label")} == {k: v for k, v in rows[0].items()
                                                                         if k.startswith("label")}
    assert [t["label"] for t in shown["top_l1"]] == [t["label"] for t in rows[0]["top_l1"]]

    blocks = _blocks_after("export")
    assert [lang for lang, _ in blocks] == ["bash", "python"]
    r = cli(*shlex.split(blocks[0][1])[1:])
    assert r.code == 0, r
    capsys.readouterr()
    exec(compile(blocks[1][1], "README:export", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert printed == str([[row[f"label_l{k}"] for k in (1, 2, 3)] for row in rows])
