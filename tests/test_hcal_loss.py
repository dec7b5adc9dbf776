"""HCAL's fused training loss against plain autograd through the concept modules.

The fused node (hcal.methods._hcal_loss) writes its own backward; here every value and gradient
is recomputed by composing hcal.perturbation, hcal.aggregation and hcal.prototype_loss with
torch's autograd, in both layouts, with and without FA/PP, shared or per-level embeddings, and
with few or many classes per level (FA's two ways of grouping a batch)."""

import pytest
import torch

from hcal.aggregation import batch_classes
from hcal.methods._hcal_loss import KERNEL_AVAILABLE, _joint_is_small, hcal_level_losses, reference_level_losses

needs_kernel = pytest.mark.skipif(not KERNEL_AVAILABLE, reason="the C kernel is not built (no C compiler at install)")
KERNEL = pytest.param("kernel", marks=needs_kernel)


def reference(projections, prototypes, labels, tau, fa, noise):
    return reference_level_losses(projections, prototypes, labels, tau=tau, fa=fa, noise=noise)


def _case(sizes, n, shared, noisy, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = 5
    leaf = torch.randint(sizes[0], (n,), generator=g)
    # a proper hierarchy: the parent of leaf c at level k is c * C_k // C_0
    labels = torch.stack([leaf * c // sizes[0] for c in sizes], 1)
    projections = [torch.randn(n, d, generator=g, dtype=torch.float64) * 3 for _ in range(1 if shared else len(sizes))]
    prototypes = [torch.randn(c, d, generator=g, dtype=torch.float64) for c in sizes]
    noise = (torch.rand(sum(sizes), d, generator=g, dtype=torch.float64) - 0.5) * 0.2 if noisy else None
    return projections, prototypes, labels, noise


def _value_and_grads(fn, projections, prototypes, labels, noise):
    leaves = [t.clone().requires_grad_() for t in [*projections, *prototypes]]
    k = len(projections)
    losses = fn(leaves[:k], leaves[k:], labels, noise)
    weights = torch.linspace(0.5, 2.0, losses.shape[0], dtype=losses.dtype)  # distinct upstream gradients
    (losses * weights).sum().backward()
    return losses.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("layout,shared", [("joint", True), ("levels", True), ("levels", False),  # joint: shared only
                                           pytest.param("kernel", True, marks=needs_kernel),
                                           pytest.param("kernel", False, marks=needs_kernel)])
@pytest.mark.parametrize("fa", [True, False])
@pytest.mark.parametrize("noisy", [True, False])
@pytest.mark.parametrize("sizes,n", [((6, 3, 2), 13), ((40, 20, 3), 9), ((8, 2), 1)])
def test_fused_loss_matches_autograd_through_the_concept_modules(layout, shared, fa, noisy, sizes, n):
    projections, prototypes, labels, noise = _case(sizes, n, shared, noisy)
    fused = _value_and_grads(lambda z, p, y, u: hcal_level_losses(z, p, y, tau=0.3, fa=fa, noise=u, layout=layout),
                             projections, prototypes, labels, noise)
    expected = _value_and_grads(lambda z, p, y, u: reference(z, p, y, 0.3, fa, u), projections, prototypes, labels, noise)
    torch.testing.assert_close(fused[0], expected[0], rtol=1e-10, atol=1e-12)
    for got, want in zip(fused[1], expected[1]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("layout", ["joint", "levels", KERNEL])
def test_fused_loss_passes_gradcheck(layout):
    projections, prototypes, labels, noise = _case((4, 2), 6, shared=True, noisy=True, seed=3)
    k = len(projections)

    def fn(*tensors):
        return hcal_level_losses(tensors[:k], tensors[k:], labels, tau=0.5, fa=True, noise=noise, layout=layout)

    inputs = [t.clone().requires_grad_() for t in [*projections, *prototypes]]
    assert torch.autograd.gradcheck(fn, inputs)


def test_layouts_agree_and_auto_picks_joint_only_for_small_shared_heads():
    projections, prototypes, labels, noise = _case((6, 3, 2), 13, shared=True, noisy=True)
    joint = hcal_level_losses(projections, prototypes, labels, tau=0.1, fa=True, noise=noise, layout="joint")
    levels = hcal_level_losses(projections, prototypes, labels, tau=0.1, fa=True, noise=noise, layout="levels")
    torch.testing.assert_close(joint, levels, rtol=1e-12, atol=0)
    assert _joint_is_small((10, 6, 2), 32, True)  # 40 rows x 18 prototypes
    assert not _joint_is_small((100_000, 10_000, 1_000), 256, True)  # 11,256 rows x 111,000 prototypes
    with pytest.raises(ValueError, match="layout 'joint' needs one projection"):
        hcal_level_losses(projections * 3, prototypes, labels, tau=0.1, fa=True, layout="joint")


def test_bad_arguments_name_the_parameter():
    projections, prototypes, labels, _ = _case((4, 2), 6, shared=True, noisy=False)
    with pytest.raises(ValueError, match=r"labels must be \(6, 2\), got \(6, 3\)"):
        hcal_level_losses(projections, prototypes, torch.zeros(6, 3, dtype=torch.long), tau=0.1, fa=True)
    with pytest.raises(ValueError, match="tau must be > 0, got 0"):
        hcal_level_losses(projections, prototypes, labels, tau=0, fa=True)
    with pytest.raises(ValueError, match="projections must hold 1 or 2 tensors"):
        hcal_level_losses(projections * 3, prototypes, labels, tau=0.1, fa=True)
    with pytest.raises(ValueError, match="layout must be"):
        hcal_level_losses(projections, prototypes, labels, tau=0.1, fa=True, layout="fast")
    with pytest.raises(ValueError, match=r"prototypes\[1\] must be \(2, 5\) like projections\[0\]'s \(n, d\), got \(2, 4\)"):
        hcal_level_losses(projections, [prototypes[0], prototypes[1][:, :4]], labels, tau=0.1, fa=True)
    with pytest.raises(ValueError, match=r"noise must be \(6, 5\), got \(6, 4\)"):
        hcal_level_losses(projections, prototypes, labels, tau=0.1, fa=True, noise=torch.zeros(6, 4))


def test_autocast_computes_in_float32_and_returns_input_dtypes():
    projections, prototypes, labels, noise = _case((6, 3, 2), 13, shared=True, noisy=True)
    z = projections[0].to(torch.bfloat16).requires_grad_()
    protos = [p.float().requires_grad_() for p in prototypes]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = hcal_level_losses([z], protos, labels, tau=0.1, fa=True, noise=noise.float())
    assert losses.dtype == torch.float32
    losses.sum().backward()
    assert z.grad.dtype == torch.bfloat16 and all(p.grad.dtype == torch.float32 for p in protos)
    expected = reference([z.detach().double()], [p.detach().double() for p in protos], labels, 0.1, True, noise)
    torch.testing.assert_close(losses.double(), expected, rtol=1e-5, atol=1e-6)


def test_backward_twice_with_retained_graph_gives_the_same_gradients():
    projections, prototypes, labels, noise = _case((6, 3, 2), 13, shared=True, noisy=True)
    z = projections[0].clone().requires_grad_()
    losses = hcal_level_losses([z], prototypes, labels, tau=0.1, fa=True, noise=noise)
    first = torch.autograd.grad(losses.sum(), z, retain_graph=True)[0]
    second = torch.autograd.grad(losses.sum(), z)[0]
    assert torch.equal(first, second)


def test_batch_classes_by_hand():
    group, classes = batch_classes(torch.tensor([2, 0, 2]), 3)  # few classes: group = class
    assert group.tolist() == [2, 0, 2] and classes.tolist() == [0, 1, 2]
    group, classes = batch_classes(torch.tensor([7, 3, 7, 9]), 20)  # many: ranks of the distinct classes
    assert group.tolist() == [1, 0, 1, 2] and classes[:3].tolist() == [3, 7, 9]


def test_the_c_kernel_is_built_where_a_c_compiler_is():
    """setup.sh (pip install) builds it; only an install without a C compiler falls back to the
    PyTorch layouts. Skipped where hcal runs from source (PYTHONPATH) without being installed."""
    import importlib.metadata
    import shutil
    import sysconfig

    try:
        importlib.metadata.version("hcal")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("hcal is not installed by pip here (PYTHONPATH only): nothing built its C kernel")
    if not shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]):
        pytest.skip("no C compiler here: hcal runs its PyTorch layouts")
    assert KERNEL_AVAILABLE, "the C kernel did not build: re-run setup.sh and read pip's build output"


@needs_kernel
def test_auto_takes_the_kernel_for_small_cpu_heads_and_blas_for_big_ones():
    projections, prototypes, labels, noise = _case((6, 3, 2), 13, shared=True, noisy=True)
    z = projections[0].clone().requires_grad_()
    assert type(hcal_level_losses([z], prototypes, labels, tau=0.1, fa=True).grad_fn).__name__ == "_KernelLossBackward"
    big = [torch.randn(c, 64, dtype=torch.float64) for c in (3000, 10)]
    leaf = torch.randint(3000, (64,))
    z = torch.randn(64, 64, dtype=torch.float64, requires_grad=True)
    losses = hcal_level_losses([z], big, torch.stack([leaf, leaf // 300], 1), tau=0.1, fa=True)
    assert type(losses.grad_fn).__name__ == "_HCALLossBackward"


@needs_kernel
def test_kernel_in_float32_and_on_non_contiguous_inputs():
    projections, prototypes, labels, noise = _case((6, 3, 2), 13, shared=True, noisy=True)
    z32 = projections[0].float().t().contiguous().t()  # same values, transposed strides
    assert not z32.is_contiguous()
    fused = _value_and_grads(lambda z, p, y, u: hcal_level_losses(z, p, y, tau=0.3, fa=True, noise=u, layout="kernel"),
                             [z32], [p.float() for p in prototypes], labels, noise.float())
    expected = _value_and_grads(lambda z, p, y, u: reference(z, p, y, 0.3, True, u), projections, prototypes, labels, noise)
    torch.testing.assert_close(fused[0].double(), expected[0], rtol=1e-5, atol=1e-6)
    for got, want in zip(fused[1], expected[1]):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layout", ["joint", "levels", KERNEL])
def test_a_zero_projection_row_gets_f_normalize_gradients(layout):
    projections, prototypes, labels, noise = _case((6, 3, 2), 13, shared=True, noisy=True)
    projections[0][4] = 0.0
    fused = _value_and_grads(lambda z, p, y, u: hcal_level_losses(z, p, y, tau=0.3, fa=True, noise=u, layout=layout),
                             projections, prototypes, labels, noise)
    expected = _value_and_grads(lambda z, p, y, u: reference(z, p, y, 0.3, True, u), projections, prototypes, labels, noise)
    assert fused[1][0][4].abs().max() > 1e6  # x / max(|x|, eps) at x = 0: the gradient is g / eps
    torch.testing.assert_close(fused[0], expected[0], rtol=1e-10, atol=1e-12)
    for got, want in zip(fused[1], expected[1]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@needs_kernel
def test_kernel_rejects_labels_out_of_range_with_the_position_and_the_range():
    projections, prototypes, labels, _ = _case((6, 3, 2), 13, shared=True, noisy=False)
    labels[5, 1] = 3
    with pytest.raises(ValueError, match=r"labels\[5, 1\] must be in \[0, 3\), got 3"):
        hcal_level_losses(projections, prototypes, labels, tau=0.1, fa=True, layout="kernel")
    with pytest.raises(ValueError, match="layout 'kernel': the C kernel needs CPU tensors"):
        hcal_level_losses([projections[0].to("meta")], prototypes, labels, tau=0.1, fa=True, layout="kernel")
