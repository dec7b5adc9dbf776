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
