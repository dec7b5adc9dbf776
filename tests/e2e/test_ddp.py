"""Multi-process training is exact: two gloo processes on halves of a batch give the loss and
gradients of one process on the whole batch (FA's class means over the global batch)."""

import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.nn.functional import all_gather

from hcal.hierarchy import Hierarchy
from hcal.methods.hcal import HCAL
from hcal.weighting import create_weighting
from tests.helpers import run_hcal_subprocess

PATHS = [(f"r{i % 2}", f"m{i % 4}", f"leaf{i}") for i in range(8)]
N, D = 24, 6


class TinyBackbone(nn.Sequential):
    """No batch norm: SyncBatchNorm needs a GPU, so per-process BN statistics would differ on CPU."""
    def __init__(self) -> None:
        super().__init__(nn.Linear(D, 16), nn.Tanh())
        self.out_features = 16


def _model() -> HCAL:
    torch.manual_seed(0)
    return HCAL(Hierarchy(PATHS), TinyBackbone, embed_dim=8, epsilon=0.0)


def _data():
    g = torch.Generator().manual_seed(1)
    h = Hierarchy(PATHS)
    return torch.randn(N, D, generator=g), h.leaf_paths()[torch.randint(8, (N,), generator=g)]


def _step(model, x, y, gather=None):
    awa = create_weighting("awa", 3, gamma=0.5)
    losses = model.level_losses(x, y, gather=gather)
    total, weights = awa(losses)
    total.backward()
    return losses.detach(), weights, {n: p.grad.clone() for n, p in model.named_parameters()}


class LevelLosses(nn.Module):
    """DDP synchronises gradients for what runs through its forward: the loss itself here."""
    def __init__(self, model: HCAL, gather) -> None:
        super().__init__()
        self.model, self.gather = model, gather

    def forward(self, x, y):
        return self.model.level_losses(x, y, gather=self.gather)


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)

    def gather(t):
        if t.is_floating_point():  # with gradients flowing back to each process's own part
            return torch.cat(all_gather(t))
        parts = [torch.empty_like(t) for _ in range(2)]
        dist.all_gather(parts, t)
        return torch.cat(parts)

    model = _model()
    ddp = nn.parallel.DistributedDataParallel(LevelLosses(model, gather))
    x, y = _data()
    half = slice(rank * N // 2, (rank + 1) * N // 2)
    losses = ddp(x[half], y[half])
    total, weights = create_weighting("awa", 3, gamma=0.5)(losses)
    total.backward()  # DDP averages the gradients over the two processes here
    out[rank] = (losses.detach(), weights, {n: p.grad.clone() for n, p in model.named_parameters()})
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process():
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
    x, y = _data()
    ref_losses, ref_weights, ref_grads = _step(_model(), x, y)
    for rank in (0, 1):
        losses, weights, grads = out[rank]
        assert torch.allclose(losses, ref_losses, atol=1e-5), (rank, losses, ref_losses)
        assert torch.allclose(weights, ref_weights, atol=1e-6)  # AWA identical on every process
        for name, g in ref_grads.items():
            assert torch.allclose(grads[name], g, atol=1e-5), (rank, name, (grads[name] - g).abs().max())


def test_without_gathering_fa_would_differ():
    """The check above can fail: per-process class means give another loss than global ones."""
    x, y = _data()
    full = _model().level_losses(x, y)
    halves = torch.stack([_model().level_losses(x[s], y[s]) for s in (slice(0, N // 2), slice(N // 2, N))]).mean(0)
    assert not torch.allclose(full[1:], halves[1:], atol=1e-4)


def test_fit_with_two_cpu_processes_through_the_cli(tmp_path):
    """Lightning re-runs the command for rank 1; only rank 0 prepares and writes the run directory."""
    r = run_hcal_subprocess("fit", "--dataset", "synthetic", "--devices", "2", "--device", "cpu", "--epochs", "2",
                            "--no-progress", cwd=tmp_path, timeout=300)
    assert r.code == 0, r
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs  # rank 1 used rank 0's default run directory, not one of its own
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["test/acc_l3"] > 0.9
    assert r.out.count("test metrics") == 1 and "sync_dist" not in r.err
