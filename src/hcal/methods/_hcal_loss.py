"""HCAL's per-level training losses as one autograd node, with a hand-written backward.

The maths is that of the concept modules, composed for every level in one pass:

* embeddings: ``f = normalise(z)`` of the encoder's projection ``z``;
* prototypes: ``normalise`` each level's parameters, perturbed as in :mod:`hcal.perturbation`
  (``normalise(normalise(p) + u)``, the noise ``u`` drawn by the caller);
* level 1 (and every level with FA off): each sample is a term, its embedding ``f / tau``;
* coarse levels with FA on: each class of the batch is a term, the mean of its samples'
  ``f / tau`` (:mod:`hcal.aggregation`);
* each term's loss is the prototype InfoNCE of :mod:`hcal.prototype_loss` (cross-entropy over the
  level's similarities), averaged over the level's terms.

Why not plain autograd: HCAL's head is a few dozen small tensor operations. On a CPU their
per-operation overhead is several per cent of a small CNN's training step, and on a GPU
``torch.unique`` and ``bincount`` (what a textbook FA uses) each wait for the device. Here the
forward runs without recording a graph, every shape depends only on the batch size and the class
counts (no host-device synchronisation), and the backward is the closed-form gradient.

Two layouts, the same numbers. With one embedding shared by all levels and a small head, every
term of every level is a row of one matrix ``R = A f / tau``, where ``A`` averages samples (an
identity block per per-sample level, one row per class for an FA level): one product gives
all levels' similarities, a mask keeps each row to its level's prototypes, and one log-softmax
gives every term. Otherwise (one embedding per level, or many classes, where the masked products
would be wasted work) the levels are computed one after another.

On a CPU, even the fused node's few dozen operations are a measurable part of a small CNN's
training step: right after the backbone's forward pass each distinct operation runs with cold
caches (10-70 microseconds apiece on a 2-core server, docs/performance.md). For CPU tensors and
small heads, ``auto`` therefore takes a third layout, ``"kernel"``: the whole forward, and the
whole backward (which recomputes the forward), each in one call of a small C kernel
(``_hcal_loss_cpu.c``, built by ``pip install`` where a C compiler is found; without it, or on a GPU,
the PyTorch layouts run). Bigger heads go to the PyTorch layouts, whose BLAS matrix products win.

The computation runs in float32 (float64 if the inputs are), also under autocast.
``tests/test_hcal_loss.py`` checks values and gradients against plain autograd through the
concept modules, in every layout, and with ``torch.autograd.gradcheck``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..aggregation import batch_classes, class_means, group_means
from ..prototype_loss import prototype_infonce

_KERNEL_ABI = 1  # HCAL_KERNEL_ABI of _hcal_loss_cpu.c
try:  # the C kernel of the "kernel" layout, built by pip install where a C compiler is found
    from . import _hcal_loss_cpu
except ImportError:  # pragma: no cover - depends on the build
    _hcal_loss_cpu = None
if _hcal_loss_cpu is not None and getattr(_hcal_loss_cpu, "ABI", None) != _KERNEL_ABI:  # pragma: no cover
    warnings.warn(f"{_hcal_loss_cpu.__file__} is a stale build, not used; re-run setup.sh (pip install -e .) to rebuild it")
    _hcal_loss_cpu = None

__all__ = ["KERNEL_AVAILABLE", "hcal_level_losses", "reference_level_losses"]

_EPS = 1e-12  # F.normalize's default
_SMALL = 4096  # masked similarities that cost nothing next to per-level operations
_KERNEL_WORK = 1 << 20  # (terms x prototypes x d) up to which the C kernel beats the BLAS-backed layouts (docs/performance.md)
KERNEL_AVAILABLE = _hcal_loss_cpu is not None


def hcal_level_losses(
    projections: Sequence[torch.Tensor],
    prototypes: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    tau: float,
    fa: bool,
    noise: torch.Tensor | None = None,
    layout: str = "auto",
) -> torch.Tensor:
    """The ``(m,)`` HCAL losses of a batch, finest level first.

    Args:
        projections: the encoder's ``(n, d)`` outputs before L2 normalisation (normalised here):
            one tensor shared by every level, or one per level.
        prototypes: every level's raw ``(C_k, d)`` prototype parameters (normalised here).
        labels: ``(n, m)`` class indices per level.
        tau: the InfoNCE temperature, ``> 0``.
        fa: feature aggregation at the coarse levels.
        noise: ``(sum C_k, d)`` perturbation noise added to the unit prototypes, or ``None``.
        layout: ``"auto"``, ``"joint"`` (one matrix for all levels; needs one shared projection),
            ``"levels"`` (one level after another) or ``"kernel"`` (CPU tensors only: the whole
            loss in one call of a C kernel, ``_hcal_loss_cpu.c``). The numbers are the same.
            ``"auto"`` takes the kernel for CPU tensors and small heads when it is built.
    """
    m = len(prototypes)
    n = labels.shape[0] if labels.ndim == 2 else -1
    if len(projections) not in (1, m):
        raise ValueError(f"projections must hold 1 or {m} tensors (one per level), got {len(projections)}")
    if labels.ndim != 2 or labels.shape[1] != m or n != projections[0].shape[0]:
        raise ValueError(f"labels must be ({projections[0].shape[0]}, {m}), got {tuple(labels.shape)}")
    d = projections[0].shape[-1]
    sizes = tuple(p.shape[0] for p in prototypes)
    for name, tensors, rows in (("projections", projections, [n] * len(projections)), ("prototypes", prototypes, sizes)):
        for k, (t, r) in enumerate(zip(tensors, rows)):
            if t.shape != (r, d):
                raise ValueError(f"{name}[{k}] must be ({r}, {d}) like projections[0]'s (n, d), got {tuple(t.shape)}")
    if noise is not None and noise.shape != (sum(sizes), d):
        raise ValueError(f"noise must be ({sum(sizes)}, {d}), got {tuple(noise.shape)}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if layout not in ("auto", "joint", "levels", "kernel"):
        raise ValueError(f"layout must be 'auto', 'joint', 'levels' or 'kernel', got {layout!r}")
    if layout == "joint" and len(projections) != 1:
        raise ValueError("layout 'joint' needs one projection shared by every level")
    on_cpu = all(t.device.type == "cpu" for t in (labels, *projections, *prototypes))
    if layout == "kernel" and not (KERNEL_AVAILABLE and on_cpu):
        why = "is not built (no C compiler at install time)" if on_cpu else "needs CPU tensors"
        raise ValueError(f"layout 'kernel': the C kernel {why}")
    if layout == "kernel" or (layout == "auto" and KERNEL_AVAILABLE and on_cpu and _kernel_is_small(sizes, n, d, fa)):
        return _KernelLoss.apply(labels, noise, float(tau), bool(fa), len(projections), *projections, *prototypes)
    joint = layout == "joint" or (layout == "auto" and len(projections) == 1 and _joint_is_small(sizes, n, fa))
    return _HCALLoss.apply(labels, noise, float(tau), bool(fa), joint, len(projections), *projections, *prototypes)


def reference_level_losses(
    projections: Sequence[torch.Tensor],
    prototypes: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    tau: float,
    fa: bool,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """The same losses by plain autograd through the concept modules: the specification
    :func:`hcal_level_losses` is tested against, and its baseline in ``benchmarks/bench.py``."""
    embeds = [F.normalize(z, dim=1) for z in projections]
    unit = F.normalize(torch.cat(list(prototypes)), dim=1)
    protos = F.normalize(unit + noise, dim=1) if noise is not None else unit
    losses = []
    for k, p in enumerate(protos.split([q.shape[0] for q in prototypes])):
        f = embeds[k if len(embeds) > 1 else 0]
        if k == 0 or not fa:
            losses.append(prototype_infonce(f, p, labels[:, k], tau))
        else:
            means, classes = class_means(f, labels[:, k])
            losses.append(prototype_infonce(means, p, classes, tau))
    return torch.stack(losses)


def _joint_is_small(sizes: tuple[int, ...], n: int, fa: bool) -> bool:
    rows = [n if k == 0 or not fa else c for k, c in enumerate(sizes)]
    needed = sum(r * c for r, c in zip(rows, sizes))
    return sum(rows) * sum(sizes) <= 2 * needed + _SMALL


def _kernel_is_small(sizes: tuple[int, ...], n: int, d: int, fa: bool) -> bool:
    rows = [n if k == 0 or not fa else min(n, c) for k, c in enumerate(sizes)]
    return sum(r * c for r, c in zip(rows, sizes)) * d <= _KERNEL_WORK


@lru_cache(maxsize=16)
def _joint_plan(sizes: tuple[int, ...], n: int, fa: bool, device: torch.device, dtype: torch.dtype) -> dict:
    """The constant tensors of the joint layout for one batch size (rows: terms; columns: prototypes)."""
    m = len(sizes)
    per_sample = [k for k in range(m) if k == 0 or not fa]
    aggregated = [k for k in range(m) if k not in per_sample]

    def cat(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=device)

    offsets = torch.tensor([sum(sizes[:k]) for k in range(m)], device=device)
    agg_level = cat([torch.full((sizes[k],), k, device=device) for k in aggregated])
    agg_class = cat([torch.arange(sizes[k], device=device) for k in aggregated])
    row_level = torch.cat([cat([torch.full((n,), k, device=device) for k in per_sample]), agg_level])
    col_level = cat([torch.full((c,), k, device=device) for k, c in enumerate(sizes)])
    return {
        "eye": torch.eye(n, dtype=dtype, device=device).repeat(len(per_sample), 1),
        "agg_level": agg_level if aggregated else None,  # the level and class of every class-mean row
        "agg_class": agg_class,
        "agg_column": agg_class + offsets[agg_level],
        "levels": (row_level[None, :] == torch.arange(m, device=device)[:, None]).to(dtype),  # (m, rows) one-hot
        "rows": torch.arange(row_level.shape[0], device=device),
        "mask": torch.zeros(row_level.shape[0], col_level.shape[0], dtype=dtype, device=device).masked_fill_(
            row_level[:, None] != col_level[None, :], float("-inf")),
        "offsets": offsets,
    }


def _normalise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x / max(|x|, eps), |x|, max(|x|, eps))`` per row."""
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    denom = norm.clamp_min(_EPS)
    return x / denom, norm, denom


