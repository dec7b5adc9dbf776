"""hcal's own: a per-level loss that agrees with consistent decoding (not in the paper).

Consistent decoding (:mod:`hcal.decoding`) predicts the root-to-leaf path with the highest
summed per-level score. Read as a model, the summed scores define one distribution over the
tree's paths::

    P(path | x) = softmax over paths of  sum_k z_k[path_k]

(the per-level log-softmax normalisers do not depend on the path, so raw logits give the same
softmax). A class on level k gets the probability of the paths through it, and the loss of
level k is the negative log of the true class's probability, averaged over the batch::

    L_k = logsumexp_{all paths} s  -  logsumexp_{paths through y_k} s,   s = path scores

On the finest level this is the cross-entropy over paths; at coarse levels it sums over the
leaves below the true class. The per-level InfoNCE trains each level on its own; this trains
the one distribution that consistent decoding reads. HCAL mixes the two with ``path_weight``
(``--path-weight``): ``(1 - w) * InfoNCE_k + w * L_k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["path_scores", "path_level_nll"]


def path_scores(logits: Sequence[torch.Tensor], leaf_paths: torch.Tensor) -> torch.Tensor:
    """``(n, P)``: every root-to-leaf path's summed score ``sum_k logits[k][:, leaf_paths[:, k]]``.

    ``logits``: per level (finest first) ``(n, C_k)`` scores; ``leaf_paths``: ``(P, m)`` class
    indices of every path, finest first (:meth:`hcal.hierarchy.Hierarchy.leaf_paths`)."""
    if len(logits) != leaf_paths.shape[1]:
        raise ValueError(f"expected {leaf_paths.shape[1]} levels of logits, got {len(logits)}")
    return sum(z[:, leaf_paths[:, k]] for k, z in enumerate(logits))


def path_level_nll(logits: Sequence[torch.Tensor], targets: torch.Tensor, leaf_paths: torch.Tensor) -> torch.Tensor:
    """The ``(m,)`` per-level losses ``L_k`` (module docstring) of a batch, finest level first.

    ``targets``: ``(n, m)`` true class per level, finest first (a path of the tree)."""
    scores = path_scores(logits, leaf_paths)
    total = torch.logsumexp(scores, dim=1)  # (n,)
    losses = []
    for k in range(leaf_paths.shape[1]):
        through = leaf_paths[:, k].unsqueeze(0) == targets[:, k : k + 1]  # (n, P): paths through y_k
        true = torch.logsumexp(scores.masked_fill(~through, float("-inf")), dim=1)
        losses.append((total - true).mean())
    return torch.stack(losses)
