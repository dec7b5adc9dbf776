"""augment.py: per-image (loader) and per-batch (device) augmentation draw from the same distribution."""

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from hcal.augment import BatchPadCropFlip, PadCropFlip

N = 4000


def _candidates(img: torch.Tensor, size: int, pad: int) -> dict[bytes, int]:
    """Every possible output (crop corner x flip), computed directly."""
    padded = F.pad(img, (pad, pad, pad, pad))
    out = {}
    for i in range(img.shape[1] + 2 * pad - size + 1):
        for j in range(img.shape[2] + 2 * pad - size + 1):
            crop = padded[:, i : i + size, j : j + size]
            for flip in (False, True):
                out[(crop.flip(-1) if flip else crop).numpy().tobytes()] = len(out)
    return out


def _outcome_counts(outputs, candidates) -> np.ndarray:
    counts = np.zeros(len(candidates))
    for o in outputs:
        counts[candidates[o.numpy().tobytes()]] += 1  # KeyError: an output no crop/flip could give
    return counts


def test_crop_and_flip_match_in_distribution():
    torch.manual_seed(0)
    img = torch.arange(1, 65, dtype=torch.uint8).reshape(1, 8, 8)  # every pixel distinct, none zero
    per_image = PadCropFlip(8, padding=2)
    batched = per_image.batched()
    cands = _candidates(img, 8, 2)
    assert len(cands) == 50
    a = _outcome_counts([per_image(img) for _ in range(N)], cands)
    b = _outcome_counts(batched(img.expand(N, 1, 8, 8).clone()), cands)
    # both uniform over the 50 outcomes, and not distinguishable from each other
    assert stats.chisquare(a).pvalue > 1e-3 and stats.chisquare(b).pvalue > 1e-3
    assert stats.chi2_contingency(np.stack([a, b])).pvalue > 1e-3


def test_batch_draws_are_independent_per_image():
    img = torch.arange(1, 65, dtype=torch.uint8).reshape(1, 1, 8, 8).expand(64, 1, 8, 8).clone()
    out = BatchPadCropFlip(8, 2)(img)
    assert len({o.numpy().tobytes() for o in out}) > 20


def test_rotation_matches_in_distribution():
    torch.manual_seed(1)
    img = torch.full((1, 16, 16), 255, dtype=torch.uint8)
    per_image = PadCropFlip(16, padding=0, rotation=15)
    zeros_a = np.array([(per_image(img) == 0).sum().item() for _ in range(1500)])
    out = per_image.batched()(img.expand(1500, 1, 16, 16).clone())
    zeros_b = (out == 0).flatten(1).sum(1).numpy()
    assert out.dtype == torch.uint8 and set(out.unique().tolist()) <= {0, 255}
    assert zeros_a.mean() > 5  # rotations do uncover corners: the statistic can tell
    assert stats.ks_2samp(zeros_a, zeros_b).pvalue > 1e-3
    assert abs(zeros_a.mean() - zeros_b.mean()) < 0.1 * zeros_a.mean()
