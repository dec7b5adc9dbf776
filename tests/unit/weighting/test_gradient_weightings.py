"""The multi-task weightings against independent computations.

Gradient-combination weightings (CAGrad, IMTL, Nash-MTL, GradNorm) run on a fixed 3 x 4 gradient
matrix: a shared parameter ``theta`` (4 values) is the shared feature itself, and level k's loss
is ``a_k * (J[k] . features)`` with a per-level head scalar ``a_k = 1``, so the per-level
gradients on the shared parameter are exactly the rows of ``J``. The expected updates are solved
here with numpy/scipy, not TorchJD."""

import math
import sys

import numpy as np
import pytest
import torch
from scipy.optimize import fsolve, minimize

import hcal.weighting.nash_mtl as nash
from hcal.errors import ConfigError
from hcal.weighting import (
    ConflictAverseGrad,
    DynamicWeightAverage,
    GradNorm,
    ImpartialMTL,
    NashMTLWeighting,
    NashSolverError,
    SharedTrunk,
    UncertaintyWeighting,
    create_weighting,
)

# Three levels whose gradients conflict (pairwise dot products of mixed sign), 4 shared parameters.
J = np.array([
    [1.0, 2.0, -1.0, 0.5],
    [-2.0, 1.0, 0.5, 1.0],
    [0.5, -1.0, 2.0, -0.5],
])


THETA = np.array([0.3, -0.2, 0.5, 1.0])  # where the shared parameter sits (sets the losses' values)


def run_backward(weighting, jac=J, theta=THETA):
    """One step of ``weighting`` on the toy trunk; returns (theta.grad, head grads, weights)."""
    theta_t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    heads = [torch.ones((), dtype=torch.float64, requires_grad=True) for _ in range(jac.shape[0])]
    features = theta_t * 1.0
    rows = torch.tensor(jac, dtype=torch.float64)
    losses = [a * (row @ features) for a, row in zip(heads, rows)]
    weights = weighting.backward(losses, SharedTrunk(features, [theta_t], [theta_t]))
    return theta_t.grad.numpy(), np.array([float(a.grad) for a in heads]), weights.double().numpy()


# ---------------------------------------------------------------------------------------- IMTL
def imtl_g_closed_form(g):
    """IMTL-G (Liu et al. 2021, Sec. 3.2): alpha_{2:T} = g_1 U^T (D U^T)^{-1}, alpha_1 = 1 - sum alpha_{2:T}."""
    u = g / np.linalg.norm(g, axis=1, keepdims=True)
    D = g[0] - g[1:]
    U = u[0] - u[1:]
    rest = g[0] @ U.T @ np.linalg.inv(D @ U.T)
    return np.concatenate([[1 - rest.sum()], rest])


