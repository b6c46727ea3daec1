"""Guided diffusions: auxiliary messages on a grid (exact and RK4), the guided Euler scheme, the Girsanov
weight (sign test), bridges, importance-sampling evidence and the noise-as-input log-likelihood.

Oracles are independent NumPy/SciPy computations: closed-form OU transitions (Lyapunov equation),
dense joint Gaussians of the observations, closed-form OU / Brownian bridge moments."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from markovppl.backward.diffusion import aux_transitions, backward_diffusion, grid_transitions, pullback_linear
from markovppl.backward.rules import pullback
from markovppl.families.sde import DiscretelyObservedSDE
from markovppl.guided.diffusion import guided_diffusion
from markovppl.guided.rules import guide
from markovppl.kernels.diffusion import Diffusion, LinearSDE, time_grid
from markovppl.messages import gaussian as gm


# ----------------------------------------------------------------------------- NumPy oracles
def ou_transition_np(B, beta, a, dt):
    """Exact (Phi, b, Q) of dX = (BX + beta) dt + dW_a for a stable B (Lyapunov equation, no Van Loan)."""
    B, beta, a = (np.asarray(x, float) for x in (B, beta, a))
    phi = scipy.linalg.expm(B * dt)
    s_inf = scipy.linalg.solve_continuous_lyapunov(B, -a)  # B S + S B' + a = 0
    q = s_inf - phi @ s_inf @ phi.T
    b = (phi - np.eye(len(beta))) @ np.linalg.solve(B, beta)
    return phi, b, 0.5 * (q + q.T)


def ou_evidence_np(B, beta, a, x0, times, L, R, y, start=0.0, P0=None):
    """log p(y) for a linear SDE observed at ``times`` (NaN missing): dense joint Gaussian of the observed entries."""
    d = len(x0)
    means, covs, phis = [], [], []
    m, P, t = np.asarray(x0, float), (np.zeros((d, d)) if P0 is None else np.asarray(P0, float)), start
    for tj in times:
        phi, b, q = ou_transition_np(B, beta, a, tj - t)
        m, P, t = phi @ m + b, phi @ P @ phi.T + q, tj
        means.append(m), covs.append(P), phis.append(phi)
    M = len(times)
    joint = np.zeros((M * d, M * d))
    for i in range(M):
        joint[i * d:(i + 1) * d, i * d:(i + 1) * d] = covs[i]
        prop = np.eye(d)
        for j in range(i + 1, M):
            prop = phis[j] @ prop
            joint[j * d:(j + 1) * d, i * d:(i + 1) * d] = prop @ covs[i]
            joint[i * d:(i + 1) * d, j * d:(j + 1) * d] = (prop @ covs[i]).T
    big_L = np.kron(np.eye(M), L)
    mu = big_L @ np.concatenate(means)
    S = big_L @ joint @ big_L.T + np.kron(np.eye(M), R)
    yy = np.asarray(y, float).reshape(-1)
    obs = ~np.isnan(yy)
    return scipy.stats.multivariate_normal(mu[obs], S[np.ix_(obs, obs)]).logpdf(yy[obs])


def leaf_message(L, R, y):
    L, R, y = (np.asarray(x, float) for x in (L, R, y))
    Ri = np.linalg.inv(R)
    c = -0.5 * y @ Ri @ y - 0.5 * np.linalg.slogdet(2 * np.pi * R)[1]
    return gm.gaussian_message(jnp.asarray(c), jnp.asarray(L.T @ Ri @ y), jnp.asarray(L.T @ Ri @ L))


B2 = np.array([[-0.9, 0.4], [-0.3, -0.5]])
BETA2 = np.array([0.2, -0.1])
SIG2 = np.array([[0.7, 0.0, 0.2], [0.3, 0.5, 0.0]])  # (d, w) = (2, 3)


# ----------------------------------------------------------------------------- messages
@pytest.mark.smoke
def test_rk4_messages_match_exact_and_closed_form():
    """bffg §5 item 8: RK4 on the Riccati ODEs vs the exact (Van Loan) messages to 1e-8 on every grid
    point; both vs log N(y; L(Phi x + b), L Q L' + R) from the Lyapunov oracle; partial observation."""
    aux = LinearSDE(jnp.asarray(B2), jnp.asarray(BETA2), jnp.asarray(SIG2))
    L, R, y = np.array([[1.0, -0.5]]), np.array([[0.2]]), np.array([0.4])
    hT = leaf_message(L, R, y)
    drift = lambda t, x: jnp.zeros(2)
    kern = lambda solver: Diffusion(drift, jnp.eye(2), jnp.array(1.3), aux, num_steps=400, solver=solver)
    ex = backward_diffusion(kern("exact"), hT, start_time=0.2)
    rk = backward_diffusion(kern("rk4"), hT, start_time=0.2)
    for f in ("c", "F", "H"):
        np.testing.assert_allclose(getattr(rk.messages, f), getattr(ex.messages, f), atol=1e-8, rtol=0)
    assert float(ex.times[0]) == 0.2 and abs(float(ex.times[-1]) - 1.5) < 1e-15
    phi, b, q = ou_transition_np(B2, BETA2, SIG2 @ SIG2.T, 1.3)
    for x in (np.array([0.3, -0.4]), np.array([-1.0, 2.0])):
        want = scipy.stats.multivariate_normal(L @ (phi @ x + b), L @ q @ L.T + R).logpdf(y)
        got = gm.evaluate(jax.tree.map(lambda m: m[0], ex.messages), jnp.asarray(x))
        assert abs(float(got) - want) < 1e-10
    # generic pullback rule registered for the kernel = first grid message
    pb = pullback(kern("exact"), hT)
    np.testing.assert_allclose(pb.H, ex.messages.H[0], atol=1e-12)


def test_information_messages_match_the_covariance_form_filter():
    """bffg §5 item 8, second half: the covariance-form filter (MitosisStochasticDiffEq's
    CovarianceFilterODE, nu = H^-1 F, P = H^-1, mass-convention constant with dc/dt = tr B), integrated
    backward by SciPy's adaptive solver, converted to (c, F, H) agrees with the exact messages (1e-8)."""
    from scipy.integrate import solve_ivp

    aux = LinearSDE(jnp.asarray(B2), jnp.asarray(BETA2), jnp.asarray(SIG2))
    L, R, y = np.eye(2), np.array([[0.3, 0.1], [0.1, 0.2]]), np.array([0.4, -0.7])   # full observation: H_T invertible
    hT = leaf_message(L, R, y)
    ell = 1.1
    ex = backward_diffusion(Diffusion(lambda t, x: jnp.zeros(2), jnp.eye(2), jnp.array(ell), aux, num_steps=16), hT)
    a_tilde = SIG2 @ SIG2.T
    H_T, F_T = np.asarray(hT.H), np.asarray(hT.F)
    P_T = np.linalg.inv(H_T)
    nu_T = P_T @ F_T
    c_mass_T = float(hT.c) + 0.5 * F_T @ P_T @ F_T - 0.5 * np.linalg.slogdet(H_T / (2 * np.pi))[1]

    def rhs(t, u):                          # d/dt of (nu, P, c_mass)
        nu, P = u[:2], u[2:6].reshape(2, 2)
        return np.concatenate([B2 @ nu + BETA2, (B2 @ P + P @ B2.T - a_tilde).ravel(), [np.trace(B2)]])

    ts = np.asarray(ex.times)
    sol = solve_ivp(rhs, (ts[-1], ts[0]), np.concatenate([nu_T, P_T.ravel(), [c_mass_T]]), t_eval=ts[::-1],
                    rtol=1e-12, atol=1e-13)
    for k, t in enumerate(ts[::-1]):
        nu, P, c_mass = sol.y[:2, k], sol.y[2:6, k].reshape(2, 2), sol.y[6, k]
        H = np.linalg.inv(P)
        F = H @ nu
        c_exp = c_mass - 0.5 * F @ P @ F + 0.5 * np.linalg.slogdet(H / (2 * np.pi))[1]
        i = len(ts) - 1 - k
        np.testing.assert_allclose(np.asarray(ex.messages.H[i]), H, atol=1e-8, rtol=0)
        np.testing.assert_allclose(np.asarray(ex.messages.F[i]), F, atol=1e-8, rtol=0)
        assert abs(float(ex.messages.c[i]) - c_exp) < 1e-8


def test_pullback_linear_equals_square_root_rule_and_aux_transitions():
    """The C = I + HQ pullback agrees with the square-root rule of the Gaussian messages (affine_substitute ∘ convolve),
    and the augmented Van Loan transitions agree with the Lyapunov oracle."""
    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(2, 2)), rng.normal(size=2)
    Q = np.array([[0.5, 0.2], [0.2, 0.3]])
    G = rng.normal(size=(1, 2))
    msg = gm.gaussian_message(0.3, jnp.asarray(rng.normal(size=2)), jnp.asarray(G.T @ G))  # singular H
    got = pullback_linear(jnp.asarray(A), jnp.asarray(b), jnp.asarray(Q), msg)
    want = gm.affine_substitute(gm.convolve(msg, jnp.linalg.cholesky(jnp.asarray(Q))), jnp.asarray(A), jnp.asarray(b))
    for f in ("c", "F", "H"):
        np.testing.assert_allclose(getattr(got, f), getattr(want, f), atol=1e-12)
    aux = LinearSDE(jnp.asarray(B2), jnp.asarray(BETA2), jnp.asarray(SIG2))
    Ag, bg, Qg = aux_transitions(aux, jnp.array([0.01, 0.7, 3.0]))
    for i, dt in enumerate((0.01, 0.7, 3.0)):
        phi, bb, q = ou_transition_np(B2, BETA2, SIG2 @ SIG2.T, dt)
        np.testing.assert_allclose(Ag[i], phi, atol=1e-12)
        np.testing.assert_allclose(bg[i], bb, atol=1e-12)
        np.testing.assert_allclose(Qg[i], q, atol=1e-12)


