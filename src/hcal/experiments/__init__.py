"""The paper's experiments as functions (and ``hcal experiment`` / ``hcal visualize`` commands)."""

from .commands import ABLATIONS, DEFAULT_ABLATIONS, ablation, compare, sweep
from .grid import RERUN_HINT, RunSpec, read_results, run_grid
from .tables import markdown_table
from .visualize import visualize

__all__ = ["compare", "ablation", "sweep", "visualize", "run_grid", "RunSpec", "read_results", "markdown_table",
           "ABLATIONS", "DEFAULT_ABLATIONS", "RERUN_HINT"]