def _normalise_backward(grad: torch.Tensor, unit: torch.Tensor, norm: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """Gradient through ``x / max(|x|, eps)``: ``(g - u <u, g>) / |x|``, or ``g / eps`` where clamped."""
    radial = (unit * grad).sum(1, keepdim=True).masked_fill_(norm < _EPS, 0)
    return (grad - unit * radial) / denom


def _as(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x if x.dtype == dtype else x.to(dtype)


def _save(ctx, **state) -> None:
    """Save nested tuples of tensors (or None) with ``ctx.save_for_backward``: freed after the
    backward, checked against in-place changes, and seen by saved-tensor hooks."""
    flat: list[torch.Tensor] = []

    def index(value):
        if isinstance(value, torch.Tensor):
            flat.append(value)
            return len(flat) - 1
        return None if value is None else tuple(index(v) for v in value)

    ctx.layout = {key: index(value) for key, value in state.items()}
    ctx.save_for_backward(*flat)


def _load(ctx) -> dict:
    flat = ctx.saved_tensors

    def value(i):
        return None if i is None else flat[i] if isinstance(i, int) else tuple(value(j) for j in i)

    return {key: value(i) for key, i in ctx.layout.items()}


class _HCALLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, labels, noise, tau, fa, joint, num_projections, *tensors):
        projections, raw = tensors[:num_projections], tensors[num_projections:]
        dtype = torch.promote_types(torch.promote_types(projections[0].dtype, raw[0].dtype), torch.float32)
        ctx.in_dtypes, ctx.tau, ctx.sizes, ctx.joint = [t.dtype for t in tensors], tau, tuple(p.shape[0] for p in raw), joint
        with torch.autocast(labels.device.type, enabled=False):
            proto_norms = _normalise(_as(torch.cat(raw), dtype))
            protos, noise_norms = proto_norms[0], None
            if noise is not None:
                noise_norms = _normalise(protos + _as(noise, dtype))
                protos = noise_norms[0]
            embed_norms = tuple(_normalise(_as(z, dtype)) for z in projections)
            embeds = [e[0] for e in embed_norms]
            if joint:
                losses, terms = _joint_forward(ctx, embeds[0], protos, labels, tau, fa)
            else:
                losses, terms = _levels_forward(ctx, embeds, protos, labels, tau, fa)
        _save(ctx, protos=protos, proto_norms=proto_norms, noise_norms=noise_norms, embed_norms=embed_norms, terms=terms)
        return losses

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_losses):
        saved = _load(ctx)
        protos = saved["protos"]
        with torch.autocast(protos.device.type, enabled=False):
            grad_losses = _as(grad_losses, protos.dtype)
            if ctx.joint:
                grad_embeds, grad_protos = _joint_backward(ctx, grad_losses, protos, saved["terms"])
            else:
                grad_embeds, grad_protos = _levels_backward(ctx, grad_losses, protos, saved["terms"], len(saved["embed_norms"]))
            if saved["noise_norms"] is not None:
                grad_protos = _normalise_backward(grad_protos, *saved["noise_norms"])
            grad_raw = _normalise_backward(grad_protos, *saved["proto_norms"])
            grad_z = [_normalise_backward(g, *norms) for g, norms in zip(grad_embeds, saved["embed_norms"])]
        grads = [_as(g, dt) for g, dt in zip([*grad_z, *grad_raw.split(ctx.sizes)], ctx.in_dtypes)]
        return (None, None, None, None, None, None, *grads)