@pytest.mark.parametrize("time_change", [True, False])
def test_grid_transitions_compose_to_the_per_cell_exponentials(time_change):
    """One exponential per interval composed over the grid equals one Van Loan exponential per cell (and the
    Lyapunov oracle), including the long first cell; zero duration gives identity transitions."""
    aux = LinearSDE(jnp.asarray(B2), jnp.asarray(BETA2), jnp.asarray(SIG2))
    ell, n = 3.0, 40
    A, b, Q = grid_transitions(aux, jnp.array(ell), n, time_change)
    cells = np.diff(np.asarray(time_grid(jnp.array(ell), n, time_change)))
    Ac, bc, Qc = aux_transitions(aux, jnp.asarray(cells))
    for got, want in ((A, Ac), (b, bc), (Q, Qc)):
        np.testing.assert_allclose(got, want, atol=1e-12, rtol=1e-11)
    phi, bb, q = ou_transition_np(B2, BETA2, SIG2 @ SIG2.T, cells[0])
    np.testing.assert_allclose(Q[0], q, atol=1e-12)
    A0, b0, Q0 = grid_transitions(aux, jnp.array(0.0), 3, time_change)
    np.testing.assert_allclose(A0, np.broadcast_to(np.eye(2), (3, 2, 2)), atol=1e-15)
    assert float(jnp.abs(b0).max()) == 0.0 and float(jnp.abs(Q0).max()) == 0.0
    with pytest.raises(ValueError, match="scalar duration"):
        grid_transitions(aux, jnp.ones(2), 3, time_change)
    with pytest.raises(ValueError, match="positive integer"):
        grid_transitions(aux, jnp.array(1.0), 0, time_change)


