"""Fixtures of every layer; tests under tests/e2e (the CLI, subprocesses, DDP, killed processes) are marked slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcal.cli import main
from hcal.hierarchy import Hierarchy
from tests.helpers import TOY_PATHS, CliResult

E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def toy() -> Hierarchy:
    return Hierarchy(TOY_PATHS)


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
