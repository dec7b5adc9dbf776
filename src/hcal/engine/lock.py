"""One process at a time writes a run directory: an OS file lock on its ``.lock`` file.

``fcntl.flock`` locks belong to the open file; the kernel drops them when the process ends, however
it ends (a SIGKILL too), so a directory is never left locked by a dead process. A forked child (a
data-loader worker) closes its copies at once, so it never keeps its parent's lock alive. The file
holds the holder's pid, which a refusal names.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import ConfigError, storage_error

__all__ = ["LOCK_FILE", "RunLock", "check_not_in_use"]

LOCK_FILE = ".lock"
_HELD: set[int] = set()  # the descriptors of the locks this process holds


def _close_in_child() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def check_not_in_use(run_dir: Path) -> None:
    """Refuse a run directory another process holds locked (a probe: nothing is created or written)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:  # no lock file: no hcal process writes it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunLock.in_use(run_dir, os.read(fd, 32)) from None
    finally:
        os.close(fd)


class RunLock:
    """An exclusive lock on a run directory, held while one process writes it, until :meth:`release` or its end."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise storage_error(e, self.path) or e from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            content = os.read(self._fd, 32)
            self.release()
            raise self.in_use(run_dir, content) from None
        _HELD.add(self._fd)
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds, a refusal will say "pid unknown"
            pass

    @staticmethod
    def in_use(run_dir: Path, content: bytes) -> ConfigError:
        holder = content.decode(errors="replace").strip() or "unknown"
        return ConfigError(
            f"run directory {str(run_dir)!r} is being written by another hcal process (pid {holder}); wait until it "
            f"ends, or stop it (kill -TERM {holder}) and continue it with hcal fit --resume {run_dir}"
        )

    def release(self) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None
