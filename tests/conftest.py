from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hcal.cli import main
from hcal.hierarchy import Hierarchy

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# A small 3-level tree used across tests (coarsest first):
#   A > a1 > x, y ;  A > a2 > z ;  B > b1 > w
TOY_PATHS = [("A", "a1", "x"), ("A", "a1", "y"), ("A", "a2", "z"), ("B", "b1", "w")]


@pytest.fixture
def toy() -> Hierarchy:
    return Hierarchy(TOY_PATHS)


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-800:]!r}, err={self.err[-800:]!r})"


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    """Run ``hcal ARGS`` in this process, in an empty working directory; returns exit code, stdout, stderr."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    def run(*args: str) -> CliResult:
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse errors
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_hcal_subprocess(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """Run the real ``hcal`` console script in a fresh process."""
    exe = Path(sys.executable).with_name("hcal")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hcal"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: CliResult, *fragments: str) -> None:
    """A bad-input failure: non-zero exit, one line on stderr naming what is wrong, no traceback."""
    assert result.code != 0, result
    lines = [l for l in result.err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result
    assert "Traceback" not in result.err, result
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
