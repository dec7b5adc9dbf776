"""GPU paths, run where CUDA is available (benchmarks/gpu_check.sh runs them on a lent GPU).

HCAL's training step must not wait for the GPU (no host-device synchronisation: FA's grouping
has shapes that depend on the batch size alone), and its loss must give the CPU's numbers on the
device too."""

import pytest
import torch

from hcal.hierarchy import Hierarchy
from hcal.methods.hcal import HCAL
from hcal.weighting import create_weighting

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class Flat(torch.nn.Sequential):
    def __init__(self) -> None:
        super().__init__(torch.nn.Flatten(), torch.nn.Linear(12, 32), torch.nn.ReLU())
        self.out_features = 32


def _tree(sizes):
    paths = []
    for leaf in range(sizes[0]):
        paths.append(tuple(f"l{k}c{leaf * c // sizes[0]}" for k, c in reversed(list(enumerate(sizes)))))
    return Hierarchy(paths)


@pytest.mark.parametrize("sizes", [(10, 6, 2), (300, 60, 4)])  # FA by class index; FA by sort (classes > batch)
@pytest.mark.parametrize("mtl", [True, False])
def test_hcal_training_step_never_waits_for_the_gpu(sizes, mtl):
    h = _tree(sizes)
    torch.manual_seed(0)
    model = HCAL(h, Flat, embed_dim=16, mtl=mtl).cuda().train()
    awa = create_weighting("awa", h.num_levels).cuda()
    x = torch.randn(32, 12, device="cuda")
    y = h.leaf_paths()[torch.randint(sizes[0], (32,))].cuda()
    awa(model.level_losses(x, y))[0].backward()  # first call: CUDA context, kernels, allocator
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        total, _ = awa(model.level_losses(x, y))
        total.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total)


@pytest.mark.parametrize("sizes", [(10, 6, 2), (300, 60, 4)])
def test_hcal_loss_and_gradients_on_the_gpu_equal_the_cpu(sizes):
    h = _tree(sizes)
    torch.manual_seed(0)
    model = HCAL(h, Flat, embed_dim=16).eval()  # eval: no perturbation noise, so both sides are equal
    x = torch.randn(64, 12)
    y = h.leaf_paths()[torch.randint(sizes[0], (64,))]
    results = []
    for device in ("cpu", "cuda"):
        model.to(device).zero_grad()
        losses = model.level_losses(x.to(device), y.to(device))
        (losses * torch.arange(1.0, 4.0, device=device)).sum().backward()
        results.append((losses.detach().cpu(), [p.grad.cpu() for p in model.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
