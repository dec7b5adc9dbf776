"""GPU paths, run where CUDA is available (benchmarks/gpu_check.sh runs them on a lent GPU).

HCAL's training step must not wait for the GPU (no host-device synchronisation: FA's grouping
has shapes that depend on the batch size alone), and the fused loss must give the autograd
reference's numbers on the device too."""

import pytest
import torch

from hcal.hierarchy import Hierarchy
from hcal.methods._hcal_loss import hcal_level_losses, reference_level_losses
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


@pytest.mark.parametrize("sizes", [(10, 6, 2), (300, 60, 4)])  # the joint layout; level by level, FA by sort
@pytest.mark.parametrize("mtl", [True, False])
def test_hcal_training_step_never_waits_for_the_gpu(sizes, mtl):
    h = _tree(sizes)
    torch.manual_seed(0)
    model = HCAL(h, Flat, embed_dim=16, mtl=mtl).cuda().train()
    awa = create_weighting("awa", h.depth).cuda()
    x = torch.randn(32, 12, device="cuda")
    y = h.leaf_paths()[torch.randint(sizes[0], (32,))].cuda()
    awa(model.level_losses(x, y))[0].backward()  # first call: builds the cached constant tensors
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        total, _ = awa(model.level_losses(x, y))
        total.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total)


@pytest.mark.parametrize("layout", ["joint", "levels"])
def test_fused_loss_matches_autograd_on_the_gpu(layout):
    g = torch.Generator().manual_seed(0)
    sizes, n = (10, 6, 2), 64
    leaf = torch.randint(sizes[0], (n,), generator=g)
    y = torch.stack([leaf * c // sizes[0] for c in sizes], 1).cuda()
    z = torch.randn(n, 16, generator=g).cuda()
    protos = [torch.randn(c, 16, generator=g).cuda() for c in sizes]
    noise = ((torch.rand(sum(sizes), 16, generator=g) - 0.5) * 0.02).cuda()
    results = []
    for fn, kw in ((hcal_level_losses, {"layout": layout}), (reference_level_losses, {})):
        leaves = [t.clone().requires_grad_() for t in [z, *protos]]
        losses = fn(leaves[:1], leaves[1:], y, tau=0.1, fa=True, noise=noise, **kw)
        (losses * torch.tensor([1.0, 2.0, 3.0], device="cuda")).sum().backward()
        results.append((losses.detach(), [t.grad for t in leaves]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