# ----------------------------------------------------------------------------- sign test (bffg §3 item 6)
OU_Y, OU_R, OU_X0 = 1.39, 0.05, 1.1


def ou_exact_log_evidence():
    th, mu, s2 = 0.8, 0.3 / 0.8, 0.81
    mean = mu + (OU_X0 - mu) * math.exp(-th)
    var = s2 * (1 - math.exp(-2 * th)) / (2 * th)
    return scipy.stats.norm(mean, math.sqrt(var + OU_R)).logpdf(OU_Y)


def ou_sign_drift(t, x):
    return -0.8 * x + 0.3


def ou_sign_model(num_steps, dtype=jnp.float64):
    f = lambda x: jnp.asarray(x, dtype)
    aux = LinearSDE(f([[-0.2]]), f([0.1]), f([[1.2]]))
    return DiscretelyObservedSDE(ou_sign_drift, f([[0.9]]), aux, f([1.0]), f([[1.0]]), f([[OU_R]]),
                                 x0=f([OU_X0]), num_steps=num_steps)


def flipped_trace_log_weights(sde, obs, lw):
    """Log-weights with the sign of the trace term flipped (the bug of one public implementation): here a, ã
    are constant, so the trace term is path-independent and the flip adds sum_k tr((a - ã) H_k) dt_k."""
    bf = sde.backward_filter(obs)
    t, H = bf.times[0], bf.messages.H[0, :, 0, 0]
    dt = np.diff(np.asarray(t))
    a_diff = 0.81 - 1.44
    return lw + np.sum(a_diff * np.asarray(H)[:-2] * dt[:-1])


def _sign_check(num_steps, num_paths, seed):
    sde = ou_sign_model(num_steps)
    obs = jnp.array([[OU_Y]])
    est = sde.log_evidence_is(jax.random.PRNGKey(seed), obs, num_paths)
    exact = ou_exact_log_evidence()
    # flipped sign, same noise (same key and batching as log_evidence_is)
    bf = sde.backward_filter(obs)
    lw = np.asarray(sde.is_log_weights(jax.random.PRNGKey(seed), bf, num_paths))
    lwf = flipped_trace_log_weights(sde, obs, lw)
    flipped = float(bf.log_h_root) + np.log(np.mean(np.exp(lwf - lwf.max()))) + lwf.max()
    return float(est.log_evidence), float(est.standard_error), float(est.ess) / num_paths, exact, flipped


