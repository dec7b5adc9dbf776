"""What tests of every layer share: the repository's paths, the toy tree, running the CLI, tiny backbones."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# A small 3-level tree used across tests (coarsest first):
#   A > a1 > x, y ;  A > a2 > z ;  B > b1 > w
TOY_PATHS = [("A", "a1", "x"), ("A", "a1", "y"), ("A", "a2", "z"), ("B", "b1", "w")]


def load_benchmark(name: str):
    """``benchmarks/NAME.py`` as a module (the benchmark scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-800:]!r}, err={self.err[-800:]!r})"


def run_hcal_subprocess(*args: str, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """Run the real ``hcal`` console script in a fresh process."""
    exe = Path(sys.executable).with_name("hcal")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hcal"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: CliResult, *fragments: str) -> None:
    """A bad-input failure: non-zero exit, one line on stderr naming what is wrong, no traceback."""
    assert result.code != 0, result
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result
    assert "Traceback" not in result.err, result
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


class Identity(nn.Module):
    """A backbone that passes vectors through (so embeddings are known in closed form)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_features = dim

    def forward(self, x):
        return x


class Linear4(nn.Linear):
    """A 4 -> 4 linear backbone."""

    out_features = 4

    def __init__(self) -> None:
        super().__init__(4, 4)


def untrained_checkpoint(path: Path, hierarchy, spec, **config) -> Path:
    """An hcal checkpoint of a freshly initialised model (seeded), as ``hcal fit`` would write one: for tests
    of what reads checkpoints (predict, export) that need no training."""
    from hcal.config import Config
    from hcal.engine.checkpoint import FORMAT
    from hcal.engine.module import HierarchicalModule

    torch.manual_seed(0)
    cfg = Config(**{"dataset": "synthetic", "backbone": "mlp" if spec.kind == "vector" else "small-cnn", **config})
    module = HierarchicalModule(cfg.to_dict(), hierarchy.to_dict(), spec.to_dict())
    for m in module.modules():  # batch norms with statistics of their own, as after training
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.save({"hcal_format": FORMAT, "hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()},
               path)
    return path


def manual_infonce(features, prototypes, targets, tau):
    """-log softmax of <f, p_y>/tau, written out with plain Python loops."""
    total = 0.0
    for f, t in zip(features.tolist(), targets.tolist()):
        sims = [sum(a * b for a, b in zip(f, p)) / tau for p in prototypes.tolist()]
        log_z = math.log(sum(math.exp(s) for s in sims))
        total += log_z - sims[t]
    return total / len(features)
