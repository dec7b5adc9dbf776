"""What ``hcal fit`` prints on a terminal: Lightning's bar with hcal's items, or epoch lines where it cannot draw."""

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

ARGS = ["fit", "--dataset", "synthetic", "--epochs", "2", "--limit-batches", "2"]


def _on_terminal(tmp_path: Path, columns: int) -> str:
    """Run ``hcal fit`` with stdout and stderr on a pseudo-terminal ``columns`` wide (0: a terminal without a size);
    returns everything it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24 if columns else 0, columns, 0, 0))
    exe = Path(sys.executable).with_name("hcal")
    proc = subprocess.Popen([str(exe), *ARGS, "--run-dir", str(tmp_path / f"run{columns}")], stdin=slave,
                            stdout=slave, stderr=slave, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    os.close(slave)
    out = b""
    while True:  # read while it runs: a full pty buffer would stall it
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=120) == 0, out[-2000:]
    return out.decode("utf-8", "replace")


@pytest.mark.skipif(not Path(sys.executable).with_name("hcal").exists(), reason="needs the hcal console script")
def test_the_bar_counts_epochs_from_1_and_shows_validation_metrics(tmp_path):
    out = _on_terminal(tmp_path, 100)
    assert "epoch 1/2:" in out and "epoch 2/2:" in out  # the bar's description, as the epoch lines count
    assert "val acc_l1=" in out and "val hvr=" in out and "loss=" in out
    assert "v_num" not in out and "Epoch 0" not in out and "Epoch 1" not in out
    assert "epoch 1/2: train loss" not in out  # the bar, not the lines for logs


@pytest.mark.skipif(not Path(sys.executable).with_name("hcal").exists(), reason="needs the hcal console script")
def test_a_terminal_without_a_size_gets_the_epoch_lines(tmp_path):
    out = _on_terminal(tmp_path, 0)
    lines = [line.strip() for line in out.splitlines()]
    assert sum(line.startswith("epoch 1/2: train loss") for line in lines) == 1
    assert any(line.startswith("epoch 2/2: train loss") and "val hvr" in line for line in lines)
    assert "test metrics" in out