def test_sign_ou_mismatched_auxiliary():
    """bffg §3 item 6 / §5 item 9 in CI size: N = 500 time-changed steps, 4e4 paths. Power: the Monte Carlo
    standard error is ~0.003 (ESS fraction ~0.75), so the 0.01 threshold is ~3.5 SE for the correct weight;
    the Euler bias at N = 500 is below 0.003 (measured). The flipped trace sign gives ~-2.45, off by ~1.4."""
    est, se, ess_frac, exact, flipped = _sign_check(500, 40_000, 0)
    assert abs(exact - (-1.047287)) < 1e-6  # the independent closed form agrees with bffg.md
    assert se < 0.004 and ess_frac > 0.6
    assert abs(est - exact) < 0.01, (est, exact, se)
    assert abs(flipped - exact) > 0.5, flipped  # the deliberately broken weight fails the same check


@pytest.mark.slow
def test_sign_ou_full_size():
    """bffg §5 item 9 at full size: 2000 steps, 2e5 paths (result recorded in docs/diffusions.md)."""
    est, se, ess_frac, exact, flipped = _sign_check(2000, 200_000, 1)
    print(f"OU sign test: estimate {est:.6f} ± {se:.6f}, exact {exact:.6f}, ESS fraction {ess_frac:.3f}, flipped {flipped:.4f}")
    assert abs(est - exact) < 0.01
    assert abs(flipped - exact) > 0.5


def test_float32_matches_float64_on_same_noise():
    """Float32 model and noise give the float64 log evidence to 1e-3 (OU sign-test model, same noise)."""
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (2000, 200)))
    obs = np.array([[OU_Y]])
    out = {}
    for dtype in (jnp.float32, jnp.float64):
        sde = ou_sign_model(200, dtype)
        ll = sde.guided_log_likelihood(jnp.asarray(obs, dtype), jnp.asarray(z, dtype))
        assert ll.dtype == dtype
        ll = np.asarray(ll, np.float64)
        out[dtype] = ll.max() + np.log(np.mean(np.exp(ll - ll.max())))
    assert abs(out[jnp.float32] - out[jnp.float64]) < 1e-3, out


# ----------------------------------------------------------------------------- bridges (bffg §3 item 7)
TH, SIG, XA, XB = 0.7, 0.8, 0.5, -0.3


def linear_drift(t, x, theta):
    return -theta * x


def bridge_model(drift_theta, aux_theta, num_steps):
    """Conditioned on X(1) = XB (R = 1e-10) with a missing observation at t = 0.5, so the state at 0.5 is a grid point."""
    aux = LinearSDE(jnp.array([[-aux_theta]]), jnp.zeros(1), jnp.array([[SIG]]))
    return DiscretelyObservedSDE(linear_drift, jnp.array([[SIG]]), aux, jnp.array([0.5, 1.0]), jnp.eye(1),
                                 jnp.array([[1e-10]]), x0=jnp.array([XA]), num_steps=num_steps, params=jnp.asarray(drift_theta))


def bridge_moments(theta, t, T=1.0):
    """Closed-form OU bridge (theta > 0) or Brownian bridge (theta = 0) mean and variance at t."""
    if theta == 0.0:
        return XA + t / T * (XB - XA), SIG**2 * t * (T - t) / T
    v = lambda s: SIG**2 * (1 - math.exp(-2 * theta * s)) / (2 * theta)
    mean = XA * math.exp(-theta * t) + math.exp(-theta * (T - t)) * v(t) / v(T) * (XB - XA * math.exp(-theta * T))
    var = v(t) - math.exp(-2 * theta * (T - t)) * v(t) ** 2 / v(T)
    return mean, var


def weighted_moment_z(x, lw, mean, var):
    """z-scores of the self-normalised weighted mean and variance against (mean, var) (delta-method SE)."""
    w = np.exp(lw - lw.max())
    w /= w.sum()
    m = np.sum(w * x)
    s2 = np.sum(w * (x - m) ** 2)
    se_m = math.sqrt(np.sum(w**2 * (x - m) ** 2))
    se_v = math.sqrt(np.sum(w**2 * ((x - m) ** 2 - s2) ** 2))
    return (m - mean) / se_m, (s2 - var) / se_v


@pytest.mark.parametrize("theta", [TH, 0.0], ids=["ou", "brownian"])
def test_bridge_marginals_exact_auxiliary(theta):
    """bffg §5 item 10: guided marginals at t = .5 within 4 SE of the closed-form bridge mean and variance
    (n = 20000: SE of the mean ~0.0028, of the variance ~0.0015); the auxiliary is the true process, so
    log w = 0 exactly, and every path ends at the conditioned value (up to the last step's noise)."""
    sde = bridge_model(theta, theta, 400)
    obs = jnp.array([[jnp.nan], [XB]])
    g = sde.guided_sample(jax.random.PRNGKey(11), obs, (20_000,))
    x = np.asarray(g.states[:, 0, -1, 0])
    assert np.max(np.abs(np.asarray(g.log_weights))) < 1e-12
    # the last Euler step still carries noise of sd sigma * sqrt(dt_last), dt_last = 0.5 / 400^2 on the time-changed grid
    dt_last = float(g.times[1, -1] - g.times[1, -2])
    assert np.max(np.abs(np.asarray(g.states[:, 1, -1, 0]) - XB)) < 6 * SIG * math.sqrt(dt_last)
    mean, var = bridge_moments(theta, 0.5)
    zm, zv = weighted_moment_z(x, np.zeros(len(x)), mean, var)
    assert abs(zm) < 4 and abs(zv) < 4, (zm, zv, x.mean(), x.var(), mean, var)


