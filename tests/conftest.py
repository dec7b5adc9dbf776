"""Fixtures of every layer; tests under tests/e2e (the CLI, subprocesses, DDP, killed processes) are marked slow."""

from __future__ import annotations

import os
from pathlib import Path

# One intra-op thread for the test processes and every subprocess they start: the models here are
# tiny, and two OpenMP threads on a busy 2-core machine wait for each other (steps 100x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from hcal.cli import main  # noqa: E402
from hcal.hierarchy import Hierarchy  # noqa: E402
from tests.helpers import TOY_PATHS, CliResult  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
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