# ------------------------------------------------------------------ C kernel
class _KernelLoss(torch.autograd.Function):
    """The "kernel" layout: forward and backward are one call each of ``_hcal_loss_cpu.run``
    (the backward recomputes the forward's intermediates, so only the inputs are saved)."""

    @staticmethod
    def forward(ctx, labels, noise, tau, fa, num_projections, *tensors):
        dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
        ctx.in_dtypes, ctx.tau, ctx.fa, ctx.k = [t.dtype for t in tensors], tau, fa, num_projections
        tensors = [_as(t, dtype).contiguous() for t in tensors]
        labels = _as(labels, torch.long).contiguous()
        noise = None if noise is None else _as(noise, dtype).contiguous()
        losses = torch.empty(len(tensors) - num_projections, dtype=dtype)
        _run_kernel(ctx, labels, noise, tensors, None, losses, ())
        ctx.save_for_backward(labels, noise, *tensors)
        return losses

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_losses):
        labels, noise, *tensors = ctx.saved_tensors
        z, raw = tensors[: ctx.k], tensors[ctx.k :]
        n, d = z[0].shape
        parts = [n] * ctx.k + [p.shape[0] for p in raw]
        grads = torch.empty(sum(parts), d, dtype=z[0].dtype).split(parts)
        _run_kernel(ctx, labels, noise, tensors, _as(grad_losses, z[0].dtype).contiguous(), None, grads)
        return (None, None, None, None, None, *(_as(g, dt) for g, dt in zip(grads, ctx.in_dtypes)))


