"""LinearGaussianSSM against a dense joint Gaussian, a NumPy Kalman filter and the RTS smoother."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import markovppl as mp
import oracles

# the matrices of bffg.md §3 item 2 (partial observation: y sees the first coordinate only)
A = np.array([[0.8, 0.5], [-0.1, 0.8]])
B = np.array([0.1, 0.2])
Q = np.diag([0.2, 1.0])
H = np.array([[1.0, 0.0]])
C = np.array([0.3])
R = np.array([[0.5]])
M0 = np.array([1.0, 0.0])
P0 = np.array([[1.0, 0.3], [0.3, 0.5]])


def ssm(T, **kw):
    return mp.LinearGaussianSSM(M0, P0, A, Q, H, R, B, C, num_steps=T, **kw)


def simulate(T, seed=1, m0=M0, P0_=P0, A_=A, b=B, Q_=Q, H_=H, c=C, R_=R):
    return oracles.lgssm_simulate(np.random.default_rng(seed), m0, P0_, A_, b, Q_, H_, c, R_, T)


def random_model(rng, d, m):
    a = rng.normal(size=(d, d))
    a = 0.9 * a / max(1.0, np.max(np.abs(np.linalg.eigvals(a))))
    q = rng.normal(size=(d, d)); q = q @ q.T / d + 0.1 * np.eye(d)
    h = rng.normal(size=(m, d))
    r = rng.normal(size=(m, m)); r = r @ r.T / m + 0.2 * np.eye(m)
    p0 = rng.normal(size=(d, d)); p0 = p0 @ p0.T / d + 0.5 * np.eye(d)
    return rng.normal(size=d), p0, a, rng.normal(size=d) * 0.1, q, h, rng.normal(size=m) * 0.1, r


@pytest.mark.smoke
def test_literature_pullback_value():
    """bffg.md §3 item 1: one pullback through the kernel then the partial observation."""
    from markovppl.backward import leaf, pullback
    from markovppl.kernels import LinearGaussian
    from markovppl.messages import gaussian as gm

    obs = LinearGaussian(jnp.asarray(H), jnp.zeros(1), jnp.asarray(R))
    g = leaf(obs, jnp.array([0.7]), jnp.array([False]))
    h = pullback(LinearGaussian(jnp.asarray(A), jnp.asarray(B), jnp.asarray(Q)), g)
    assert abs(float(gm.evaluate(h, jnp.array([0.3, -0.4]))) - (-0.964601061235)) < 1e-11


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evidence_equals_dense_joint_gaussian(seed):
    rng = np.random.default_rng(seed)
    d, m, T = 3, 2, 5
    m0, p0, a, b, q, h, c, r = random_model(rng, d, m)
    _, y = oracles.lgssm_simulate(rng, m0, p0, a, b, q, h, c, r, T)
    y[1, 0] = np.nan  # a missing coordinate
    y[3] = np.nan  # a missing step
    dense = oracles.lgssm_dense(m0, p0, a, b, q, h, c, r, y)
    model = mp.LinearGaussianSSM(m0, p0, a, q, h, r, b, c, num_steps=T)
    tol = 1e-9 * max(1, abs(dense["log_evidence"]))
    assert abs(float(model.log_prob(y)) - dense["log_evidence"]) < tol
    assert abs(float(model._backward(y).log_evidence) - dense["log_evidence"]) < tol  # BFFG root message
    post = model.smooth(y)
    np.testing.assert_allclose(post.smoothed_means, dense["posterior_mean"], atol=1e-9)
    for t in range(T):
        np.testing.assert_allclose(post.smoothed_covs[t], dense["posterior_cov"][t * d:(t + 1) * d, t * d:(t + 1) * d], atol=1e-9)


def test_long_sequence_matches_numpy_kalman():
    T = 10_000
    _, y = simulate(T, seed=2)
    y[100:110] = np.nan
    kf = oracles.kalman_filter(M0, P0, A, B, Q, H, C, R, y)
    model = ssm(T)
    lp = float(model.log_prob(y))
    assert abs(lp - kf["log_evidence"]) < 1e-8 * abs(kf["log_evidence"])
    assert abs(float(model._backward(y, store_messages=False).log_evidence) - lp) < 1e-8 * abs(lp)
    f = model.filter(y)
    np.testing.assert_allclose(f.filtered_means, kf["filtered_means"], atol=1e-8)
    np.testing.assert_allclose(f.log_predictive, kf["log_predictive"], atol=1e-8)
    assert np.all(np.asarray(f.log_predictive)[100:110] == 0.0)
    par = jax.jit(lambda y: ssm(T, parallel=True).log_prob(y))
    assert abs(float(par(y)) - lp) < 1e-8 * abs(lp)


def test_smooth_equals_rts_and_parallel_messages_agree():
    T = 50
    _, y = simulate(T, seed=3)
    rts = oracles.rts_smoother(M0, P0, A, B, Q, H, C, R, y)
    post = ssm(T).smooth(y)
    np.testing.assert_allclose(post.smoothed_means, rts["smoothed_means"], atol=1e-9)
    np.testing.assert_allclose(post.smoothed_covs, rts["smoothed_covs"], atol=1e-9)
    np.testing.assert_allclose(post.smoothed_cross_covs, rts["smoothed_cross_covs"], atol=1e-9)
    seq, par = ssm(T)._backward(y), ssm(T, parallel=True)._backward(y)
    for a, b in zip(seq.messages, par.messages):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-8)


def test_posterior_sample_moments_match_rts():
    """1e4 exact draws: z-tests of means and variances of every coordinate, |z| < 4.5."""
    T, n = 20, 10_000
    _, y = simulate(T, seed=4)
    rts = oracles.rts_smoother(M0, P0, A, B, Q, H, C, R, y)
    draws = np.asarray(ssm(T).posterior_sample(jax.random.PRNGKey(5), y, (n,)))
    assert draws.shape == (n, T, 2)
    mean, var = rts["smoothed_means"], np.diagonal(rts["smoothed_covs"], axis1=-2, axis2=-1)
    z_mean = (draws.mean(0) - mean) / np.sqrt(var / n)
    z_var = (draws.var(0) - var) / (var * np.sqrt(2.0 / (n - 1)))
    assert np.max(np.abs(z_mean)) < 4.5 and np.max(np.abs(z_var)) < 4.5
    # lag-one cross covariance of the first coordinate (joint law, not just marginals)
    cross = np.mean((draws[:, :-1, 0] - mean[:-1, 0]) * (draws[:, 1:, 0] - mean[1:, 0]), 0)
    se = np.sqrt((var[:-1, 0] * var[1:, 0] + rts["smoothed_cross_covs"][:, 0, 0] ** 2) / n)
    assert np.max(np.abs(cross - rts["smoothed_cross_covs"][:, 0, 0]) / se) < 4.5


def test_partial_and_missing_observations_and_singular_noise():
    """2-d observations with scattered NaNs; a companion-form AR(2) state with singular Q."""
    rng = np.random.default_rng(6)
    a = np.array([[1.2, -0.5], [1.0, 0.0]])
    q = np.array([[0.3, 0.0], [0.0, 0.0]])  # singular
    h = np.array([[1.0, 0.0], [0.5, 0.5]])
    r = np.array([[0.4, 0.1], [0.1, 0.3]])
    m0, p0 = np.zeros(2), np.eye(2)
    T = 12
    _, y = oracles.lgssm_simulate(rng, m0, p0, a, np.zeros(2), q, h, np.zeros(2), r, T)
    y[rng.random(y.shape) < 0.3] = np.nan
    dense = oracles.lgssm_dense(m0, p0, a, np.zeros(2), q, h, np.zeros(2), r, y)
    model = mp.LinearGaussianSSM(m0, p0, a, q, h, r, num_steps=T)
    assert abs(float(model.log_prob(y)) - dense["log_evidence"]) < 1e-9 * max(1, abs(dense["log_evidence"]))
    np.testing.assert_allclose(model.smooth(y).smoothed_means, dense["posterior_mean"], atol=1e-8)
    assert abs(float(model.filter(y).log_evidence) - dense["log_evidence"]) < 1e-9 * max(1, abs(dense["log_evidence"]))
    flagged = np.isnan(y).all(-1)
    model_flag = mp.LinearGaussianSSM(m0, p0, a, q, h, r, num_steps=T, missing=flagged)
    assert abs(float(model_flag.log_prob(y)) - dense["log_evidence"]) < 1e-9 * max(1, abs(dense["log_evidence"]))


def test_nile_local_level_mle_reproduces_durbin_koopman():
    """Local level model on the Nile flow: MLE variances within 1% of D&K (15099, 1469.1), with the
    diffuse start (large-variance approximation, kappa = 1e7)."""
    y = mp.datasets.load_nile().values[:, None]
    T = len(y)

    @jax.jit
    def nll(log_vars):
        s_eps, s_eta = jnp.exp(log_vars)
        m = mp.LinearGaussianSSM(jnp.zeros(1), None, jnp.eye(1), s_eta * jnp.eye(1), jnp.eye(1),
                                 s_eps * jnp.eye(1), num_steps=T, diffuse=True)
        return -m.log_prob(y)

    grad = jax.jit(jax.grad(nll))
    res = optimize.minimize(lambda v: float(nll(v)), np.log([10000.0, 1000.0]), jac=lambda v: np.asarray(grad(v)), method="BFGS")
    s_eps, s_eta = np.exp(res.x)
    assert abs(s_eps / 15099 - 1) < 0.01 and abs(s_eta / 1469.1 - 1) < 0.01


@pytest.mark.parametrize("with_missing", [False, True])
def test_gradient_matches_finite_differences(with_missing):
    T = 25
    _, y = simulate(T, seed=7)
    if with_missing:
        y[[3, 4, 20]] = np.nan

    def f(theta):
        a = jnp.asarray(A) * jnp.exp(theta[0])
        q = jnp.diag(jnp.exp(theta[1:3]))
        r = jnp.exp(theta[3]) * jnp.eye(1)
        m0 = jnp.asarray(M0) + theta[4]
        return mp.LinearGaussianSSM(m0, P0, a, q, H, r, B, C, num_steps=T).log_prob(y)

    theta = jnp.array([-0.1, -1.0, 0.2, -0.5, 0.3])
    g = jax.grad(f)(theta)
    eps = 1e-6
    fd = np.array([(f(theta.at[i].add(eps)) - f(theta.at[i].add(-eps))) / (2 * eps) for i in range(5)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_fused_and_library_linear_algebra_agree(monkeypatch):
    """Both evidence routes (forward Kalman, backward information filter) on both linear-algebra paths.

    The un-jitted methods are called so that the path switch is read at trace time every call."""
    from markovppl import _linalg

    rng = np.random.default_rng(8)
    m0, p0, a, b, q, h, c, r = random_model(rng, 4, 2)
    _, y = oracles.lgssm_simulate(rng, m0, p0, a, b, q, h, c, r, 30)
    model = mp.LinearGaussianSSM(m0, p0, a, q, h, r, b, c, num_steps=30)
    ref = oracles.kalman_filter(m0, p0, a, b, q, h, c, r, y)["log_evidence"]
    forward = lambda: float(model._kalman(y, store=False))
    backward = lambda: float(type(model)._backward.__wrapped__(model, y).log_evidence)
    fused = forward(), backward()
    monkeypatch.setattr(_linalg, "FUSED_MAX_DIM", 0)
    library = forward(), backward()
    for value in fused + library:
        assert abs(value - ref) < 1e-9 * abs(ref)


def test_batched_time_varying_and_vmap():
    rng = np.random.default_rng(9)
    T = 7
    ys = np.stack([simulate(T, seed=s)[1] for s in range(3)])
    model = ssm(T)
    loop = np.array([float(model.log_prob(y)) for y in ys])
    np.testing.assert_allclose(model.log_prob(ys), loop, atol=1e-10)
    np.testing.assert_allclose(jax.vmap(model.log_prob)(ys), loop, atol=1e-10)
    assert model.posterior_sample(jax.random.PRNGKey(0), ys, (4,)).shape == (4, 3, T, 2)
    # time-varying transition: compare with the dense oracle step by step by stacking the same matrix
    scales = rng.uniform(0.5, 1.0, T - 1)
    a_t = np.stack([A * s for s in scales])
    tv = mp.LinearGaussianSSM(M0, P0, mp.time_varying(a_t), Q, H, R, B, C)
    assert tv.num_steps == T
    kf = oracles.kalman_filter(M0, P0, a_t[0], B, Q, H, C, R, ys[0][:2])
    assert abs(float(mp.LinearGaussianSSM(M0, P0, mp.time_varying(a_t[:1]), Q, H, R, B, C).log_prob(ys[0][:2])) - kf["log_evidence"]) < 1e-10
    # full check: time-varying evidence equals a brute-force joint Gaussian built by hand
    mean, cov = np.zeros((T, 2)), np.zeros((T, 2, 2))
    mean[0], cov[0] = M0, P0
    for t in range(1, T):
        mean[t] = a_t[t - 1] @ mean[t - 1] + B
    # joint covariance of the states
    big = np.zeros((2 * T, 2 * T))
    trans = lambda s, t: np.linalg.multi_dot([np.eye(2)] + [a_t[k] for k in reversed(range(s, t))]) if t > s else np.eye(2)
    for t in range(T):
        for s in range(t + 1):
            acc = trans(0, t) @ P0 @ trans(0, s).T + sum(trans(k, t) @ Q @ trans(k, s).T for k in range(1, s + 1))
            big[2 * t:2 * t + 2, 2 * s:2 * s + 2] = acc
            big[2 * s:2 * s + 2, 2 * t:2 * t + 2] = acc.T
    from scipy import stats
    hh = np.kron(np.eye(T), H)
    y_cov = hh @ big @ hh.T + np.kron(np.eye(T), R)
    y_mean = (mean @ H.T + C).ravel()
    ref = stats.multivariate_normal(y_mean, y_cov).logpdf(ys[0].ravel())
    assert abs(float(tv.log_prob(ys[0])) - ref) < 1e-9 * abs(ref)


def test_forecast_moments():
    T = 10
    _, y = simulate(T, seed=10)
    f = oracles.kalman_filter(M0, P0, A, B, Q, H, C, R, y)
    fc = ssm(T).forecast(y, 2)
    m1 = A @ f["filtered_means"][-1] + B
    p1 = A @ f["filtered_covs"][-1] @ A.T + Q
    m2, p2 = A @ m1 + B, A @ p1 @ A.T + Q
    np.testing.assert_allclose(fc.state_means, np.stack([m1, m2]), atol=1e-12)
    np.testing.assert_allclose(fc.obs_covs[1], H @ p2 @ H.T + R, atol=1e-12)
    assert fc.predictive.batch_shape == (2,)


def test_float32_agrees_with_float64_at_long_T():
    T = 10_000
    _, y = simulate(T, seed=11)
    lp64 = float(ssm(T).log_prob(y))
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    m32 = mp.LinearGaussianSSM(f32(M0), f32(P0), f32(A), f32(Q), f32(H), f32(R), f32(B), f32(C), num_steps=T)
    lp32 = m32.log_prob(f32(y))
    back32 = m32._backward(f32(y), store_messages=False).log_evidence
    assert lp32.dtype == jnp.float32 and back32.dtype == jnp.float32
    assert abs(float(lp32) - lp64) < 1e-4 * abs(lp64)
    assert abs(float(back32) - lp64) < 1e-4 * abs(lp64)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(transition_cov=np.array([[1.0, 0.5], [0.0, 1.0]])), "transition_cov must be symmetric"),
        (dict(transition_cov=np.array([[1.0, 0.0], [0.0, -1.0]])), "transition_cov must be positive semi-definite"),
        (dict(emission_cov=np.array([[0.0]])), "emission_cov must be positive definite"),
        (dict(initial_cov=np.array([[1.0, 2.0], [2.0, 1.0]])), "initial_cov must be positive semi-definite"),
        (dict(transition_matrix=np.eye(3)), r"transition_matrix must have shape \(..., 2, 2\)"),
        (dict(emission_matrix=np.ones((1, 3))), r"emission_matrix must have shape \(..., m, 2\)"),
        (dict(emission_cov=np.eye(2)), r"emission_cov must have shape \(..., 1, 1\)"),
        (dict(initial_mean=np.array([np.nan, 0.0])), "initial_mean contains NaN"),
        (dict(transition_offset=np.ones(3)), "transition_offset must have last dimension 2"),
    ],
)
def test_bad_input_raises_clear_errors(change, match):
    args = dict(initial_mean=M0, initial_cov=P0, transition_matrix=A, transition_cov=Q, emission_matrix=H,
                emission_cov=R, transition_offset=B, emission_offset=C)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        mp.LinearGaussianSSM(**args)


def test_diffuse_start_arguments():
    m = mp.LinearGaussianSSM(np.zeros(2), None, A, Q, H, R, diffuse=True, diffuse_scale=1e6)
    np.testing.assert_allclose(m.initial_cov, 1e6 * np.eye(2))
    with pytest.raises(ValueError, match="initial_cov must be None when diffuse=True"):
        mp.LinearGaussianSSM(np.zeros(2), P0, A, Q, H, R, diffuse=True)
    with pytest.raises(ValueError, match="initial_cov is required"):
        mp.LinearGaussianSSM(np.zeros(2), None, A, Q, H, R)


def test_bad_observations_raise():
    with pytest.raises(ValueError, match="empty sequence"):
        ssm(None).log_prob(np.zeros((0, 1)))
    with pytest.raises(ValueError, match="obs must have shape"):
        ssm(None).log_prob(np.float64(1.0))


def test_batched_parameters_match_a_loop():
    """Leading parameter axes are batch axes: three models at once equal three separate models."""
    T = 9
    ys = np.stack([simulate(T, seed=s)[1] for s in range(3)])
    scales = np.array([0.5, 1.0, 2.0])
    qs = np.stack([Q * s for s in scales])
    batched = mp.LinearGaussianSSM(M0, P0, A, qs, H, R, B, C, num_steps=T)
    assert batched.batch_shape == (3,)
    loop = [oracles.kalman_filter(M0, P0, A, B, qs[i], H, C, R, ys[i])["log_evidence"] for i in range(3)]
    np.testing.assert_allclose(batched.log_prob(ys), loop, rtol=1e-10)
    np.testing.assert_allclose(batched._backward(ys).log_evidence, loop, rtol=1e-10)
    rts = oracles.rts_smoother(M0, P0, A, B, qs[2], H, C, R, ys[2])
    np.testing.assert_allclose(batched.smooth(ys).smoothed_means[2], rts["smoothed_means"], atol=1e-9)
    assert batched.posterior_sample(jax.random.PRNGKey(0), ys, (5,)).shape == (5, 3, T, 2)
    assert batched.sample(jax.random.PRNGKey(0), (4,)).shape == (4, 3, T, 1)


def test_jit_traces_once_across_parameter_values():
    T = 15
    _, y = simulate(T, seed=12)
    traces = []

    @jax.jit
    def f(q, r, y):
        traces.append(1)
        return mp.LinearGaussianSSM(M0, P0, A, q * jnp.eye(2), H, r * jnp.eye(1), B, C, num_steps=T).log_prob(y)

    vals = [float(f(q, r, y)) for q, r in [(0.2, 0.5), (0.4, 0.5), (0.2, 1.0), (1.0, 2.0)]]
    assert len(traces) == 1 and len(set(vals)) == 4
    ref = oracles.kalman_filter(M0, P0, A, B, 0.4 * np.eye(2), H, C, 0.5 * np.eye(1), y)["log_evidence"]
    assert abs(vals[1] - ref) < 1e-9 * abs(ref)
