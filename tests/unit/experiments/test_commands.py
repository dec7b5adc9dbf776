"""experiments/commands.py: the ablation table."""
from hcal.experiments.commands import ABLATIONS, DEFAULT_ABLATIONS


def test_default_ablation_has_eight_configurations():
    assert len(DEFAULT_ABLATIONS) == 8 and all(c in ABLATIONS for c in DEFAULT_ABLATIONS)
    assert "MTL" not in DEFAULT_ABLATIONS and "MTL+PP+AWA" in DEFAULT_ABLATIONS  # Table 2's rows
    assert len({tuple(sorted(ABLATIONS[c].items())) for c in DEFAULT_ABLATIONS}) == 8
