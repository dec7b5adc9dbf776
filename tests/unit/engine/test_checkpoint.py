"""engine/checkpoint.py: atomic writes and safe, checked reads."""

import errno
import os

import pytest
import torch

from hcal.engine import checkpoint
from hcal.engine.checkpoint import atomic_torch_save, load_checkpoint_file
from hcal.errors import CheckpointError, StorageError


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


class _FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written, as on a full disk."""

    def __init__(self, path, mode, room):
        self.fh, self.room = open(path, mode), room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_atomic_write_leaves_the_old_file_on_a_failed_write(tmp_path, monkeypatch):
    """A full disk (simulated here; tests/e2e/test_reliability.py fills a real tmpfs where it can mount one)."""
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"v": torch.ones(3)}, path)
    monkeypatch.setattr(checkpoint, "open", lambda p, mode: _FullDisk(p, mode, room=100), raising=False)
    with pytest.raises(StorageError) as info:
        atomic_torch_save({"v": torch.zeros(10_000)}, path)
    assert str(info.value) == f"cannot write {str(path)!r}: no space left on the device"
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.ckpt"]
    monkeypatch.setattr(checkpoint.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.EROFS, "ro")))
    monkeypatch.setattr(checkpoint, "open", open, raising=False)
    with pytest.raises(StorageError, match="last.ckpt': read-only file system"):
        checkpoint.atomic_write(path, lambda fh: fh.write(b"x"))
    assert os.listdir(tmp_path) == ["last.ckpt"]