def test_ou_bridge_with_brownian_auxiliary_needs_its_weights():
    """OU bridge guided by a Brownian-bridge auxiliary (same sigma, so the conditioned laws are equivalent):
    the self-normalised weighted marginal at t = .5 matches the closed form within 4 SE; the same draws
    without their weights (a broken sampler) miss it. Power: the unweighted mean is off by ~0.04 ≈ 10 SE."""
    sde = bridge_model(TH, 0.0, 400)
    g = sde.guided_sample(jax.random.PRNGKey(12), jnp.array([[jnp.nan], [XB]]), (20_000,))
    x, lw = np.asarray(g.states[:, 0, -1, 0]), np.asarray(g.log_weights)
    mean, var = bridge_moments(TH, 0.5)
    zm, zv = weighted_moment_z(x, lw, mean, var)
    assert abs(zm) < 4 and abs(zv) < 4, (zm, zv)
    zm_broken, _ = weighted_moment_z(x, np.zeros(len(x)), mean, var)
    assert abs(zm_broken) > 4, zm_broken


# ----------------------------------------------------------------------------- IS consistency (bffg §5 item 7)
B_TRUE = np.array([[-1.0, 0.5], [-0.4, -0.6]])
BETA_TRUE = np.array([0.3, -0.2])
SIG_TRUE = np.array([[0.6, 0.0], [0.2, 0.5]])
TIMES = np.array([0.3, 0.8, 1.0, 1.9, 2.5])
Y_PARTIAL = np.array([[0.4], [0.1], [np.nan], [-0.3], [0.2]])


def ou2_drift(t, x):
    return jnp.asarray(B_TRUE) @ x + jnp.asarray(BETA_TRUE)


def ou2_model(num_steps, initial=False, R=0.1, aux=None, start_time=0.0):
    aux = aux or LinearSDE(jnp.array([[-0.5, 0.2], [0.0, -0.8]]), jnp.zeros(2), jnp.array([[0.8, 0.0], [0.0, 0.6]]))
    start = dict(initial_mean=jnp.array([0.5, -0.5]), initial_cov=jnp.array([[0.3, 0.1], [0.1, 0.2]])) if initial \
        else dict(x0=jnp.array([0.5, -0.5]))
    return DiscretelyObservedSDE(ou2_drift, jnp.asarray(SIG_TRUE), aux, jnp.asarray(TIMES),
                                 jnp.array([[1.0, 0.0]]), jnp.array([[R]]), num_steps=num_steps, start_time=start_time, **start)


@pytest.mark.parametrize("initial", [False, True], ids=["fixed_x0", "gaussian_x0"])
def test_is_evidence_mismatched_auxiliary_partial_observation(initial):
    """Guided IS on a 2-d OU observed in its first coordinate at 5 irregular times (one missing), with a
    mismatched auxiliary: the estimate is within 3 SE of the exact evidence (dense joint Gaussian oracle).
    4000 paths give an SE of ~0.01-0.02 in log evidence; the Euler bias at N = 100 steps per interval is
    far smaller. (The exact auxiliary, whose weights vanish, is checked in test_per_interval_auxiliary.)"""
    sde = ou2_model(100, initial)
    est = sde.log_evidence_is(jax.random.PRNGKey(5), jnp.asarray(Y_PARTIAL), 4000)
    P0 = np.array([[0.3, 0.1], [0.1, 0.2]]) if initial else None
    exact = ou_evidence_np(B_TRUE, BETA_TRUE, SIG_TRUE @ SIG_TRUE.T, np.array([0.5, -0.5]), TIMES,
                           np.array([[1.0, 0.0]]), np.array([[0.1]]), Y_PARTIAL, P0=P0)
    z = (float(est.log_evidence) - exact) / float(est.standard_error)
    assert abs(z) < 3, (float(est.log_evidence), exact, float(est.standard_error))
    assert float(est.standard_error) < 0.05 and float(est.ess) > 400


# ----------------------------------------------------------------------------- JAX transformations (§5 item 16)
def fhn_aux(theta, c=1.0):
    """Linear auxiliary of FitzHugh-Nagumo: x - x^3 linearised at x = c, i.e. (1 - 3c^2) x + 2c^3."""
    eps, s, gam, beta, sig = theta[0], theta[1], theta[2], theta[3], theta[4]
    B = jnp.stack([jnp.stack([(1 - 3 * c**2) / eps, -1.0 / eps]), jnp.stack([gam, -jnp.ones_like(gam)])])
    return LinearSDE(B, jnp.stack([(s + 2 * c**3) / eps, beta]), jnp.stack([jnp.zeros(1), sig[None]]))


