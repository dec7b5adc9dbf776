"""benchmarks/keep_records.py: what a grid's finished runs leave in benchmarks/results/."""

import shutil
from pathlib import Path

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def keep_records():
    return load_benchmark("keep_records")


def _run(grid: Path, name: str, finished: bool = True, tag: str = "a") -> Path:
    run = grid / "runs" / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    (run / "logs" / "csv").mkdir(parents=True)
    (run / "logs" / "csv" / "metrics.csv").write_text(f"epoch,val/full_path_acc\n0,0.5 {tag}\n")
    (run / "config.yaml").write_text("decode: nearest\n")
    (run / "run.json").write_text('{"train_seconds": 1.0}')
    if finished:
        (run / "metrics.json").write_text(f'{{"test/acc_l1": 0.5, "tag": "{tag}"}}')
        (run / "metrics-consistent.json").write_text('{"test/acc_l1": 0.6}')
    return run


def test_finished_runs_are_copied_without_checkpoints_and_unfinished_ones_listed(keep_records, tmp_path, capsys):
    grid, dest = tmp_path / "grid", tmp_path / "results" / "g"
    _run(grid, "ew-seed0")
    _run(grid, "ew-seed1", finished=False)
    assert keep_records.main([str(grid), str(dest)]) == 0
    kept = dest / "runs" / "ew-seed0"
    assert sorted(p.name for p in kept.iterdir()) == [
        "config.yaml", "metrics-consistent.json", "metrics-epochs-1.csv", "metrics.json", "run.json"]
    assert (kept / "metrics-epochs-1.csv").read_text() == "epoch,val/full_path_acc\n0,0.5 a\n"
    assert not (dest / "runs" / "ew-seed1").exists()
    out = capsys.readouterr().out
    assert "skipped ew-seed1: not finished (no metrics.json)" in out and "records of 1 run(s)" in out


def test_a_different_record_is_kept_unless_overwrite(keep_records, tmp_path, capsys):
    dest = tmp_path / "results" / "g"
    _run(tmp_path / "first", "ew-seed0", tag="a")
    _run(tmp_path / "second", "ew-seed0", tag="b")
    keep_records.main([str(tmp_path / "first"), str(dest)])
    assert keep_records.main([str(tmp_path / "first"), str(dest)]) == 0  # the same record again: copied, no clash
    keep_records.main([str(tmp_path / "second"), str(dest)])
    assert '"a"' in (dest / "runs" / "ew-seed0" / "metrics.json").read_text()
    assert "already holds other metrics-epochs-1.csv, metrics.json" in capsys.readouterr().out
    keep_records.main([str(tmp_path / "second"), str(dest), "--overwrite"])
    assert '"b"' in (dest / "runs" / "ew-seed0" / "metrics.json").read_text()


def test_a_folder_without_runs_is_refused_with_its_name(keep_records, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        keep_records.main([str(tmp_path / "nowhere"), str(tmp_path / "dest")])
    assert exc.value.code == 2
    assert f"grid: {tmp_path / 'nowhere'} has no runs/ folder" in capsys.readouterr().err


def test_records_copied_back_to_resume_a_grid_keep_their_epoch_logs(keep_records, tmp_path):
    """The documented way to extend a grid is to copy its benchmarks/results folder to --out: those
    runs have metrics-epochs-*.csv and no logs/, and keeping the grid again must not drop them."""
    dest = tmp_path / "results" / "g"
    run = _run(tmp_path / "grid", "ew-seed0")
    (run / "logs" / "csv" / "version_1").mkdir()
    (run / "logs" / "csv" / "version_1" / "metrics.csv").write_text("epoch,val/full_path_acc\n1,0.7\n")
    keep_records.main([str(tmp_path / "grid"), str(dest)])
    kept = dest / "runs" / "ew-seed0"
    resumed = tmp_path / "resumed" / "runs"
    resumed.mkdir(parents=True)
    shutil.copytree(kept, resumed / "ew-seed0")  # a record, as copied back: no logs/, no checkpoints/
    for i in range(2, 11):  # file names that sort wrong as text (metrics-epochs-10 before -2)
        (resumed / "ew-seed0" / f"metrics-epochs-{i + 1}.csv").write_text(f"epoch,val/full_path_acc\n{i},0.{i}\n")
    assert keep_records.main([str(tmp_path / "resumed"), str(dest)]) == 0
    assert (kept / "metrics-epochs-1.csv").read_text() == "epoch,val/full_path_acc\n0,0.5 a\n"
    assert (kept / "metrics-epochs-2.csv").read_text() == "epoch,val/full_path_acc\n1,0.7\n"
    assert (kept / "metrics-epochs-11.csv").read_text() == "epoch,val/full_path_acc\n10,0.10\n"
    assert len(list(kept.glob("metrics-epochs-*.csv"))) == 11
