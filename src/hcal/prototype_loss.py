"""The prototype InfoNCE loss, HCAL Eq. 6-7.

For an embedding ``f`` (unit norm, or a class mean of unit-norm embeddings under FA) and the
unit-norm prototypes ``p_1..p_C`` of one level, the loss is the InfoNCE with the true class's
prototype as the positive and every other prototype of the level as a negative::

    L = -log( exp(<f, p_y> / tau) / sum_c exp(<f, p_c> / tau) )

i.e. softmax cross-entropy over the similarities divided by the temperature ``tau``,
averaged over the terms (samples, or the classes present under FA).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["prototype_logits", "prototype_infonce"]


def prototype_logits(features: torch.Tensor, prototypes: torch.Tensor, tau: float) -> torch.Tensor:
    """``(n, c)`` similarities ``<f, p> / tau`` between embeddings and (unit-norm) prototypes."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    return features @ prototypes.t() / tau


def prototype_infonce(
    features: torch.Tensor,
    prototypes: torch.Tensor,
    targets: torch.Tensor,
    tau: float,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean InfoNCE loss of ``features`` (n, d) against ``prototypes`` (c, d) with ``targets`` (n,).

    ``present`` (``(n,)`` booleans, optional) keeps only the marked rows in the mean: the classes
    present in the batch, for FA's class means (:func:`hcal.aggregation.class_means`).
    """
    logits = prototype_logits(features, prototypes, tau)
    if present is None:
        return F.cross_entropy(logits, targets)
    weight = present.to(logits.dtype)
    return (F.cross_entropy(logits, targets, reduction="none") * weight).sum() / weight.sum()