def fhn_loglik_factory(obs, counter=None):
    """FitzHugh-Nagumo (first coordinate observed, noise on the second only) with parameters theta =
    (eps, s, gamma, beta, sigma); the auxiliary depends on theta too."""
    def drift(t, x, p):
        return jnp.stack([(x[0] - x[0] ** 3 - x[1] + p[1]) / p[0], p[2] * x[0] - x[1] + p[3]])

    def diff(t, x, p):
        return jnp.array([[0.0], [1.0]]) * p[4]

    def loglik(theta, z):
        if counter is not None:
            counter.append(1)
        sde = DiscretelyObservedSDE(drift, diff, fhn_aux(theta), jnp.array([0.2, 0.5, 0.9]), jnp.array([[1.0, 0.0]]),
                                    jnp.array([[0.01]]), x0=jnp.array([-0.5, -0.3]), num_steps=20, params=theta)
        return sde.guided_log_likelihood(obs, z)
    return loglik


THETA_FHN = jnp.array([0.1, 0.0, 1.5, 0.8, 0.3])
OBS_FHN = jnp.array([[-0.6], [0.9], [1.1]])


def test_jit_once_vmap_and_grad_through_guided_log_likelihood():
    """jit compiles once across 6 parameter values; vmap over (theta, z) equals a loop to 1e-12; grad in theta
    at fixed z matches central finite differences (relative 1e-5); the noise gradient is finite."""
    counter = []
    f = jax.jit(fhn_loglik_factory(OBS_FHN, counter))
    z = jax.random.normal(jax.random.PRNGKey(0), (60,))
    thetas = THETA_FHN * (1.0 + 0.05 * jnp.arange(6.0))[:, None]
    loop = np.array([float(f(th, z)) for th in thetas])
    assert len(counter) == 1
    assert np.all(np.isfinite(loop)) and np.ptp(loop) > 0
    zs = jax.random.normal(jax.random.PRNGKey(1), (6, 60))
    batched = jax.vmap(f)(thetas, zs)
    np.testing.assert_allclose(batched, [float(f(th, zz)) for th, zz in zip(thetas, zs)], rtol=0, atol=1e-12)
    g, gz = jax.grad(f, argnums=(0, 1))(THETA_FHN, z)
    h = 1e-6
    fd = np.array([(float(f(THETA_FHN.at[i].add(h), z)) - float(f(THETA_FHN.at[i].add(-h), z))) / (2 * h) for i in range(5)])
    np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(gz))) and np.any(np.asarray(gz) != 0)


# ----------------------------------------------------------------------------- robustness (§5 item 17)
def test_near_singular_observation_noise_and_partial_observation_stay_finite():
    """R = 1e-8 with partial (rank-one) observation, a fully missing observation (H = 0 there): messages,
    paths, weights and gradients in the parameters and the noise are all finite."""
    obs = jnp.asarray(Y_PARTIAL)

    def loglik(scale, z):
        aux = LinearSDE(jnp.array([[-0.5, 0.2], [0.0, -0.8]]) * scale, jnp.zeros(2), jnp.array([[0.8, 0.0], [0.0, 0.6]]))
        return ou2_model(50, R=1e-8, aux=aux).guided_log_likelihood(obs, z)

    sde = ou2_model(50, R=1e-8)
    bf = sde.backward_filter(obs)
    for leaf_ in jax.tree.leaves(bf):
        assert np.all(np.isfinite(np.asarray(leaf_)))
    g = sde.guided_sample(jax.random.PRNGKey(2), obs, (64,))
    assert np.all(np.isfinite(np.asarray(g.states))) and np.all(np.isfinite(np.asarray(g.log_weights)))
    z = jax.random.normal(jax.random.PRNGKey(3), (sde.noise_size,))
    gs, gz = jax.grad(loglik, argnums=(0, 1))(1.0, z)
    assert np.isfinite(float(gs)) and np.all(np.isfinite(np.asarray(gz)))


# ----------------------------------------------------------------------------- rules and bad input
def test_guide_rule_for_diffusion_edge():
    """The generic guide rule on a diffusion edge equals guided_diffusion on the recomputed grid messages."""
    aux = LinearSDE(jnp.asarray(B2), jnp.asarray(BETA2), jnp.asarray(SIG2))
    k = Diffusion(lambda t, x: jnp.tanh(x), jnp.asarray(SIG2), jnp.array(0.7), aux, num_steps=16)
    hT = leaf_message(np.array([[1.0, 0.0]]), np.array([[0.1]]), np.array([0.3]))
    z = jax.random.normal(jax.random.PRNGKey(0), (16, 3))
    y, lw = guide(k, hT, jnp.array([0.1, 0.2]), z)
    path, lw2 = guided_diffusion(k, backward_diffusion(k, hT), jnp.array([0.1, 0.2]), z)
    np.testing.assert_allclose(y, path[-1], atol=1e-14)
    assert float(lw) == float(lw2) and float(lw) != 0.0


