"""The README's commands and examples are run here, so they cannot rot."""

import json
import re
import shlex

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def _blocks_after(marker: str) -> list[tuple[str, str]]:
    """The fenced code blocks (language, code) from the marker up to the next heading."""
    start = README.index(f"<!-- readme-test: {marker} -->")
    section = README[start:]
    end = re.search(r"\n#+ ", section)
    section = section[: end.start()] if end else section
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


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
