"""Nash-MTL, multi-task learning as a bargaining game (Navon et al., ICML 2022).

The shared parameters move along ``sum_k alpha_k g_k`` with ``alpha`` the Nash bargaining
solution: ``G^T G alpha = 1 / alpha`` (element-wise), ``G`` holding the levels' gradients as
columns. Solver: TorchJD's :class:`~torchjd.aggregation.NashMTL` (the authors' sequence of convex
problems, solved with cvxpy's ECOS; ``G^T G`` is scaled by its Frobenius norm inside the solver
only, for conditioning), then the update's norm is capped at ``max_norm = 1`` (``--nashmtl-max-norm``; the authors'
defaults: ``max_norm`` 1, weights updated every step, at most 20 convex iterations).

The backend (``cvxpy`` and ``ecos``) is checked when the weighting is built: without it hcal
stops with a one-line error naming the package and the install command. It never falls back to
equal weights: if the solver finds no solution before it ever found one, training stops
(:class:`NashSolverError`); later, TorchJD keeps the last weights its iterations found (as the
authors' code does), and hcal warns and counts it (``solver_failures``). The solver's warm start
is not checkpointed: a resumed run restarts it from ``alpha = 1``, which changes its starting
point, not its solution.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import ConfigError, NashSolverError
from ._base import WEIGHTINGS, SharedTrunk
from ._jacobian import JacobianAggregation, require_packages

__all__ = ["NashMTLWeighting", "NashSolverError"]

SOLVED = ("optimal", "optimal_inaccurate")
INSTALL = "pip install 'cvxpy>=1.4' 'ecos>=2.0.14'"


@WEIGHTINGS.register(
    "nashmtl",
    description="Nash bargaining solution G^T G alpha = 1/alpha over the levels' gradients (cvxpy + ECOS)",
    reference="Navon et al.: Multi-Task Learning as a Bargaining Game, ICML 2022",
    options={"max_norm": "nashmtl_max_norm"},
)
class NashMTLWeighting(JacobianAggregation):
    def __init__(self, num_levels: int, max_norm: float = 1.0, update_weights_every: int = 1,
                 optim_niter: int = 20) -> None:
        super().__init__(num_levels)
        require_packages("nashmtl", ("cvxpy", "ecos"), INSTALL)
        from torchjd.aggregation import NashMTL  # deferred (see _jacobian.py)

        try:
            self.aggregator = NashMTL(
                n_tasks=num_levels, max_norm=max_norm, update_weights_every=update_weights_every,
                optim_niter=optim_niter,
            )
        except ImportError as e:  # TorchJD's own check of the same packages
            raise ConfigError(f"nashmtl: its optimisation backend is missing ({e}); install it with: "
                              f"{INSTALL}") from None
        self.solver_failures = 0
        self._solved_once = False

    def combine(self, losses: list[torch.Tensor], trunk: SharedTrunk) -> torch.Tensor:
        state = self.aggregator.weighting
        solving = state.step % state.update_weights_every == 0
        problem = getattr(state, "prob", None)
        if solving and problem is not None and hasattr(problem, "_status"):
            problem._status = None  # so that the status read below comes from this step's solves
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not DPP.*")
            weights = super().combine(losses, trunk)
        if solving:
            status = state.prob.status
            if status not in SOLVED:
                # TorchJD then keeps the last weights its iterations found; before any, its initial all-ones
                if not self._solved_once and bool(np.all(np.asarray(state.prvs_alpha) == 1.0)):
                    raise NashSolverError(
                        "nashmtl: the Nash-MTL solver (cvxpy/ECOS) found no weights at the first step (status "
                        f"{status!r}); "
                        "training stopped rather than continue with equal weights"
                    )
                self.solver_failures += 1
                warnings.warn(
                    f"nashmtl: the solver ended with status {status!r}; the last weights it found (this step's or an "
                    f"earlier one's) are used ({self.solver_failures} time(s) so far)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self._solved_once = True
        return weights