def _run_kernel(ctx, labels, noise, tensors, grad_losses, losses, grads) -> None:
    z, raw = tensors[: ctx.k], tensors[ctx.k :]
    _hcal_loss_cpu.run(
        z[0].dtype == torch.float64, z[0].shape[0], z[0].shape[1], tuple(p.shape[0] for p in raw),
        tuple(t.data_ptr() for t in z), tuple(p.data_ptr() for p in raw),
        0 if noise is None else noise.data_ptr(), labels.data_ptr(), ctx.tau, ctx.fa,
        0 if grad_losses is None else grad_losses.data_ptr(), 0 if losses is None else losses.data_ptr(),
        tuple(g.data_ptr() for g in grads[: ctx.k]), tuple(g.data_ptr() for g in grads[ctx.k :]),
    )


# ------------------------------------------------------------------ joint layout
def _joint_forward(ctx, f, protos, labels, tau, fa):
    n, m = labels.shape
    plan = _joint_plan(ctx.sizes, n, fa, f.device, f.dtype)
    member = plan["eye"]
    if fa:  # the finest level alone has a term per sample; its prototypes come first
        targets = labels[:, 0]
    else:
        targets = (labels + plan["offsets"]).t().reshape(-1)
    if plan["agg_level"] is not None:  # FA: one averaging row per class of every coarse level
        member = torch.cat([member, (labels.t()[plan["agg_level"]] == plan["agg_class"][:, None]).to(f.dtype)])
        targets = torch.cat([targets, plan["agg_column"]])
    counts = member.sum(1)
    average = member / (counts.clamp_min(1) * tau)[:, None]
    rows = average @ f
    log_probs = torch.addmm(plan["mask"], rows, protos.t()).log_softmax(1)
    weight = plan["levels"] * (counts > 0).to(f.dtype)  # (m, rows): the terms of every level ...
    weight = weight / weight.sum(1, keepdim=True)  # ... averaged: 1/n per sample, 1/classes present per mean
    losses = weight @ log_probs[plan["rows"], targets]
    return losses.neg_(), (plan["rows"], weight, log_probs, targets, rows, average)


