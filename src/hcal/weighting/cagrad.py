"""CAGrad, conflict-averse gradient descent (Liu, Liu, Jin, Stone, Liu, NeurIPS 2021).

With ``g_k`` the levels' gradients on the shared parameters, ``g0`` their mean and ``c`` in
[0, 1), CAGrad moves along ``d = g0 + (c ||g0|| / ||g_w||) g_w`` where ``g_w = sum_k w_k g_k`` and
``w`` minimises ``g_w . g0 + c ||g0|| ||g_w||`` over the simplex (the dual of maximising the worst
level's improvement within a ball of radius ``c ||g0||`` around ``g0``). The weights are then
``1/m + (c ||g0|| / ||g_w||) w``. Solver: TorchJD's :class:`~torchjd.aggregation.CAGrad` (cvxpy
with CLARABEL). ``c = 0.4`` by default (``--cagrad-c``), as in the paper's NYUv2/Cityscapes
experiments; the update is not
rescaled by ``1 / (1 + c^2)`` (the authors' ``rescale=0``).
"""

from __future__ import annotations

from ._base import WEIGHTINGS
from ._jacobian import JacobianAggregation, require_packages

__all__ = ["ConflictAverseGrad"]


@WEIGHTINGS.register(
    "cagrad",
    description="update g0 + c||g0||/||g_w|| g_w maximising the worst level's improvement near the mean (c 0.4)",
    reference="Liu, Liu, Jin, Stone, Liu: Conflict-Averse Gradient Descent for Multi-task Learning, NeurIPS 2021",
    options={"c": "cagrad_c"},
)
class ConflictAverseGrad(JacobianAggregation):
    def __init__(self, num_levels: int, c: float = 0.4) -> None:
        super().__init__(num_levels)
        if not 0 <= c < 1:
            raise ValueError(f"c must be in [0, 1), got {c}")
        require_packages("cagrad", ("cvxpy", "clarabel"), "pip install 'cvxpy>=1.4'")
        from torchjd.aggregation import CAGrad  # deferred (see _jacobian.py)

        self.c = float(c)
        self.aggregator = CAGrad(c=self.c)
