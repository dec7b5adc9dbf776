"""Turning per-level scores into per-level predictions.

``nearest`` (the paper's): each level independently takes its highest-scoring class (for
HCAL, the nearest prototype by cosine). Predictions may then violate the hierarchy; HVR
measures how often.

``consistent``: the root-to-leaf path with the highest summed per-level log-probability
``sum_k log softmax(logits_k)[path_k]``. Every returned path is a path of the tree, so HVR is 0
by construction. For HCAL, whose logits are ``cos/tau`` with one ``tau`` for all levels, this
is the path with the highest summed cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import ConfigError
from .hierarchy import Hierarchy
from .path_loss import path_scores

__all__ = ["DECODINGS", "decode"]

DECODINGS = ("nearest", "consistent")


def decode(
    logits: Sequence[torch.Tensor],
    hierarchy: Hierarchy,
    mode: str = "nearest",
    leaf_paths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predict one class per level.

    Args:
        logits: per level (finest first) an ``(n, C_k)`` score tensor.
        hierarchy: the class tree.
        mode: ``"nearest"`` or ``"consistent"``.
        leaf_paths: optional cached ``hierarchy.leaf_paths()`` on the logits' device.

    Returns:
        ``(preds, probs)``: ``(n, m)`` class indices, finest first, and ``(n, m)`` the softmax
        probability of each predicted class on its level.
    """
    if len(logits) != hierarchy.num_levels:
        raise ValueError(f"expected {hierarchy.num_levels} levels of logits, got {len(logits)}")
    log_probs = [torch.log_softmax(z.float(), dim=1) for z in logits]
    if mode == "nearest":
        preds = torch.stack([lp.argmax(dim=1) for lp in log_probs], dim=1)
    elif mode == "consistent":
        if leaf_paths is None:
            leaf_paths = hierarchy.leaf_paths().to(log_probs[0].device)
        preds = leaf_paths[path_scores(log_probs, leaf_paths).argmax(dim=1)]
    else:
        raise ConfigError(f"unknown decoding {mode!r}; choose one of: {', '.join(DECODINGS)}")
    probs = torch.stack(
        [lp.gather(1, preds[:, k : k + 1]).squeeze(1).exp() for k, lp in enumerate(log_probs)], dim=1
    )
    return preds, probs