def _joint_backward(ctx, grad_losses, protos, terms):
    row_index, weight, log_probs, targets, rows, average = terms
    coef = grad_losses @ weight  # d total / d term
    grad_logits = log_probs.exp() * coef[:, None]  # (softmax - onehot) * coef
    grad_logits.index_put_((row_index, targets), -coef, accumulate=True)
    grad_protos = grad_logits.t() @ rows
    grad_embed = average.t() @ (grad_logits @ protos)
    return [grad_embed], grad_protos


# ------------------------------------------------------------------ level by level
def _levels_forward(ctx, embeds, protos, labels, tau, fa):
    n, m = labels.shape
    losses = torch.empty(m, dtype=protos.dtype, device=protos.device)
    terms = []
    for k, p in enumerate(protos.split(ctx.sizes)):
        g = embeds[k if len(embeds) > 1 else 0] / tau
        if k == 0 or not fa:  # every sample a term
            rows, targets, groups, counts = g, labels[:, k], None, None
            weight = torch.full((n,), 1.0 / n, dtype=g.dtype, device=g.device)
        else:  # FA: every class of the batch a term, its mean embedding
            groups, targets = batch_classes(labels[:, k], ctx.sizes[k])
            rows, counts = group_means(g, groups, targets.shape[0])
            present = (counts > 0).to(g.dtype)
            weight = present / present.sum()
        log_probs = (rows @ p.t()).log_softmax(1)
        losses[k] = -(weight * log_probs.gather(1, targets[:, None]).squeeze(1)).sum()
        terms.append((rows, targets, weight, log_probs, groups, counts))
    return losses, terms


def _levels_backward(ctx, grad_losses, protos, terms, num_embeds):
    sizes = ctx.sizes
    grad_protos = torch.empty_like(protos)
    grad_embeds: list[torch.Tensor | int] = [0] * num_embeds
    offset = 0
    for k, (p, (rows, targets, weight, log_probs, groups, counts)) in enumerate(zip(protos.split(sizes), terms)):
        coef = grad_losses[k] * weight
        grad_logits = log_probs.exp() * coef[:, None]
        grad_logits.scatter_add_(1, targets[:, None], -coef[:, None])
        torch.mm(grad_logits.t(), rows, out=grad_protos[offset : offset + sizes[k]])
        grad_rows = grad_logits @ p
        if groups is not None:  # back through the class means
            grad_rows = (grad_rows / counts.clamp_min(1)[:, None]).index_select(0, groups)
        e = k if num_embeds > 1 else 0
        grad_embeds[e] = grad_embeds[e] + grad_rows / ctx.tau
        offset += sizes[k]
    return grad_embeds, grad_protos
