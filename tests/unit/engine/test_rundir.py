"""engine/rundir.py: what resuming and extending a run require, what a run directory may be replaced by, and
what run.json records."""

import json
from pathlib import Path

import lightning
import pytest
import torch
import yaml

from hcal import __version__
from hcal.config import Config
from hcal.engine.checkpoint import FORMAT
from hcal.engine.rundir import (
    check_output,
    check_run_dir,
    extend_run,
    finish_session,
    prepare_run_dir,
    report_dir_of,
    resumable_checkpoint,
    resume_config,
    start_session,
)
from hcal.errors import ConfigError


def _run(tmp_path: Path, epochs_done: int = 2, **config) -> Path:
    """A run directory whose last checkpoint holds ``epochs_done`` epochs."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    Config(dataset="synthetic", **config).save(run / "config.yaml")
    torch.save({"hcal_format": FORMAT, "hyper_parameters": {}, "epoch": epochs_done - 1},
               run / "checkpoints" / "last.ckpt")
    return run


def test_resume_takes_the_runs_config_and_only_progress_and_epochs_from_flags(tmp_path):
    run = _run(tmp_path, epochs=4)
    assert resume_config(run, {"progress": False, "epochs": 4}).replace(progress=True) == resume_config(run, {})
    assert resume_config(run, {"progress": False}).progress is False
    assert resume_config(run, {"epochs": 6}).epochs == 6
    with pytest.raises(ConfigError, match="seed: run has 0, flag gives 5"):
        resume_config(run, {"seed": 5})
    with pytest.raises(ConfigError, match="not a run directory"):
        resume_config(tmp_path, {})


def test_resumable_checkpoint(tmp_path):
    run = _run(tmp_path, epochs=4)
    config = resume_config(run, {})
    stale = run / "checkpoints" / ".last.ckpt.tmp-123"
    stale.write_bytes(b"half")
    assert resumable_checkpoint(run, config) == run / "checkpoints" / "last.ckpt" and not stale.exists()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="this run has finished .* train it longer with --epochs N"):
        resumable_checkpoint(run, config)
    (run / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        resumable_checkpoint(run, config)


def test_extending_a_finished_run(tmp_path):
    run = _run(tmp_path, epochs_done=4, epochs=4)
    (run / "metrics.json").write_text("{}")
    config = resume_config(run, {"epochs": 10})
    assert resumable_checkpoint(run, config) == run / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="--epochs 3: the run has trained 4 epochs; extending it needs --epochs "
                                          "above 4"):
        resumable_checkpoint(run, config.replace(epochs=3))
    extend_run(run, config)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["epochs"] == 10 and "run_dir" not in saved
    assert not (run / "metrics.json").exists()  # an unfinished run of 10 epochs now: a plain --resume continues it
    assert resumable_checkpoint(run, resume_config(run, {})) == run / "checkpoints" / "last.ckpt"


def test_a_cosine_schedule_is_not_extended(tmp_path):
    run = _run(tmp_path, epochs_done=2, epochs=4, scheduler="cosine")
    assert resumable_checkpoint(run, resume_config(run, {}))  # resuming to its own length is fine
    with pytest.raises(ConfigError, match="--scheduler cosine has decayed the learning rate .*allowed: runs with "
                                          "--scheduler none"):
        resumable_checkpoint(run, resume_config(run, {"epochs": 8}))


def test_run_json_records_every_session(tmp_path):
    run = _run(tmp_path)
    info = start_session(run, "hcal fit --run-dir run")
    first = json.loads((run / "run.json").read_text())  # on record before training: a killed session shows
    assert first["history"][0]["command"] == "hcal fit --run-dir run"
    assert (first["history"][0]["hcal"], first["history"][0]["lightning"]) == (__version__, lightning.__version__)
    finish_session(run, info, seconds=5.0, total_seconds=5.0, epochs=2, best=run / "b.ckpt", gpu="no GPU used")
    info = start_session(run, "hcal fit --resume run --epochs 4")
    finish_session(run, info, seconds=4.04, total_seconds=9.0, epochs=4, best=run / "b.ckpt", gpu="no GPU used")
    final = json.loads((run / "run.json").read_text())
    assert (final["train_seconds"], final["epochs_completed"], final["sessions"]) == (9.0, 4, 2)
    assert (final["hcal"], final["lightning"], final["torch"]) == (__version__, lightning.__version__,
                                                                   torch.__version__)
    assert final["command"] == "hcal fit --resume run --epochs 4"
    assert [(h["command"], h["epochs_completed"], h["train_seconds"]) for h in final["history"]] == [
        ("hcal fit --run-dir run", 2, 5.0), ("hcal fit --resume run --epochs 4", 4, 4.0)]


def test_report_dir_of_a_checkpoint(tmp_path):
    run = _run(tmp_path)
    assert report_dir_of(run / "checkpoints" / "best.ckpt") == run / "report"
    assert report_dir_of(tmp_path / "loose.ckpt") is None


def test_run_dirs_are_protected(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(ConfigError, match="holds a run"):
        check_run_dir(run, overwrite=False)
    check_run_dir(run, overwrite=True)
    prepare_run_dir(run)
    assert run.is_dir() and not any(run.iterdir())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not an hcal run"):
        check_run_dir(tmp_path / "mine", overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_run_dir(tmp_path / "file", overwrite=True)
    with pytest.raises(ConfigError, match="--output .* exists; pass --overwrite"):
        check_output(tmp_path / "file", overwrite=False)
    check_output(tmp_path / "file", overwrite=True)
