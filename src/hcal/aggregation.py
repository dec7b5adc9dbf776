"""Feature aggregation (FA), HCAL Sec. 3.2.

At level 1 (finest) every sample's embedding enters the prototype loss. At a coarser level k,
the embeddings of the batch's samples that share a level-k label are averaged (the mean is
*not* re-normalised), and each class mean is one term of that level's loss: the coarse
prototype is pulled towards the centre of its children's samples, which keeps the embedding
space consistent across levels.

Everything here has shapes fixed by the batch size and the number of classes alone: no
``torch.unique``, no boolean indexing, so a training step never waits for a GPU. A class absent
from the batch is a row of zeros marked ``present = False``; its term gets weight 0 in
:func:`hcal.prototype_loss.prototype_infonce`.

Distributed training: pass the *global* batch (embeddings and labels gathered from every
process, with gradients) so each class mean covers the whole batch, not one process's share.
"""

from __future__ import annotations

import torch

__all__ = ["batch_classes", "class_means", "group_means"]


def batch_classes(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group ``(n,)`` class indices in ``[0, num_classes)`` by class, without data-dependent shapes.

    Returns ``(group, classes)``: ``(n,)`` the group of every sample and ``(r,)`` the class of
    every group. With ``num_classes <= n`` group ``c`` is class ``c`` (``r = num_classes``);
    otherwise the ``r = n`` groups are the distinct classes in ascending order, then empty groups
    (class 0). Empty groups are those no sample points to.
    """
    n = labels.shape[0]
    if num_classes <= n:
        return labels, torch.arange(num_classes, device=labels.device)
    ordered, order = labels.sort()  # rank the distinct classes: at most n of them
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[1:] = ordered[1:] != ordered[:-1]
    group = torch.empty_like(labels).scatter_(0, order, new.cumsum(0) - 1)
    return group, torch.zeros_like(labels).scatter_(0, group, labels)


def group_means(features: torch.Tensor, group: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(means, counts)``: the ``(r, d)`` mean of the features of every group (zero for an empty
    group) and the ``(r,)`` number of samples in it, for ``(n,)`` group indices in ``[0, r)``."""
    counts = torch.zeros(num_groups, dtype=features.dtype, device=features.device)
    counts = counts.index_add(0, group, torch.ones_like(features[:, 0]))
    sums = features.new_zeros(num_groups, features.shape[1]).index_add(0, group, features)
    return sums / counts.clamp_min(1).unsqueeze(1), counts


def class_means(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mean embedding of every class in the batch: FA's terms at a coarse level.

    Args:
        features: ``(n, d)`` embeddings.
        labels: ``(n,)`` class indices in ``[0, num_classes)``.
        num_classes: classes on this level (fixes the output shapes).

    Returns:
        ``(means, classes, present)``: ``(r, d)`` class means, ``(r,)`` their class indices and
        ``(r,)`` booleans, ``True`` for the rows of classes present in the batch, which come in
        ascending class order; ``r = min(n, num_classes)``. Rows not present are zeros.
        Gradients flow to ``features``.
    """
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features must be (n, d) and labels (n,), got {tuple(features.shape)} and {tuple(labels.shape)}"
        )
    group, classes = batch_classes(labels, num_classes)
    means, counts = group_means(features, group, classes.shape[0])
    return means, classes, counts > 0