# -------------------------------------------------------------------------------------- CAGrad
def cagrad_by_scipy(g, c):
    """Solve CAGrad's dual on the simplex: min_w g_w . g0 + c ||g0|| ||g_w||, then d = g0 + c||g0||/||g_w|| g_w."""
    m = g.shape[0]
    g0 = g.mean(axis=0)
    radius = c * np.linalg.norm(g0)

    def objective(w):
        gw = w @ g
        return gw @ g0 + radius * np.linalg.norm(gw)

    best = None
    for start in [np.full(m, 1 / m), *np.eye(m) * 0.9 + 0.1 / m]:
        res = minimize(objective, start, method="SLSQP", bounds=[(0, 1)] * m,
                       constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}], options={"ftol": 1e-14,
                                                                                            "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    w = best.x
    scale = radius / np.linalg.norm(w @ g)
    return g0 + scale * (w @ g), 1 / m + scale * w


# ------------------------------------------------------------------------------------ Nash-MTL
def nash_by_fsolve(g):
    """The Nash bargaining weights: solve G alpha = 1 / alpha (element-wise) with G = g g^T."""
    gram = g @ g.T
    alpha, info, ok, msg = fsolve(lambda a: gram @ a - 1 / a, np.ones(g.shape[0]), full_output=True, xtol=1e-13)
    assert ok == 1, msg
    assert np.abs(gram @ alpha - 1 / alpha).max() < 1e-9 and (alpha > 0).all()
    return alpha


def test_imtl_matches_the_papers_closed_form():
    weighting = ImpartialMTL(3)
    grad, head_grads, weights = run_backward(weighting)
    alpha = imtl_g_closed_form(J)
    update = alpha @ J
    # the defining property: equal projections of the update on every unit gradient
    proj = J @ update / np.linalg.norm(J, axis=1)
    assert np.allclose(proj, proj[0])
    assert weights == pytest.approx(alpha, rel=1e-6)
    assert grad == pytest.approx(update, rel=1e-6)
    # heads get their own level's gradient, unweighted: d(a_k J_k . theta)/d a_k
    assert head_grads == pytest.approx(J @ THETA, rel=1e-9)
    # IMTL-L: d/ds_k (exp(s_k) L_k - s_k) at s = 0 is L_k - 1
    assert weighting.log_scales.grad.tolist() == pytest.approx((J @ THETA - 1).tolist(), rel=1e-6)


def test_imtl_loss_scales_enter_the_weights():
    weighting = ImpartialMTL(3)
    with torch.no_grad():
        weighting.log_scales.copy_(torch.tensor([0.0, math.log(2.0), math.log(0.5)]))
    grad, _, weights = run_backward(weighting)
    scales = np.array([1.0, 2.0, 0.5])
    scaled = J * scales[:, None]  # gradients of the scaled losses
    alpha = imtl_g_closed_form(scaled)
    assert grad == pytest.approx(alpha @ scaled, rel=1e-6)
    assert weights == pytest.approx(alpha * scales, rel=1e-6)  # factor on each raw level gradient
    # IMTL-G is invariant to the scales: the update direction is the same
    unscaled = imtl_g_closed_form(J) @ J
    assert grad / np.linalg.norm(grad) == pytest.approx(unscaled / np.linalg.norm(unscaled), rel=1e-6)


@pytest.mark.parametrize("c", [0.4, 0.8])
def test_cagrad_matches_a_generic_solver(c):
    grad, head_grads, weights = run_backward(ConflictAverseGrad(3, c=c))
    expected_update, expected_weights = cagrad_by_scipy(J, c)
    # TorchJD solves with CLARABEL, here SLSQP: they agree to the solvers' tolerance
    assert grad == pytest.approx(expected_update, rel=1e-3, abs=1e-5)
    assert weights == pytest.approx(expected_weights, rel=1e-3, abs=1e-5)
    assert head_grads == pytest.approx(J @ THETA, rel=1e-9)
    # the conflict-averse property: the worst level improves at least as much as under the mean gradient
    assert (J @ grad).min() >= (J @ J.mean(axis=0)).min() - 1e-9


def test_cagrad_with_c_zero_is_the_mean_gradient():
    grad, _, weights = run_backward(ConflictAverseGrad(3, c=0.0))
    assert grad == pytest.approx(J.mean(axis=0), rel=1e-6)
    assert weights == pytest.approx([1 / 3] * 3, rel=1e-6)


def test_nash_mtl_solves_the_bargaining_equation():
    grad, head_grads, weights = run_backward(NashMTLWeighting(3, max_norm=0.0))
    alpha = nash_by_fsolve(J)
    assert weights == pytest.approx(alpha, rel=2e-3)
    assert grad == pytest.approx(alpha @ J, rel=2e-3, abs=1e-4)
    assert head_grads == pytest.approx(J @ THETA, rel=1e-9)


def test_nash_mtl_caps_the_update_norm():
    grad, _, weights = run_backward(NashMTLWeighting(3))  # the default max_norm = 1
    alpha = nash_by_fsolve(J)
    update = alpha @ J
    assert np.linalg.norm(update) > 1  # so the cap is active and the check can fail
    assert np.linalg.norm(grad) == pytest.approx(1.0, rel=1e-4)
    assert grad == pytest.approx(update / np.linalg.norm(update), rel=3e-3, abs=1e-4)
    assert weights == pytest.approx(alpha / np.linalg.norm(update), rel=3e-3)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_nash_mtl_never_falls_back_to_equal_weights_silently():
    degenerate = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    with pytest.raises(NashSolverError, match="found no weights at the first step"):
        run_backward(NashMTLWeighting(2, max_norm=0.0), degenerate)
    # after a solved step, a failure keeps the previous weights, with a warning
    weighting = NashMTLWeighting(2, max_norm=0.0)
    _, _, first = run_backward(weighting, J[:2])
    with pytest.warns(RuntimeWarning, match="the last weights it found .* are used"):
        _, _, second = run_backward(weighting, degenerate)
    assert second == pytest.approx(first) and weighting.solver_failures == 1


@pytest.mark.parametrize("name, package", [("nashmtl", "cvxpy"), ("nashmtl", "ecos"), ("cagrad", "clarabel")])
def test_missing_solver_backend_is_a_config_error(monkeypatch, name, package):
    monkeypatch.setitem(sys.modules, package, None)  # importlib.util.find_spec now reports it missing
    with pytest.raises(ConfigError) as info:
        create_weighting(name, 3)
    message = str(info.value)
    assert "\n" not in message and f"{name}: its optimisation backend is missing" in message
    assert repr(package) in message and "install it with: pip install" in message


def test_nash_mtl_turns_torchjds_import_error_into_a_config_error(monkeypatch):
    monkeypatch.setattr(nash, "require_packages", lambda *args: None)  # skip hcal's own check
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(ConfigError, match=r"nashmtl: its optimisation backend is missing \(.*cvxpy.*\); install it "
                                           "with: pip"):
        create_weighting("nashmtl", 3)


# ------------------------------------------------------------------------------------ GradNorm
def test_gradnorm_by_hand():
    """Two levels, W = theta (2 values), L_1 = (3, 4) . W, L_2 = (0, 1) . W; alpha = 1.5."""
    c = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    weighting = GradNorm(2, alpha=1.5)

    def step(w_values):
        theta = torch.tensor(w_values, requires_grad=True)
        losses = [c[0] @ theta, c[1] @ theta]
        weights = weighting.backward(losses, SharedTrunk(theta * 1.0, [theta], [theta]))
        return theta.grad, weights

    # step 1 at W = (1, 1): L = (7, 1) = L(0), so r = (1, 1); ||dL/dW|| = (5, 1), w = (1, 1)
    # G = (5, 1), mean 3, target (3, 3): dL_grad/dw = (sign(5 - 3) * 5, sign(1 - 3) * 1) = (5, -1)
    grad, weights = step([1.0, 1.0])
    assert weights.tolist() == [1.0, 1.0]
    assert grad.tolist() == pytest.approx([3.0, 5.0])  # sum_k w_k c_k, weights held constant
    assert weighting.level_weights.grad.tolist() == pytest.approx([5.0, -1.0])
    assert weighting.initial_losses.tolist() == [7.0, 1.0]

    # step 2: the optimiser moved w to (0.5, 2.5); it is renormalised to sum 2: (1/3, 5/3).
    # At W = (1, 0.5): L = (5, 0.5), Ltilde = (5/7, 1/2), r = (20/17, 14/17); G = (5/3, 5/3), mean 5/3;
    # targets 5/3 * (20/17)^1.5 = 2.13 > G_1 and 5/3 * (14/17)^1.5 = 1.25 < G_2: dL_grad/dw = (-5, +1)
    weighting.level_weights.grad = None
    with torch.no_grad():
        weighting.level_weights.copy_(torch.tensor([0.5, 2.5]))
    grad, weights = step([1.0, 0.5])
    assert weights.tolist() == pytest.approx([1 / 3, 5 / 3])
    assert grad.tolist() == pytest.approx([1 / 3 * 3, 1 / 3 * 4 + 5 / 3 * 1])
    assert weighting.level_weights.grad.tolist() == pytest.approx([-5.0, 1.0])
    assert weighting.initial_losses.tolist() == [7.0, 1.0]  # kept from the first step


def test_gradnorm_state_is_checkpointed():
    weighting = GradNorm(3)
    state = weighting.state_dict()
    assert {"level_weights", "initial_losses", "initialised"} <= set(state)


# ------------------------------------------------------------------------- uncertainty and DWA
def test_uncertainty_weighting_by_hand():
    weighting = UncertaintyWeighting(2)
    with torch.no_grad():
        weighting.log_vars.copy_(torch.tensor([0.0, math.log(2.0)]))
    losses = torch.tensor([1.0, 2.0], requires_grad=True)
    total, weights = weighting(losses)
    # exp(-0) * 1 + 0/2 + exp(-ln 2) * 2 + ln(2)/2
    assert float(total.detach()) == pytest.approx(1.0 + 1.0 + math.log(2.0) / 2)
    assert weights.tolist() == pytest.approx([1.0, 0.5])
    total.backward()
    assert losses.grad.tolist() == pytest.approx([1.0, 0.5])
    # d/ds (exp(-s) L + s/2) = -exp(-s) L + 1/2
    assert weighting.log_vars.grad.tolist() == pytest.approx([-1.0 + 0.5, -1.0 + 0.5])


def test_dwa_by_hand_and_its_state_survives_a_checkpoint():
    weighting = DynamicWeightAverage(2, temperature=2.0)
    weighting.train()
    weighting.new_epoch()  # nothing to close yet
    for losses in ([1.0, 2.0], [3.0, 4.0]):  # epoch 1: means (2, 3)
        _, w = weighting(torch.tensor(losses))
        assert w.tolist() == [1.0, 1.0]
    weighting.new_epoch()
    _, w = weighting(torch.tensor([1.0, 1.0]))  # epoch 2: means (1, 1); weights still 1
    assert w.tolist() == [1.0, 1.0]
    weighting.eval()
    weighting(torch.tensor([100.0, 100.0]))  # evaluation does not count
    weighting.train()
    weighting.new_epoch()
    # epoch 3: r = (1/2, 1/3); lambda = 2 softmax(r / 2)
    e1, e2 = math.exp(0.25), math.exp(1 / 6)
    expected = [2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)]
    total, w = weighting(torch.tensor([1.0, 2.0]))
    assert w.tolist() == pytest.approx(expected)
    assert float(total) == pytest.approx(expected[0] * 1.0 + expected[1] * 2.0)

    restored = DynamicWeightAverage(2)
    restored.load_state_dict(weighting.state_dict())
    assert restored.current_weights().tolist() == pytest.approx(expected)
    assert int(restored.epochs_done) == 2 and int(restored.epoch_batches) == 1


def test_gradient_weighting_checks_its_inputs_and_logs_the_plain_sum():
    weighting = ImpartialMTL(3)
    with pytest.raises(ValueError, match=r"losses must be 3 scalar tensors, got shapes \[\(\), \(\)\]"):
        weighting.backward([torch.ones(()), torch.ones(())], SharedTrunk(torch.ones(1), [torch.ones(1)], []))
    with pytest.raises(ValueError, match="trunk.parameters must hold the shared parameters, got none"):
        weighting.backward([torch.ones(())] * 3, SharedTrunk(torch.ones(1), [], []))
    _, _, weights = run_backward(weighting)
    total, logged = weighting(torch.tensor([1.0, 2.0, 3.0]))
    assert float(total) == 6.0 and logged.tolist() == pytest.approx(weights.tolist())


def test_weightings_reject_bad_parameters():
    with pytest.raises(ValueError, match="c must be in \\[0, 1\\), got 1.5"):
        ConflictAverseGrad(3, c=1.5)
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        DynamicWeightAverage(3, temperature=0)
    with pytest.raises(ValueError, match="alpha must be >= 0, got -1"):
        GradNorm(3, alpha=-1)
