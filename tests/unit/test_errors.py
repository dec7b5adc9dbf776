"""errors.py: one-line errors (also from a data-loader worker and behind a library's exception), stops, warnings."""

import errno
import signal

import pytest
from torch._utils import ExceptionWrapper

from hcal.errors import (
    ConfigError,
    DataError,
    HierarchyError,
    ImageReadError,
    Stopped,
    one_line_warnings,
    storage_error,
    warn,
)


def test_image_error_survives_a_worker_reraise():
    try:
        raise ImageReadError("image /d/x.png cannot be read (truncated); delete or replace the file")
    except ImageReadError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(ImageReadError) as info:
        wrapped.reraise()
    assert str(info.value) == "image /d/x.png cannot be read (truncated); delete or replace the file"
    assert isinstance(info.value, DataError)


@pytest.mark.parametrize("kind", [DataError, ConfigError, HierarchyError])
def test_every_hcal_error_keeps_its_own_line_from_a_worker_traceback(kind):
    wrapped = (f"Caught {kind.__name__} in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               f'  File "x.py", line 1\nhcal.errors.{kind.__name__}: img/3.jpg: not a readable image; remove it\n')
    assert str(kind(wrapped)) == "img/3.jpg: not a readable image; remove it"
    assert str(kind("plain: message")) == "plain: message"


def test_storage_errors_are_found_behind_other_exceptions_and_name_the_path():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/run/metrics.csv")
        except OSError:
            raise RuntimeError("writer failed")  # what a library makes of it
    except RuntimeError as e:
        wrapped = e
    assert str(storage_error(wrapped)) == "cannot write '/data/run/metrics.csv': no space left on the device"
    assert str(storage_error(OSError(errno.EROFS, "x"), "/ro/run")) == "cannot write '/ro/run': read-only file system"
    denied = PermissionError(errno.EACCES, "x", "/d/x.png")  # maybe a read: "access"
    assert str(storage_error(denied)) == "cannot access '/d/x.png': permission denied"
    assert storage_error(FileNotFoundError(errno.ENOENT, "x", "/nope")) is None
    assert storage_error(ValueError("no")) is None


def test_stopped_says_the_signal_where_and_how_to_continue():
    e = Stopped(signal.SIGTERM, "in epoch 3/10", "continue with: hcal fit --resume r")
    assert str(e) == "stopped by SIGTERM in epoch 3/10; continue with: hcal fit --resume r"
    assert e.exit_code == 143 and Stopped(signal.SIGINT).exit_code == 130
    assert str(Stopped(signal.SIGINT).with_hint("rerun", "while testing")) == "stopped by SIGINT while testing; rerun"
    assert not isinstance(e, Exception)  # no `except Exception` swallows a stop


def test_hcal_warnings_are_one_line_each_shown_once(capsys):
    with one_line_warnings("hcal fit"):
        for _ in range(3):
            warn("2 classes have no training sample")
        warn("another")
    assert capsys.readouterr().err.splitlines() == ["hcal fit: warning: 2 classes have no training sample",
                                                    "hcal fit: warning: another"]
