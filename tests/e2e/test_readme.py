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