@pytest.mark.smoke
def test_bad_inputs_raise_clear_errors():
    aux = LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1))
    drift = lambda t, x: -x
    base = dict(obs_matrix=jnp.eye(1), obs_cov=jnp.array([[0.1]]), x0=jnp.zeros(1), num_steps=5)
    build = lambda times, **kw: DiscretelyObservedSDE(drift, jnp.eye(1), aux, jnp.asarray(times), **{**base, **kw})
    cases = [
        (lambda: build([0.5, 0.2]), "sorted"),
        (lambda: build([-0.5, 0.2]), "before start_time"),
        (lambda: build(np.zeros(0)), "empty"),
        (lambda: build([[0.5]]), "1-d"),
        (lambda: build([0.5, np.nan]), "NaN"),
        (lambda: build([0.5], obs_matrix=jnp.eye(2)), "obs_matrix"),
        (lambda: build([0.5], obs_cov=jnp.array([[-0.1]])), "obs_cov"),
        (lambda: build([0.5], x0=jnp.zeros(2)), "x0"),
        (lambda: build([0.5], initial_mean=jnp.zeros(1), initial_cov=jnp.eye(1)), "exactly one"),
        (lambda: build([0.5], num_steps=0), "num_steps"),
        (lambda: build([0.5], solver="euler"), "solver"),
        (lambda: DiscretelyObservedSDE(lambda t, x: jnp.zeros(2), jnp.eye(1), aux, jnp.array([0.5]), **base), "drift"),
        (lambda: DiscretelyObservedSDE(drift, jnp.eye(2), aux, jnp.array([0.5]), **base), "diffusion"),
        (lambda: DiscretelyObservedSDE(drift, jnp.eye(1), LinearSDE(-jnp.eye(1), jnp.zeros(2), jnp.eye(1)), jnp.array([0.5]), **base), "beta"),
        (lambda: Diffusion(drift, jnp.eye(1), jnp.array(-1.0), aux).validate(), "non-negative"),
        (lambda: backward_diffusion(Diffusion(drift, jnp.eye(1), jnp.ones(2), aux), gm.gaussian_message(0.0, jnp.zeros(1), jnp.zeros((1, 1)))), "scalar"),
    ]
    for make, words in cases:
        with pytest.raises(ValueError, match=words):
            make()
    sde = build([0.5, 1.0])
    with pytest.raises(ValueError, match="obs must have shape"):
        sde.backward_filter(jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="noise_size"):
        sde.guided_log_likelihood(jnp.zeros((2, 1)), jnp.zeros(7))
    with pytest.raises(ValueError, match="rng_key or noise"):
        sde.guided_sample(None, jnp.zeros((2, 1)))
    with pytest.raises(ValueError, match="num_paths"):
        sde.log_evidence_is(jax.random.PRNGKey(0), jnp.zeros((2, 1)), 1)


# ----------------------------------------------------------------------------- model file
def test_ou_bridge_model_file_likelihood_is_exact():
    """models/ou_bridge.py: its NumPyro factor equals the dense-Gaussian OU evidence (stationary start at t_0)."""
    from numpyro import handlers

    from markovppl.modelfile import bundled_models, load_model_file

    spec = load_model_file(bundled_models()["ou_bridge"])
    data = spec.load_data()
    y = np.asarray(data["y"])
    assert y.shape == (15, 2) and np.all(np.diff(y[:, 0]) >= 0) and spec.plots is not None
    params = {"log_theta": math.log(1.2), "mu": 0.5, "sigma": 0.7}
    tr = handlers.trace(handlers.substitute(spec.model, params)).get_trace(y=jnp.asarray(y))
    got = float(tr["loglik"]["fn"].log_prob(tr["loglik"]["value"]))  # numpyro.factor: a Unit site
    th, mu, s = 1.2, 0.5, 0.7
    exact = ou_evidence_np(np.array([[-th]]), np.array([th * mu]), np.array([[s * s]]), np.array([mu]), y[:, 0],
                           np.eye(1), np.array([[0.05**2]]), y[:, 1:], start=y[0, 0], P0=np.array([[s * s / (2 * th)]]))
    assert abs(got - exact) < 1e-9, (got, exact)


