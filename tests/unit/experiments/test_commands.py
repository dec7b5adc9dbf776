"""experiments/commands.py: the ablation table."""
from hcal.experiments.commands import ABLATIONS, DEFAULT_ABLATIONS


def test_default_ablation_has_eight_configurations():
    assert len(DEFAULT_ABLATIONS) == 8 and all(c in ABLATIONS for c in DEFAULT_ABLATIONS)
    assert "MTL" not in DEFAULT_ABLATIONS and "MTL+PP+AWA" in DEFAULT_ABLATIONS  # Table 2's rows
    assert len({tuple(sorted(ABLATIONS[c].items())) for c in DEFAULT_ABLATIONS}) == 8


def test_the_header_counts_each_run_once_when_it_is_also_scored_with_another_decoding(tmp_path):
    import time

    from hcal.config import Config
    from hcal.experiments.commands import _finish

    metrics = {"test/acc_l1": 0.8, "test/acc_l2": 0.9, "test/hvr": 0.1, "test/full_path_acc": 0.7, "test/hf1": 0.8}
    rows = []
    for seed, seconds in ((0, 600.0), (1, 300.0)):  # two runs, 15 min in all
        run = {"label": "ew", "seed": seed, **metrics, "train_seconds": seconds, "run_dir": str(tmp_path / f"r{seed}")}
        rows += [run, {**run, "label": "ew · consistent", "decode": "consistent"}]  # the --also-decode row
    text = _finish(tmp_path, "T", "method", Config(backbone="small-cnn"), [0, 1], rows, time.perf_counter(),
                   None, None, lambda *_: None)
    assert "training + validation time summed over runs 15.0 min" in text
