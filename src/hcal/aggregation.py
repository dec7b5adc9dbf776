"""Feature aggregation (FA), HCAL Sec. 3.2.

At level 1 (finest) every sample's embedding enters the prototype loss. At a coarser level k,
the embeddings of the batch's samples that share a level-k label are averaged (the mean is
*not* re-normalised), and each class mean is one term of that level's loss: the coarse
prototype is pulled towards the centre of its children's samples, which keeps the embedding
space consistent across levels.

Distributed training: pass the *global* batch (embeddings and labels gathered from every
process, with gradients) so each class mean covers the whole batch, not one process's share.
"""

from __future__ import annotations

import torch

__all__ = ["class_means"]


def class_means(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean embedding of each class present in the batch.

    Args:
        features: ``(n, d)`` embeddings.
        labels: ``(n,)`` class indices.

    Returns:
        ``(means, classes)``: ``(c, d)`` means of the ``c`` distinct classes present, in
        ascending class order, and ``(c,)`` those class indices. Gradients flow to ``features``.
    """
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features must be (n, d) and labels (n,), got {tuple(features.shape)} and {tuple(labels.shape)}"
        )
    classes, inverse = torch.unique(labels, sorted=True, return_inverse=True)
    sums = features.new_zeros(classes.shape[0], features.shape[1]).index_add(0, inverse, features)
    counts = torch.bincount(inverse, minlength=classes.shape[0])
    return sums / counts.unsqueeze(1), classes