@pytest.mark.slow
def test_ou_bridge_model_fits_through_cli(tmp_path, capsys):
    from markovppl import cli

    out = tmp_path / "ou_bridge"
    assert cli.main(["fit", "ou_bridge", "--num-warmup", "100", "--num-samples", "100", "--chains", "2", "--no-progress",
                     "--out", str(out)]) == 0
    assert "max R-hat" in capsys.readouterr().out
    assert (out / "bridges.png").stat().st_size > 1000


def test_per_interval_auxiliary():
    """One auxiliary per interval (leading axis M): stacked copies of a shared auxiliary reproduce it exactly, and
    stacked exact auxiliaries give the exact evidence with zero weights."""
    obs = jnp.asarray(Y_PARTIAL)
    M = len(TIMES)
    shared = LinearSDE(jnp.array([[-0.5, 0.2], [0.0, -0.8]]), jnp.zeros(2), jnp.array([[0.8, 0.0], [0.0, 0.6]]))
    stacked = LinearSDE(*(jnp.broadcast_to(x, (M,) + x.shape) for x in (shared.B, shared.beta, shared.sigma)))
    z = jax.random.normal(jax.random.PRNGKey(4), (3, ou2_model(10).noise_size))
    a = ou2_model(10, aux=shared).guided_sample(None, obs, noise=z)
    b = ou2_model(10, aux=stacked).guided_sample(None, obs, noise=z)
    np.testing.assert_allclose(b.states, a.states, atol=1e-13)
    np.testing.assert_allclose(b.log_weights, a.log_weights, atol=1e-13)
    exact = LinearSDE(*(jnp.broadcast_to(jnp.asarray(x), (M,) + x.shape) for x in (B_TRUE, BETA_TRUE, SIG_TRUE)))
    sde = ou2_model(10, aux=exact)
    want = ou_evidence_np(B_TRUE, BETA_TRUE, SIG_TRUE @ SIG_TRUE.T, np.array([0.5, -0.5]), TIMES,
                          np.array([[1.0, 0.0]]), np.array([[0.1]]), Y_PARTIAL)
    assert abs(float(sde.aux_log_evidence(obs)) - want) < 1e-10
    assert np.max(np.abs(np.asarray(sde.guided_log_weight(obs, z)))) < 1e-12
    with pytest.raises(ValueError, match="one entry per observation time"):
        ou2_model(10, aux=LinearSDE(stacked.B[:2], stacked.beta[:2], stacked.sigma[:2]))
    with pytest.raises(ValueError, match="same M"):
        LinearSDE(stacked.B, stacked.beta[:2], stacked.sigma).validate()


@pytest.mark.slow
def test_fitzhugh_nagumo_example_runs(tmp_path):
    from scripts import run_script

    stdout = run_script("examples/fitzhugh_nagumo.py",
                        env={"MARKOVPPL_EXAMPLE_QUICK": "1", "MARKOVPPL_EXAMPLE_OUT": str(tmp_path)})
    rows = [line for line in stdout.splitlines() if line.startswith("(a)")]
    assert len(rows) == 2 and all(np.isfinite(float(r.split()[-3])) for r in rows)
    assert (tmp_path / "fhn_guided_paths.png").stat().st_size > 1000


def test_fitzhugh_nagumo_model_file_is_a_non_centred_guided_model():
    """models/fitzhugh_nagumo.py: innovations site of the documented shape, finite guided factor equal to the
    family's guided log-likelihood at that noise, PCN option naming the site."""
    from numpyro import handlers

    from markovppl.modelfile import bundled_models, load_model_file

    spec = load_model_file(bundled_models()["fitzhugh_nagumo"])
    data = spec.load_data()
    y = np.asarray(data["y"])
    assert y.shape == (10, 2) and np.all(np.diff(y[:, 0]) > 0) and spec.module.PCN["sites"] == ["z"]
    tr = handlers.trace(handlers.seed(spec.model, 0)).get_trace(y=jnp.asarray(y))
    m = spec.module
    sde = m.fhn_sde(tr["gamma"]["value"], tr["beta"]["value"], tr["sigma"]["value"], y[:, 0], y[:, 1])
    assert tr["z"]["value"].shape == sde.noise_shape == (10, m.NUM_STEPS, 1)
    got = float(tr["loglik"]["fn"].log_prob(tr["loglik"]["value"]))
    want = float(sde.guided_log_likelihood(y[:, 1:], tr["z"]["value"].reshape(-1)))
    assert np.isfinite(got) and abs(got - want) < 1e-9


@pytest.mark.slow
def test_fitzhugh_nagumo_model_fits_through_cli(tmp_path, capsys):
    from markovppl import cli

    out = tmp_path / "fhn"
    assert cli.main(["fit", "fitzhugh_nagumo", "--num-warmup", "60", "--num-samples", "40", "--chains", "1",
                     "--no-progress", "--out", str(out)]) == 0
    assert "max R-hat" in capsys.readouterr().out
    assert (out / "guided_paths.png").stat().st_size > 1000
