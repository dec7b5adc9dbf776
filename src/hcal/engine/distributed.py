"""What a process learns from, and leaves in, its environment under DDP.

Lightning starts DDP training by re-running the same command once per extra process, with
``RANK``/``LOCAL_RANK``/``NODE_RANK`` set; only rank 0 prepares the run directory, and it tells the
others where it is through an environment variable they inherit.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["global_rank", "share_run_dir", "shared_run_dir"]

RUN_DIR_ENV = "HCAL_RUN_DIR"


def global_rank() -> int:
    """This process's rank in a DDP run started by Lightning (0 when not distributed)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    local, node = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("NODE_RANK", 0))
    return node * max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1))) + local if local or node else 0


def share_run_dir(run_dir: Path) -> None:
    """Rank 0: hand the run directory to the processes Lightning starts next (they inherit the environment)."""
    os.environ[RUN_DIR_ENV] = str(run_dir)


def shared_run_dir() -> Path:
    """Ranks 1..N-1: the run directory rank 0 prepared."""
    return Path(os.environ[RUN_DIR_ENV])
