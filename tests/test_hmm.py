"""HMM distribution against independent oracles (tests/oracles.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

import markovppl as mp
import oracles

P3 = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
PI3 = np.array([0.5, 0.3, 0.2])
E3 = np.array([[0.7, 0.2, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6]])
Y5 = np.array([0, 1, 1, 2, 0])


def random_stochastic(rng, *shape):
    p = rng.gamma(1.0, size=shape)
    return p / p.sum(-1, keepdims=True)


def categorical_hmm(num_steps=5, **kw):
    return mp.HMM(PI3, P3, dist.Categorical(probs=jnp.asarray(E3)), num_steps=num_steps, **kw)


def loglik_matrix(y):
    return np.log(E3[:, y].T)


@pytest.mark.smoke
def test_evidence_equals_enumeration_and_literature_value():
    hmm = categorical_hmm()
    ref = oracles.hmm_enumerate(PI3, P3, loglik_matrix(Y5))
    assert abs(float(hmm.log_prob(Y5)) - ref["log_evidence"]) < 1e-10
    assert abs(float(jnp.exp(hmm.log_prob(Y5))) - 0.00301027005) < 1e-10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_gaussian_hmm_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    K, T = 3, 6
    pi, P = random_stochastic(rng, K), random_stochastic(rng, K, K)
    mu, sd = rng.normal(size=K) * 2, rng.uniform(0.5, 1.5, K)
    y = rng.normal(size=T) * 2
    hmm = mp.HMM(pi, P, dist.Normal(mu, sd), num_steps=T)
    ll = stats.norm.logpdf(y[:, None], mu, sd)
    ref = oracles.hmm_enumerate(pi, P, ll)
    assert abs(float(hmm.log_prob(y)) - ref["log_evidence"]) < 1e-10 * max(1, abs(ref["log_evidence"]))
    post = hmm.smooth(y)
    np.testing.assert_allclose(post.smoothed_probs, ref["marginals"], atol=1e-10)
    np.testing.assert_allclose(post.pairwise_probs, ref["pairwise"], atol=1e-10)
    np.testing.assert_array_equal(hmm.posterior_mode(y), ref["map_path"])


def test_long_sequence_matches_numpy_forward():
    rng = np.random.default_rng(3)
    K, T = 4, 10_000
    pi, P = random_stochastic(rng, K), random_stochastic(rng, K, K) + 0.0
    rates = np.array([1.0, 4.0, 9.0, 20.0])
    y = rng.poisson(rates[rng.integers(0, K, T)])
    hmm = mp.HMM(pi, P, dist.Poisson(rates), num_steps=T)
    ref = oracles.hmm_forward(pi, P, stats.poisson.logpmf(y[:, None], rates))
    lp = float(hmm.log_prob(y))
    assert abs(lp - ref["log_evidence"]) < 1e-8 * abs(ref["log_evidence"])
    filt = hmm.filter(y)
    np.testing.assert_allclose(filt.filtered_probs, ref["filtered"], atol=1e-8)
    np.testing.assert_allclose(filt.log_predictive, ref["log_predictive"], atol=1e-8)
    assert abs(float(filt.log_evidence) - lp) < 1e-8 * abs(lp)
    par = jax.jit(lambda y: mp.HMM(pi, P, dist.Poisson(rates), num_steps=T, parallel=True).log_prob(y))
    assert abs(float(par(y)) - lp) < 1e-8 * abs(lp)


def test_smooth_and_filter_match_forward_backward():
    rng = np.random.default_rng(4)
    T = 40
    y = rng.integers(0, 3, T)
    hmm = categorical_hmm(T)
    ref = oracles.hmm_forward_backward(PI3, P3, loglik_matrix(y))
    np.testing.assert_allclose(hmm.smooth(y).smoothed_probs, ref["marginals"], atol=1e-10)
    np.testing.assert_allclose(hmm.smooth(y).pairwise_probs, ref["pairwise"], atol=1e-10)
    np.testing.assert_allclose(hmm.filter(y).filtered_probs, ref["filtered"], atol=1e-10)
    np.testing.assert_array_equal(hmm.posterior_mode(y), oracles.hmm_viterbi(PI3, P3, loglik_matrix(y))["map_path"])


def test_single_step():
    hmm = categorical_hmm(1)
    y = np.array([2])
    ref = oracles.hmm_enumerate(PI3, P3, loglik_matrix(y))
    assert abs(float(hmm.log_prob(y)) - ref["log_evidence"]) < 1e-12
    np.testing.assert_allclose(hmm.smooth(y).smoothed_probs, ref["marginals"], atol=1e-12)
    assert hmm.posterior_sample(jax.random.PRNGKey(0), y, (7,)).shape == (7, 1)
    assert hmm.smooth(y).pairwise_probs.shape == (0, 3, 3)
    assert int(hmm.posterior_mode(y)[0]) == ref["map_path"][0]


def test_missing_steps_nan_and_flag():
    rng = np.random.default_rng(5)
    T = 8
    mu, sd = np.array([-1.0, 0.5, 2.0]), np.array([0.5, 1.0, 0.7])
    y = rng.normal(size=T)
    miss = np.zeros(T, bool)
    miss[[0, 3, 4, 7]] = True
    ll = np.where(miss[:, None], 0.0, stats.norm.logpdf(y[:, None], mu, sd))
    ref = oracles.hmm_enumerate(PI3, P3, ll)
    y_nan = np.where(miss, np.nan, y)
    by_nan = mp.HMM(PI3, P3, dist.Normal(mu, sd), num_steps=T)
    by_flag = mp.HMM(PI3, P3, dist.Normal(mu, sd), num_steps=T, missing=miss)
    for hmm, obs in [(by_nan, y_nan), (by_flag, y)]:
        assert abs(float(hmm.log_prob(obs)) - ref["log_evidence"]) < 1e-10
        np.testing.assert_allclose(hmm.smooth(obs).smoothed_probs, ref["marginals"], atol=1e-10)
        lpred = hmm.log_predictive(obs)
        assert np.all(np.asarray(lpred)[miss] == 0.0)
        assert abs(float(lpred.sum()) - ref["log_evidence"]) < 1e-10
    # integer emissions use missing=
    yi = rng.poisson(3.0, T)
    rates = np.array([1.0, 3.0, 8.0])
    lli = np.where(miss[:, None], 0.0, stats.poisson.logpmf(yi[:, None], rates))
    hmm_i = mp.HMM(PI3, P3, dist.Poisson(rates), num_steps=T, missing=miss)
    assert abs(float(hmm_i.log_prob(yi)) - oracles.hmm_enumerate(PI3, P3, lli)["log_evidence"]) < 1e-10


def test_time_varying_transitions():
    rng = np.random.default_rng(6)
    T = 6
    Ps = random_stochastic(rng, T - 1, 3, 3)
    y = rng.integers(0, 3, T)
    hmm = mp.HMM(PI3, mp.time_varying(Ps), dist.Categorical(probs=jnp.asarray(E3)))
    assert hmm.num_steps == T and hmm.event_shape == (T,)
    ref = oracles.hmm_enumerate(PI3, Ps, loglik_matrix(y))
    assert abs(float(hmm.log_prob(y)) - ref["log_evidence"]) < 1e-10
    np.testing.assert_allclose(hmm.smooth(y).pairwise_probs, ref["pairwise"], atol=1e-10)
    np.testing.assert_array_equal(hmm.posterior_mode(y), ref["map_path"])
    par = mp.HMM(PI3, mp.time_varying(Ps), dist.Categorical(probs=jnp.asarray(E3)), parallel=True)
    assert abs(float(par.log_prob(y)) - ref["log_evidence"]) < 1e-10
    sim = hmm.sample(jax.random.PRNGKey(0), (4,))
    assert sim.shape == (4, T)
    ys = np.stack([y, rng.integers(0, 3, T)])  # a batch of sequences sharing the time-varying transitions
    post = hmm.smooth(ys)
    for i in range(2):
        ref_i = oracles.hmm_enumerate(PI3, Ps, loglik_matrix(ys[i]))
        np.testing.assert_allclose(post.pairwise_probs[i], ref_i["pairwise"], atol=1e-10)


def test_stationary_start():
    rng = np.random.default_rng(7)
    P = random_stochastic(rng, 3, 3)
    y = rng.integers(0, 3, 6)
    hmm = mp.HMM("stationary", P, dist.Categorical(probs=jnp.asarray(E3)), num_steps=6)
    pi = oracles.hmm_stationary(P)
    np.testing.assert_allclose(hmm.initial_probs, pi, atol=1e-12)
    ref = oracles.hmm_enumerate(pi, P, loglik_matrix(y))
    assert abs(float(hmm.log_prob(y)) - ref["log_evidence"]) < 1e-10


def test_posterior_sample_chi_square_and_power():
    """2e4 exact draws: chi-square on single and pairwise marginals (p > 1e-3); the same test rejects
    a sampler that draws each state from its filtering marginal."""
    T, n = 5, 20_000
    y = np.array([0, 2, 2, 1, 0])
    hmm = categorical_hmm(T)
    ref = oracles.hmm_enumerate(PI3, P3, loglik_matrix(y))
    paths = np.asarray(hmm.posterior_sample(jax.random.PRNGKey(11), y, (n,)))
    assert paths.shape == (n, T)

    def min_p(paths):
        ps = []
        for t in range(T):
            counts = np.bincount(paths[:, t], minlength=3)
            ps.append(stats.chisquare(counts, n * ref["marginals"][t]).pvalue)
        for t in range(T - 1):
            counts = np.bincount(paths[:, t] * 3 + paths[:, t + 1], minlength=9)
            expected = n * ref["pairwise"][t].ravel()
            keep = expected > 0
            ps.append(stats.chisquare(counts[keep], expected[keep]).pvalue)
        return min(ps)

    assert min_p(paths) > 1e-3
    filt = np.asarray(hmm.filter(y).filtered_probs)
    rng = np.random.default_rng(0)
    wrong = np.stack([rng.choice(3, n, p=filt[t]) for t in range(T)], 1)
    assert min_p(wrong) < 1e-3


def test_posterior_mode_brute_force_random():
    rng = np.random.default_rng(8)
    for _ in range(3):
        P = random_stochastic(rng, 3, 3)
        y = rng.integers(0, 3, 7)
        hmm = mp.HMM(PI3, P, dist.Categorical(probs=jnp.asarray(E3)), num_steps=7)
        np.testing.assert_array_equal(hmm.posterior_mode(y), oracles.hmm_enumerate(PI3, P, loglik_matrix(y))["map_path"])


def test_batched_sequences_and_vmap_equal_loop():
    rng = np.random.default_rng(9)
    ys = rng.integers(0, 3, (4, 9))
    hmm = categorical_hmm(9)
    batched = hmm.log_prob(ys)
    loop = np.array([float(hmm.log_prob(y)) for y in ys])
    np.testing.assert_allclose(batched, loop, atol=1e-12)
    vmapped = jax.vmap(hmm.log_prob)(ys)
    np.testing.assert_allclose(vmapped, loop, atol=1e-12)
    # batch of parameters
    Ps = random_stochastic(rng, 4, 3, 3)
    hb = mp.HMM(PI3, Ps, dist.Categorical(probs=jnp.asarray(E3)), num_steps=9)
    assert hb.batch_shape == (4,)
    per = np.array([oracles.hmm_forward(PI3, Ps[i], loglik_matrix(ys[i]))["log_evidence"] for i in range(4)])
    np.testing.assert_allclose(hb.log_prob(ys), per, atol=1e-10)
    fn = lambda P, y: mp.HMM(PI3, P, dist.Categorical(probs=jnp.asarray(E3)), num_steps=9).log_prob(y)
    np.testing.assert_allclose(jax.vmap(fn)(Ps, ys), per, atol=1e-10)
    assert hb.posterior_sample(jax.random.PRNGKey(0), ys, (2,)).shape == (2, 4, 9)
    assert hb.smooth(ys).smoothed_probs.shape == (4, 9, 3)
    assert hb.sample(jax.random.PRNGKey(0), (5,)).shape == (5, 4, 9)


def _params(theta):
    logits_pi, logits_p, mu = theta[:3], theta[3:12].reshape(3, 3), theta[12:15]
    return jax.nn.softmax(logits_pi), jax.nn.softmax(logits_p, -1), mu


@pytest.mark.parametrize("with_missing", [False, True])
def test_gradient_matches_finite_differences(with_missing):
    rng = np.random.default_rng(10)
    T = 30
    y = rng.normal(size=T) * 2
    if with_missing:
        y[[2, 3, 17]] = np.nan

    def f(theta):
        pi, P, mu = _params(theta)
        return mp.HMM(pi, P, dist.Normal(mu, 1.0), num_steps=T).log_prob(y)

    theta = jnp.asarray(rng.normal(size=15))
    g = jax.grad(f)(theta)
    assert np.all(np.isfinite(g))
    eps = 1e-6
    fd = np.array([(f(theta.at[i].add(eps)) - f(theta.at[i].add(-eps))) / (2 * eps) for i in range(15)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_jit_traces_once_across_parameter_values():
    y = jnp.asarray(np.random.default_rng(0).integers(0, 3, 20))
    traces = []

    @jax.jit
    def f(P, y):
        traces.append(1)
        return mp.HMM(PI3, P, dist.Categorical(probs=jnp.asarray(E3)), num_steps=20).log_prob(y)

    rng = np.random.default_rng(1)
    vals = [float(f(jnp.asarray(random_stochastic(rng, 3, 3)), y)) for _ in range(4)]
    assert len(traces) == 1 and len(set(vals)) == 4


def test_float32_agrees_with_float64_at_long_T():
    rng = np.random.default_rng(12)
    K, T = 3, 10_000
    P = random_stochastic(rng, K, K) * 0.3 + 0.7 * np.eye(K)
    mu = np.array([-2.0, 0.0, 2.5])
    y = rng.normal(mu[rng.integers(0, K, T)], 1.0)
    lp64 = mp.HMM(PI3, P, dist.Normal(mu, 1.0), num_steps=T).log_prob(y)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    lp32 = mp.HMM(f32(PI3), f32(P), dist.Normal(f32(mu), f32(1.0)), num_steps=T).log_prob(f32(y))
    assert lp32.dtype == jnp.float32
    assert abs(float(lp32) - float(lp64)) < 1e-4 * abs(float(lp64))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(transition_matrix=np.array([[0.5, 0.6], [0.5, 0.5]])), "transition_matrix must sum to one"),
        (dict(transition_matrix=np.array([[1.5, -0.5], [0.5, 0.5]])), "transition_matrix has negative"),
        (dict(transition_matrix=np.ones((2, 3)) / 3), "transition_matrix must be square"),
        (dict(transition_matrix=np.array([[np.nan, 1.0], [0.5, 0.5]])), "transition_matrix contains NaN"),
        (dict(initial_probs=np.array([0.2, 0.2])), "initial_probs must sum to one"),
        (dict(initial_probs=np.array([0.2, 0.3, 0.5])), "initial_probs has 3 states"),
        (dict(emission=dist.Normal(np.zeros(3), 1.0)), "emission must have its rightmost batch axis of size 2"),
        (dict(emission=np.zeros(2)), "emission must be a numpyro Distribution"),
        (dict(initial_probs="uniform"), "initial_probs must be an array or 'stationary'"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    args = dict(initial_probs=np.array([0.5, 0.5]), transition_matrix=np.eye(2), emission=dist.Normal(np.zeros(2), 1.0))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        mp.HMM(**args)


def test_bad_observations_raise():
    hmm = categorical_hmm(5)
    with pytest.raises(ValueError, match="empty sequence"):
        hmm.log_prob(np.zeros(0, int))
    with pytest.raises(ValueError, match="obs has 4 steps"):
        hmm.log_prob(np.zeros(4, int))
    with pytest.raises(ValueError, match="needs num_steps"):
        mp.HMM(PI3, P3, dist.Categorical(probs=jnp.asarray(E3))).sample(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="num_steps=3 but time-varying"):
        mp.HMM(PI3, mp.time_varying(np.stack([P3] * 4)), dist.Categorical(probs=jnp.asarray(E3)), num_steps=3)


def test_forecast_matches_matrix_powers():
    y = np.array([0, 1, 2, 2, 1])
    hmm = categorical_hmm(5)
    fc = hmm.forecast(y, 3)
    last = oracles.hmm_forward(PI3, P3, loglik_matrix(y))["filtered"][-1]
    expected = np.stack([last @ np.linalg.matrix_power(P3, h) for h in (1, 2, 3)])
    np.testing.assert_allclose(fc.state_probs, expected, atol=1e-12)
    # predictive law of y_{T+h}: mixture over states
    np.testing.assert_allclose(np.exp(fc.predictive.log_prob(jnp.array([0, 0, 0]))), expected @ E3[:, 0], atol=1e-12)
    draws = fc.predictive.sample(jax.random.PRNGKey(0), (20_000,))
    freq = np.mean(np.asarray(draws)[:, 0] == 0)
    assert abs(freq - expected[0] @ E3[:, 0]) < 4.5 * np.sqrt(0.25 / 20_000)


def test_sample_with_states_has_right_law():
    """Simulated states follow the chain: first-state frequencies match initial_probs (z-test)."""
    hmm = categorical_hmm(3)
    states, obs = hmm.sample_with_states(jax.random.PRNGKey(3), (20_000,))
    freq = np.bincount(np.asarray(states)[:, 0], minlength=3) / 20_000
    assert np.all(np.abs(freq - PI3) < 4.5 * np.sqrt(PI3 * (1 - PI3) / 20_000))
    trans = np.mean(np.asarray(states)[:, 1][np.asarray(states)[:, 0] == 0] == 0)
    assert abs(trans - P3[0, 0]) < 0.02
    emit = np.mean(np.asarray(obs)[np.asarray(states) == 1] == 1)
    assert abs(emit - E3[1, 1]) < 0.02


def test_gradient_identity_time_varying_batched_forward_mode_and_zero_entries():
    """The Fisher-identity derivative against finite differences where shapes broadcast, with
    time-varying transitions, forward mode, and transition matrices with exact zeros."""
    rng = np.random.default_rng(13)
    T = 12
    ys = rng.normal(size=(3, T)) * 2
    base = random_stochastic(rng, T - 1, 3, 3)

    def f_tv(theta):
        logits = jnp.log(jnp.asarray(base)) + theta[:9].reshape(3, 3)
        P = jax.nn.softmax(logits, -1)
        return mp.HMM(jax.nn.softmax(theta[9:12]), mp.time_varying(P), dist.Normal(jnp.array([-1.0, 0.5, 2.0]), 1.0)).log_prob(ys).sum()

    theta = jnp.asarray(rng.normal(size=12) * 0.5)
    g = jax.grad(f_tv)(theta)
    eps = 1e-6
    fd = np.array([(f_tv(theta.at[i].add(eps)) - f_tv(theta.at[i].add(-eps))) / (2 * eps) for i in range(12)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(f_tv)(theta), g, rtol=1e-10, atol=1e-10)
    # a left-to-right chain: exact zeros below the diagonal, gradient w.r.t. the raw matrix stays finite
    P = jnp.array([[0.7, 0.3, 0.0], [0.0, 0.6, 0.4], [0.0, 0.0, 1.0]])
    pi = jnp.array([1.0, 0.0, 0.0])
    mu = jnp.array([-2.0, 0.0, 2.0])
    y = np.linspace(-2.5, 2.5, T)
    gp = jax.grad(lambda P: mp.HMM(pi, P, dist.Normal(mu, 1.0), validate_args=False).log_prob(y))(P)
    assert np.all(np.isfinite(gp))
    # derivative w.r.t. a zero entry equals the finite-difference slope of log Z along that entry
    bump = lambda e: float(mp.HMM(pi, P.at[1, 0].add(e), dist.Normal(mu, 1.0), validate_args=False).log_prob(y))
    assert abs(float(gp[1, 0]) - (bump(1e-6) - bump(0.0)) / 1e-6) < 1e-4


def test_multivariate_emission_with_missing_rows_and_batch():
    """Emissions with an event dimension (MultivariateNormal per state): evidence, smoothing and
    sampling shapes, a NaN row as a missing step, and a batch of sequences."""
    rng = np.random.default_rng(14)
    K, T, d = 3, 7, 2
    means = rng.normal(size=(K, d)) * 2
    covs = np.stack([np.eye(d) * s for s in (0.5, 1.0, 2.0)])
    y = rng.normal(size=(T, d))
    y[3] = np.nan
    ll = np.stack([stats.multivariate_normal(means[k], covs[k]).logpdf(np.nan_to_num(y)) for k in range(K)], -1)
    ll[3] = 0.0
    ref = oracles.hmm_enumerate(PI3, P3, ll)
    hmm = mp.HMM(PI3, P3, dist.MultivariateNormal(jnp.asarray(means), jnp.asarray(covs)), num_steps=T)
    assert hmm.event_shape == (T, d)
    assert abs(float(hmm.log_prob(y)) - ref["log_evidence"]) < 1e-10
    np.testing.assert_allclose(hmm.smooth(y).smoothed_probs, ref["marginals"], atol=1e-10)
    assert hmm.sample(jax.random.PRNGKey(0), (4,)).shape == (4, T, d)
    ys = np.stack([y, np.nan_to_num(y)])
    assert hmm.log_prob(ys).shape == (2,) and abs(float(hmm.log_prob(ys)[0]) - ref["log_evidence"]) < 1e-10
    assert hmm.posterior_sample(jax.random.PRNGKey(1), ys, (3,)).shape == (3, 2, T)
