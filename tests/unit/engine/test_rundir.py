"""engine/rundir.py: what resuming a run requires, and what a run directory may be replaced by."""

from pathlib import Path

import pytest

from hcal.config import Config
from hcal.engine.rundir import RunDirectory, check_output, check_run_dir, resumable_checkpoint, resume_config
from hcal.errors import ConfigError


def _run(tmp_path: Path, **config) -> Path:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    Config(dataset="synthetic", **config).save(run / "config.yaml")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return run


def test_resume_takes_the_runs_config_and_only_progress_from_flags(tmp_path):
    run = _run(tmp_path, epochs=4)
    assert resume_config(run, {"progress": False, "epochs": 4}).replace(progress=True) == resume_config(run, {})
    assert resume_config(run, {"progress": False}).progress is False
    with pytest.raises(ConfigError, match="epochs: run has 4, flag gives 5"):
        resume_config(run, {"epochs": 5})
    with pytest.raises(ConfigError, match="not a run directory"):
        resume_config(tmp_path, {})


def test_resumable_checkpoint(tmp_path):
    run = _run(tmp_path)
    stale = run / "checkpoints" / ".last.ckpt.tmp-123"
    stale.write_bytes(b"half")
    assert resumable_checkpoint(run) == run / "checkpoints" / "last.ckpt" and not stale.exists()
    (run / "checkpoints" / "last.ckpt").unlink()
    assert resumable_checkpoint(run) is None  # stopped before its first checkpoint: it starts over
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="this run has finished"):
        resumable_checkpoint(run)


def test_run_dirs_are_protected(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(ConfigError, match="holds a run"):
        check_run_dir(run, overwrite=False)
    check_run_dir(run, overwrite=True)
    new = RunDirectory.create(run, overwrite=True)
    assert [p.name for p in run.iterdir()] == [".lock"]
    new.release()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="not an hcal run") as info:
            check_run_dir(tmp_path / "mine", overwrite=overwrite)
        assert "--overwrite" not in str(info.value)  # never suggested for a folder hcal will not replace
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_run_dir(tmp_path / "file", overwrite=True)
    with pytest.raises(ConfigError, match="--output .* exists; pass --overwrite"):
        check_output(tmp_path / "file", overwrite=False)
    check_output(tmp_path / "file", overwrite=True)
