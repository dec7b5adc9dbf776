"""engine/module.py: the compiled training loss, channels-last inputs, the optimiser."""

import torch

from hcal.config import Config
from hcal.datasets.fashion_mnist import fashion_mnist_hierarchy
from hcal.engine.module import HierarchicalModule, create_optimizer
from hcal.inputs import InputSpec


def test_compile_compiles_the_whole_training_loss(toy):
    """``--compile``: the module's training loss is one torch.compile'd function of the whole
    method (backbone and head), giving the eager numbers; state-dict keys are unchanged."""

    cfg = Config(dataset="synthetic", backbone="mlp", embed_dim=8, compile=True, pp=False)
    spec = InputSpec(kind="vector", dim=6)
    torch.manual_seed(0)
    compiled = HierarchicalModule(cfg.to_dict(), toy.to_dict(), spec.to_dict())
    torch.manual_seed(0)
    eager = HierarchicalModule(cfg.replace(compile=False).to_dict(), toy.to_dict(), spec.to_dict())
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert compiled._level_losses is not compiled.method.level_losses  # the compiled wrapper
    x, y = torch.randn(8, 6), toy.leaf_paths()[torch.arange(8) % 4]
    torch.testing.assert_close(compiled._level_losses(x, y), eager._level_losses(x, y), rtol=1e-5, atol=1e-6)


def test_channels_last_layout_reaches_the_model():
    spec = InputSpec(kind="image", channels=1, size=28, mean=(0.5,), std=(0.5,))
    m = HierarchicalModule(Config(backbone="small-cnn", channels_last=True).to_dict(),
                           fashion_mnist_hierarchy().to_dict(), spec.to_dict())
    x = m.prepare_inputs(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    conv = next(p for p in m.method.parameters() if p.ndim == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_optimizer_uses_the_fused_sgd_kernel_and_takes_the_sgd_step():
    """create_optimizer: fused SGD on the CPU, per-group learning rates, the textbook update."""
    cfg = Config(lr=0.1, momentum=0.9, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g).requires_grad_(), torch.randn(4, generator=g).requires_grad_()
    start = [a.detach().clone(), b.detach().clone()]
    opt = create_optimizer([{"params": [a]}, {"params": [b], "lr": 0.3}], cfg)
    assert opt.defaults["fused"] is True
    buffers = [None, None]
    for step in range(3):
        grads = [torch.randn(5, 3, generator=g), torch.randn(4, generator=g)]
        a.grad, b.grad = grads[0].clone(), grads[1].clone()
        opt.step()
        for i, (lr, grad) in enumerate(zip((0.1, 0.3), grads)):  # d = g + wd p; buf = m buf + d; p -= lr buf
            d = grad + 0.01 * start[i]
            buffers[i] = d if step == 0 else 0.9 * buffers[i] + d
            start[i] = start[i] - lr * buffers[i]
    torch.testing.assert_close(a.detach(), start[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(b.detach(), start[1], rtol=1e-6, atol=1e-6)
    meta = create_optimizer([{"params": [torch.zeros(2, device="meta", requires_grad=True)]}], cfg)
    assert not meta.defaults["fused"] and meta.defaults["foreach"]  # no fused kernel there: multi-tensor update
