"""RunCheckpoint: a resumed run that was moved keeps its best score and points at its own folder."""

from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from hcal.engine.fitting import RunCheckpoint


def _saved_state(folder: Path) -> dict:
    saved = RunCheckpoint(dirpath=folder, filename="best", monitor="val/acc_l1", mode="max", save_top_k=1)
    saved.best_model_score = torch.tensor(0.9)
    saved.best_model_path = saved.kth_best_model_path = str(folder / "best.ckpt")
    saved.best_k_models = {str(folder / "best.ckpt"): torch.tensor(0.9)}
    saved.last_model_path = str(folder / "last.ckpt")
    return saved.state_dict()


def test_a_moved_run_keeps_its_best_score_and_its_paths_follow_the_folder(tmp_path):
    state = _saved_state(tmp_path / "old" / "checkpoints")
    moved = RunCheckpoint(dirpath=tmp_path / "new" / "checkpoints", filename="best", monitor="val/acc_l1",
                          mode="max", save_top_k=1)
    moved.load_state_dict(state)
    new = tmp_path / "new" / "checkpoints"
    assert float(moved.best_model_score) == float(torch.tensor(0.9))  # Lightning's own class drops it here
    assert moved.best_model_path == moved.kth_best_model_path == str(new / "best.ckpt")
    assert moved.last_model_path == str(new / "last.ckpt")
    assert list(moved.best_k_models) == [str(new / "best.ckpt")]
    assert state["best_model_path"] == str(tmp_path / "old" / "checkpoints" / "best.ckpt")  # caller's dict unchanged


def test_a_run_in_place_loads_as_lightning_does(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    state = _saved_state(folder)
    again = RunCheckpoint(dirpath=folder, filename="best", monitor="val/acc_l1", mode="max", save_top_k=1)
    again.load_state_dict(state)
    assert again.best_model_path == state["best_model_path"] and again.best_k_models == state["best_k_models"]
    assert float(again.best_model_score) == float(torch.tensor(0.9))


def test_checkpoints_written_by_lightnings_class_find_their_state(tmp_path):
    """Lightning files a callback's state under its state_key, which names the class: RunCheckpoint keeps
    ModelCheckpoint's key, or resuming a run saved before it (or saved by it, read by ModelCheckpoint) loses the
    best score without an error."""
    kwargs = dict(dirpath=tmp_path, filename="best", monitor="val/acc_l1", mode="max", save_top_k=1)
    assert RunCheckpoint(**kwargs).state_key == ModelCheckpoint(**kwargs).state_key
    latest = dict(dirpath=tmp_path, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    assert RunCheckpoint(**latest).state_key == ModelCheckpoint(**latest).state_key
