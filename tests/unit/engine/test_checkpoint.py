"""engine/checkpoint.py: atomic writes and safe, checked reads."""

import os

import pytest
import torch

from hcal.engine.checkpoint import atomic_torch_save, load_checkpoint_file
from hcal.errors import CheckpointError


def test_atomic_save_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.ckpt"
    atomic_torch_save({"v": torch.ones(2)}, path)
    atomic_torch_save({"v": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.zeros(2))
    assert os.listdir(tmp_path) == ["a.ckpt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.ckpt"
    atomic_torch_save({"v": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"v": Boom()}, path)
    assert torch.load(path, weights_only=True) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.ckpt"]


def test_truncated_foreign_and_unsafe_checkpoints(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"hcal_format": 1, "hyper_parameters": {}, "state_dict": {"w": torch.randn(100, 100)}}, good)
    assert load_checkpoint_file(good)["hcal_format"] == 1
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.ckpt.*truncated or not a torch checkpoint"):
        load_checkpoint_file(cut)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"model": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="not written by hcal"):
        load_checkpoint_file(foreign)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"hcal_format": 1, "hyper_parameters": {}, "x": Evil()}, unsafe)
    with pytest.raises(CheckpointError, match="holds Python objects such as .*print that hcal does not load"
                       ) as info:
        load_checkpoint_file(unsafe)
    assert "weights_only" not in str(info.value)  # never a hint to load it unsafely
    text = tmp_path / "notes.ckpt"
    text.write_text("12345678")  # not even a pickle: said before torch.load guesses at it
    with pytest.raises(CheckpointError, match="not a torch checkpoint .8 bytes"):
        load_checkpoint_file(text)
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint_file(tmp_path)
