"""Markov jump processes: the JumpProcess kernel, the MarkovJumpProcess family, endpoint-conditioned
paths and the guided CTMC, against SciPy ``expm`` oracles, Van Loan closed forms and Monte Carlo
z-tests (with deliberately broken samplers that must fail the same tests)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from markovppl.backward import pullback
from markovppl.guided import guide
from markovppl.kernels import Categorical, JumpProcess, generator_from_rates, time_varying
from markovppl.kernels.jump import check_generator, expm_generator
from markovppl.messages import categorical as cm

Q3 = np.array([[-1.0, 0.7, 0.3], [0.4, -0.9, 0.5], [0.2, 0.6, -0.8]])


def rel_err(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


def random_generator(rng, k, scale=1.0):
    return np.asarray(generator_from_rates(rng.exponential(scale, (k, k))))


# ----------------------------------------------------------------------------- kernel


@pytest.mark.smoke
def test_transition_matrix_matches_scipy_expm_including_stiff_generators():
    rng = np.random.default_rng(0)
    for k, scale, ell in [(2, 1.0, 0.3), (3, 1.0, 1.5), (5, 2.0, 0.01), (6, 1.0, 40.0)]:
        q = random_generator(rng, k, scale)
        np.testing.assert_allclose(JumpProcess(q, ell).transition_matrix(), scipy.linalg.expm(ell * q), atol=1e-13, rtol=1e-11)
    # stiff: rates over eight orders of magnitude, long duration (scaling and squaring needs ~30 squarings)
    stiff = np.array([[-1e5, 1e5, 0.0, 0.0], [1e-3, -(1e-3 + 2.0), 2.0, 0.0], [0.0, 5e4, -5e4 - 1e-2, 1e-2],
                      [3e-3, 0.0, 0.0, -3e-3]])
    for ell in [1e-6, 1e-2, 1.0, 1e3]:
        p = np.asarray(JumpProcess(stiff, ell).transition_matrix())
        assert np.all(p >= 0) and np.allclose(p.sum(-1), 1.0, atol=1e-13)
        np.testing.assert_allclose(p, scipy.linalg.expm(ell * stiff), atol=1e-13, rtol=1e-8)
    # at ell = 1e7 every row is the stationary law (an independent oracle; SciPy's Pade is 2e-6 off here)
    w, vecs = np.linalg.eig(stiff.T)
    pi = np.real(vecs[:, np.argmin(np.abs(w))])
    pi /= pi.sum()
    np.testing.assert_allclose(JumpProcess(stiff, 1e7).transition_matrix(), np.tile(pi, (4, 1)), rtol=1e-11, atol=1e-14)
    # batched durations (one per tree edge) and time-varying durations
    ells = np.array([0.1, 1.0, 3.0])
    batched = JumpProcess(Q3, ells).transition_matrix()
    tv = JumpProcess(Q3, time_varying(ells)).transition_matrix()
    for i, ell in enumerate(ells):
        np.testing.assert_allclose(batched[i], scipy.linalg.expm(ell * Q3), atol=1e-13)
        np.testing.assert_allclose(tv.value[i], scipy.linalg.expm(ell * Q3), atol=1e-13)


def test_invalid_generators_and_durations_raise_clear_errors():
    with pytest.raises(ValueError, match="negative off-diagonal"):
        JumpProcess(np.array([[0.5, -0.5], [1.0, -1.0]]), 1.0).validate()
    with pytest.raises(ValueError, match="rows summing to zero"):
        JumpProcess(np.array([[-1.0, 2.0], [1.0, -1.0]]), 1.0).validate()
    with pytest.raises(ValueError, match="square"):
        check_generator("Q", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        check_generator("Q", np.array([[np.nan, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        check_generator("Q", np.zeros(3))
    with pytest.raises(ValueError, match="duration must be non-negative"):
        JumpProcess(Q3, np.array([1.0, -0.1])).validate()
    # skipped under tracing: no error, and the computation runs
    jax.jit(lambda q: JumpProcess(q, 1.0).validate().transition_matrix())(jnp.asarray(Q3))
    np.testing.assert_allclose(generator_from_rates(np.abs(Q3)), Q3, atol=1e-15)


def test_pullback_and_guiding_rules_are_those_of_the_exponentiated_matrix():
    rng = np.random.default_rng(1)
    h = rng.uniform(0.01, 1.0, 3) * 1e-30
    msg = cm.categorical_message(np.log(h))
    out = pullback(JumpProcess(Q3, 0.7), msg)
    expected = scipy.linalg.expm(0.7 * Q3) @ h
    np.testing.assert_allclose(np.exp(cm.evaluate(out, jnp.arange(3))), expected, rtol=1e-12)
    ref = pullback(Categorical(scipy.linalg.expm(0.7 * Q3)), msg)
    np.testing.assert_allclose(out.log_h + out.log_norm, ref.log_h + ref.log_norm, atol=1e-12)
    z = jax.random.gumbel(jax.random.PRNGKey(0), (4000, 3))
    y, lw = guide(JumpProcess(Q3, 0.7), msg, jnp.zeros(4000, int), z)
    p = scipy.linalg.expm(0.7 * Q3)[0] * h
    p /= p.sum()
    freq = np.bincount(np.asarray(y), minlength=3) / 4000
    assert np.all(np.abs(freq - p) < 4.5 * np.sqrt(p * (1 - p) / 4000)) and float(jnp.abs(lw).max()) == 0.0


def test_kernel_duration_gradient_matches_finite_differences_and_does_not_retrace():
    h = jnp.array([0.2, 1.0, 0.5])
    traces = []

    @jax.jit
    def f(kernel):
        traces.append(1)
        return jnp.log(kernel.transition_matrix()[0] @ h)

    ells = [0.3, 0.9, 2.5]
    for ell in ells:
        f(JumpProcess(jnp.asarray(Q3), jnp.asarray(ell)))
    assert len(traces) == 1
    g = jax.grad(lambda k: f(k))(JumpProcess(jnp.asarray(Q3), jnp.asarray(0.9)))
    eps = 1e-6
    oracle = lambda q, ell: np.log(scipy.linalg.expm(ell * q)[0] @ np.asarray(h))
    fd_ell = (oracle(Q3, 0.9 + eps) - oracle(Q3, 0.9 - eps)) / (2 * eps)
    assert abs(float(g.duration) - fd_ell) < 1e-7 * max(1, abs(fd_ell))
    # rates enter through a generator (rows kept summing to zero), as in a NumPyro model
    rates = np.abs(Q3) * (1 - np.eye(3))
    g_rates = jax.grad(lambda r: f(JumpProcess(generator_from_rates(r), 0.9)))(jnp.asarray(rates))
    for i, j in [(0, 1), (1, 2), (2, 0)]:
        e = np.zeros_like(Q3)
        e[i, j] = eps
        q_plus, q_minus = (np.asarray(generator_from_rates(rates + d)) for d in (e, -e))
        fd_q = (oracle(q_plus, 0.9) - oracle(q_minus, 0.9)) / (2 * eps)
        assert abs(float(g_rates[i, j]) - fd_q) < 1e-7 * max(1, abs(fd_q))


def test_float32_kernel_smoke():
    q = jnp.asarray(Q3, jnp.float32)
    p = JumpProcess(q, jnp.float32(2.0)).transition_matrix()
    assert p.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(p), scipy.linalg.expm(2.0 * Q3), atol=2e-6)
    stiff = expm_generator(jnp.asarray([[-1e5, 1e5], [1e-3, -1e-3]], jnp.float32), jnp.float32(1e4))
    np.testing.assert_allclose(np.asarray(stiff), scipy.linalg.expm(1e4 * np.array([[-1e5, 1e5], [1e-3, -1e-3]])), rtol=1e-4)


# ----------------------------------------------------------------------------- endpoint-conditioned paths

from markovppl.jump import bridge as jb  # noqa: E402


def van_loan_moments(q, ell, a, b):
    """Exact E[occupation time in i | a, b] (K,) and E[number of i -> j jumps | a, b] (K, K) from the
    Van Loan integrals int_0^l e^{tQ} E_ij e^{(l-t)Q} dt = upper-right block of expm(l [[Q, E_ij], [0, Q]])."""
    k = q.shape[0]
    p_ab = scipy.linalg.expm(ell * q)[a, b]

    def integral(i, j):
        e = np.zeros((k, k))
        e[i, j] = 1.0
        big = np.block([[q, e], [np.zeros((k, k)), q]])
        return scipy.linalg.expm(ell * big)[:k, k:][a, b]

    occupation = np.array([integral(i, i) for i in range(k)]) / p_ab
    jumps = np.array([[q[i, j] * integral(i, j) if i != j else 0.0 for j in range(k)] for i in range(k)]) / p_ab
    return occupation, jumps


def bridge_z_scores(path, q, ell, a, b):
    k = q.shape[0]
    occ = np.asarray(jb.occupation_times(path, k))
    counts = np.asarray(jb.transition_counts(path, k)).reshape(len(occ), -1).astype(float)
    stats_ = np.concatenate([occ, counts, counts.sum(1, keepdims=True)], 1)
    e_occ, e_jumps = van_loan_moments(q, ell, a, b)
    expected = np.concatenate([e_occ, e_jumps.reshape(-1), [e_jumps.sum()]])
    sd = stats_.std(0) / np.sqrt(len(stats_))
    ok = sd > 0
    assert np.all(np.abs(stats_.mean(0) - expected)[~ok] < 1e-12)   # e.g. the zero diagonal of the counts
    return (stats_.mean(0)[ok] - expected[ok]) / sd[ok]


def broken_bridge(key, q, ell, a, b, max_jumps):
    """Deliberately wrong: the number of uniformised events from its *unconditional* Poisson law."""
    q = jnp.asarray(q)
    mu = float(np.max(-np.diag(q)))
    r = jnp.eye(q.shape[0]) + q / mu
    v = jnp.stack([jnp.linalg.matrix_power(r, n)[:, b] for n in range(max_jumps + 1)])

    def one(kk):
        k_n, k_t, k_z = jax.random.split(kk, 3)
        count = jnp.minimum(jax.random.poisson(k_n, mu * ell), max_jumps)
        return jb._bridge_given_count(k_t, k_z, r, v, jnp.asarray(a), jnp.asarray(b), count, jnp.asarray(ell), max_jumps)

    times, states, num = jax.vmap(one)(key)
    n = times.shape[0]
    return jb.JumpPath(jnp.full(n, a), times, states, num, jnp.zeros(n, bool), jnp.zeros(n), jnp.full(n, ell))


def test_bridge_reproduces_van_loan_jump_counts_and_occupation_times_and_a_broken_bridge_fails():
    n = 4000
    cases = [(Q3, 1.5, 0, 2), (Q3, 0.4, 1, 1), (np.array([[-3.0, 3.0], [0.5, -0.5]]), 2.0, 1, 0)]
    broken_z = []
    m = max(jb.suggest_max_jumps(q, ell) for q, ell, _, _ in cases)  # one compiled shape for all cases
    for i, (q, ell, a, b) in enumerate(cases):
        path = jb.sample_bridge(jax.random.PRNGKey(10 + i), q, ell, jnp.full(n, a), b, m)
        assert not bool(path.overflow.any())
        assert np.all(np.asarray(path.states)[np.arange(n), np.maximum(np.asarray(path.num_jumps) - 1, 0)][np.asarray(path.num_jumps) > 0] == b)
        assert np.all(np.diff(np.asarray(path.times), axis=-1) >= 0) and float(path.times.max()) <= ell
        z = bridge_z_scores(path, q, ell, a, b)
        assert np.max(np.abs(z)) < 4.5, z
        # the same statistics reject a bridge that draws its event count ignoring the endpoints
        if i == 0:
            bad = broken_bridge(jax.random.split(jax.random.PRNGKey(20 + i), n), q, ell, a, b, m)
            broken_z.append(np.max(np.abs(bridge_z_scores(bad, q, ell, a, b))))
    assert broken_z[0] > 4.5, broken_z   # a -> b != a: the count law matters most


def test_bridge_overflow_flag_stiff_generator_and_path_helpers():
    q = np.array([[-50.0, 50.0], [40.0, -40.0]])
    path = jb.sample_bridge(jax.random.PRNGKey(0), q, 1.0, jnp.zeros(200, int), 0, max_jumps=10)
    assert bool(path.overflow.all())          # ~90 events are needed on average
    m = jb.suggest_max_jumps(q, 1.0)
    path = jb.sample_bridge(jax.random.PRNGKey(1), q, 1.0, jnp.zeros(2000, int), 0, max_jumps=m)
    assert not bool(path.overflow.any())
    z = bridge_z_scores(path, q, 1.0, 0, 0)
    assert np.max(np.abs(z)) < 4.5, z
    # states at given times agree with the jump list; start/end states are the conditioned ones
    t = jnp.linspace(0.0, 1.0, 7)
    s = jb.path_state_at(path, jnp.broadcast_to(t, (2000, 7)))
    assert np.all(np.asarray(s[:, 0]) == 0) and np.all(np.asarray(s[:, -1]) == 0)
    with pytest.raises(ValueError, match="max_jumps"):
        jb.sample_bridge(jax.random.PRNGKey(0), q, 1.0, 0, 0, max_jumps=0)
    with pytest.raises(ValueError, match="negative off-diagonal"):
        jb.sample_bridge(jax.random.PRNGKey(0), -q, 1.0, 0, 0, max_jumps=5)


# ----------------------------------------------------------------------------- the MarkovJumpProcess family

import numpyro.distributions as dist  # noqa: E402
import numpyro  # noqa: E402
from scipy import stats  # noqa: E402

import oracles  # noqa: E402
from markovppl.families.mjp import MarkovJumpProcess  # noqa: E402

MEANS3 = np.array([-1.0, 0.5, 2.0])
PI3 = np.array([0.5, 0.3, 0.2])


def scipy_transitions(q, times):
    return np.stack([scipy.linalg.expm(dt * q) for dt in np.diff(times)]) if len(times) > 1 else np.zeros((0,) + q.shape)


def scipy_loglik(y, sd=0.8):
    ll = stats.norm.logpdf(np.asarray(y)[:, None], MEANS3, sd)
    return np.where(np.isnan(ll), 0.0, ll)


def scipy_mjp(pi0, q, times, y, start_time=None):
    """Forward algorithm with SciPy expm transition matrices (no JAX)."""
    pi = pi0 if start_time is None else pi0 @ scipy.linalg.expm((times[0] - start_time) * q)
    return oracles.hmm_forward(pi, scipy_transitions(q, times), scipy_loglik(y))["log_evidence"]


def irregular_data(seed=0, n=12):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(0.7, n)) + 0.3
    x = [rng.choice(3, p=PI3)]
    for dt in np.diff(times):
        x.append(rng.choice(3, p=scipy.linalg.expm(dt * Q3)[x[-1]]))
    y = rng.normal(MEANS3[np.array(x)], 0.8)
    return times, y


def mjp3(q=Q3, times=None, **kw):
    return MarkovJumpProcess(jnp.asarray(PI3), jnp.asarray(q), dist.Normal(jnp.asarray(MEANS3), 0.8), times, **kw)


@pytest.mark.smoke
def test_irregular_time_evidence_matches_scipy_expm_forward_algorithm():
    times, y = irregular_data()
    assert rel_err(mjp3(times=times).log_prob(y), scipy_mjp(PI3, Q3, times, y)) < 1e-10
    assert rel_err(mjp3(times=times, start_time=-1.3).log_prob(y), scipy_mjp(PI3, Q3, times, y, start_time=-1.3)) < 1e-10
    # missing observations (NaN and flags), repeated times, a single observation, a stiff generator
    y_miss = y.copy()
    y_miss[[2, 7]] = np.nan
    assert rel_err(mjp3(times=times).log_prob(y_miss), scipy_mjp(PI3, Q3, times, y_miss)) < 1e-10
    flags = np.zeros(len(y), bool)
    flags[[2, 7]] = True
    assert rel_err(mjp3(times=times, missing=flags).log_prob(y), scipy_mjp(PI3, Q3, times, y_miss)) < 1e-10
    t_rep = times.copy()
    t_rep[4] = t_rep[3]
    assert rel_err(mjp3(times=t_rep).log_prob(y), scipy_mjp(PI3, Q3, t_rep, y)) < 1e-10
    assert rel_err(mjp3(times=times[:1]).log_prob(y[:1]), scipy_mjp(PI3, Q3, times[:1], y[:1])) < 1e-10
    stiff = np.array([[-2e3, 2e3, 0.0], [1e-2, -1e-2 - 5.0, 5.0], [300.0, 0.0, -300.0]])
    assert rel_err(mjp3(q=stiff, times=times).log_prob(y), scipy_mjp(PI3, stiff, times, y)) < 1e-9
    # filter / smooth / Viterbi / log_predictive agree with the oracle forward-backward on the expm chain
    d = mjp3(times=times)
    fb = oracles.hmm_forward_backward(PI3, scipy_transitions(Q3, times), scipy_loglik(y))
    np.testing.assert_allclose(d.smooth(y).smoothed_probs, fb["marginals"], atol=1e-10)
    np.testing.assert_allclose(d.smooth(y).pairwise_probs, fb["pairwise"], atol=1e-10)
    np.testing.assert_allclose(d.filter(y).filtered_probs, fb["filtered"], atol=1e-10)
    np.testing.assert_allclose(d.log_predictive(y).sum(), fb["log_evidence"], rtol=1e-10)
    assert np.array_equal(d.posterior_mode(y), oracles.hmm_viterbi(PI3, scipy_transitions(Q3, times), scipy_loglik(y))["map_path"])


def test_invalid_times_and_generators_raise_clear_errors():
    times, y = irregular_data()
    with pytest.raises(ValueError, match="sorted"):
        mjp3(times=times[::-1])
    with pytest.raises(ValueError, match="empty"):
        mjp3(times=np.zeros(0))
    with pytest.raises(ValueError, match="NaN"):
        mjp3(times=np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="start_time"):
        mjp3(times=times, start_time=times[0] + 1.0)
    with pytest.raises(ValueError, match="negative off-diagonal"):
        mjp3(q=-Q3, times=times)
    with pytest.raises(ValueError, match="rows summing to zero"):
        mjp3(q=Q3 + 0.1, times=times)
    with pytest.raises(ValueError, match="steps"):
        mjp3(times=times).log_prob(y[:-1])
    with pytest.raises(ValueError, match="times_ahead"):
        mjp3(times=times).forecast(y, np.array([times[-1] - 1.0]))


def test_forecast_sampling_shapes_and_posterior_skeleton_are_consistent():
    times, y = irregular_data(1)
    d = mjp3(times=times)
    ahead = times[-1] + np.array([0.5, 2.0])
    fc = d.forecast(y, ahead)
    last = oracles.hmm_forward(PI3, scipy_transitions(Q3, times), scipy_loglik(y))["filtered"][-1]
    np.testing.assert_allclose(fc.state_probs, np.stack([last @ scipy.linalg.expm(h * Q3) for h in ahead - times[-1]]), atol=1e-12)
    states, obs = d.sample_with_states(jax.random.PRNGKey(0), (7,))
    assert states.shape == (7, len(times)) and obs.shape == (7, len(times))
    path, obs2 = d.sample_path(jax.random.PRNGKey(1), max_jumps=jb.suggest_max_jumps(Q3, np.diff(times).max()))
    assert obs2.shape == (len(times),) and not bool(path.overflow)
    # batched times: one irregular grid per subject
    t2 = np.stack([times, times * 1.5])
    batched = mjp3(times=t2)
    assert batched.batch_shape == (2,)
    np.testing.assert_allclose(batched.log_prob(np.stack([y, y])), [scipy_mjp(PI3, Q3, t, y) for t in t2], rtol=1e-10)


def _assert_paths_match_oracle(path, q, times, y, n):
    """Occupation times, jump counts and states at the observation times of ``n`` posterior paths
    against the forward-backward pairwise marginals and Van Loan bridge moments (|z| < 4.5)."""
    fb = oracles.hmm_forward_backward(PI3, scipy_transitions(q, times), scipy_loglik(y))
    e_occ, e_jumps = np.zeros(3), np.zeros((3, 3))
    for k, dt in enumerate(np.diff(times)):  # E[stat | y] = sum_{a,b} p(x_k = a, x_k+1 = b | y) E[stat | a, b]
        for a in range(3):
            for b in range(3):
                occ, jumps = van_loan_moments(q, dt, a, b)
                e_occ += fb["pairwise"][k, a, b] * occ
                e_jumps += fb["pairwise"][k, a, b] * jumps
    assert not bool(path.overflow.any())
    occ = np.asarray(jb.occupation_times(path, 3))
    np.testing.assert_allclose(occ.sum(1), times[-1] - times[0], rtol=1e-12)
    counts = np.asarray(jb.transition_counts(path, 3)).reshape(n, 9).astype(float)
    stat = np.concatenate([occ, counts[:, [1, 2, 3, 5, 6, 7]]], 1)
    expected = np.concatenate([e_occ, e_jumps.reshape(9)[[1, 2, 3, 5, 6, 7]]])
    z = (stat.mean(0) - expected) / (stat.std(0) / np.sqrt(n))
    assert np.max(np.abs(z)) < 4.5, z
    # the path passes through the posterior skeleton: states at the observation times match its law
    at_obs = np.asarray(jb.path_state_at(path, jnp.broadcast_to(jnp.asarray(times), (n, len(times)))))
    freq = np.stack([(at_obs == k).mean(0) for k in range(3)], -1)
    se = np.sqrt(fb["marginals"] * (1 - fb["marginals"]) / n) + 1e-12
    assert np.max(np.abs(freq - fb["marginals"]) / se) < 4.5


def test_posterior_paths_reproduce_exact_expected_occupation_and_jumps_given_observations():
    times, y = irregular_data(2, n=5)
    n = 3000
    path = mjp3(times=times).posterior_path(jax.random.PRNGKey(5), y, max_jumps=jb.suggest_max_jumps(Q3, np.diff(times).max()),
                                            sample_shape=(n,))
    _assert_paths_match_oracle(path, Q3, times, y, n)


def test_batched_generators_give_per_entry_evidence_and_posterior_paths():
    times, y = irregular_data(2, n=5)
    q_fast = 2.5 * Q3
    d = mjp3(q=jnp.stack([jnp.asarray(Q3), jnp.asarray(q_fast)]), times=times)
    assert d.batch_shape == (2,)
    np.testing.assert_allclose(d.log_prob(np.stack([y, y])), [scipy_mjp(PI3, q, times, y) for q in (Q3, q_fast)], rtol=1e-10)
    n = 1500
    path = d.posterior_path(jax.random.PRNGKey(6), np.stack([y, y]), max_jumps=jb.suggest_max_jumps(q_fast, np.diff(times).max()),
                            sample_shape=(n,))
    assert path.times.shape[:2] == (n, 2)
    _assert_paths_match_oracle(jax.tree.map(lambda a: a[:, 1], path), q_fast, times, y, n)
    # the entries differ: the fast generator jumps more often
    assert float(path.num_jumps[:, 1].mean()) > float(path.num_jumps[:, 0].mean()) + 0.5


def test_evidence_gradient_in_rates_and_times_matches_finite_differences_and_jit_vmap_hygiene():
    times, y = irregular_data(3, n=10)
    rates = np.abs(Q3) * (1 - np.eye(3))

    def loglik(r, t):
        return mjp3(q=generator_from_rates(r), times=t).log_prob(y)

    g_r, g_t = jax.grad(loglik, argnums=(0, 1))(jnp.asarray(rates), jnp.asarray(times))
    oracle = lambda r, t: scipy_mjp(PI3, np.asarray(generator_from_rates(r)), t, y)
    eps = 1e-6
    for i, j in [(0, 1), (0, 2), (1, 0), (2, 1)]:
        e = np.zeros((3, 3))
        e[i, j] = eps
        fd = (oracle(rates + e, times) - oracle(rates - e, times)) / (2 * eps)
        assert abs(float(g_r[i, j]) - fd) < 1e-6 * max(1.0, abs(fd)), (i, j)
    for k in [0, 4, 9]:
        e = np.zeros(len(times))
        e[k] = eps
        fd = (oracle(rates, times + e) - oracle(rates, times - e)) / (2 * eps)
        assert abs(float(g_t[k]) - fd) < 1e-6 * max(1.0, abs(fd)), k
    # one trace across parameter values; vmap over rate sets equals a loop
    traces = []

    @jax.jit
    def f(r):
        traces.append(1)
        return loglik(r, jnp.asarray(times))

    scales = [0.5, 1.0, 2.0]
    values = [float(f(jnp.asarray(rates * s))) for s in scales]
    assert len(traces) == 1
    batched = jax.vmap(lambda s: loglik(jnp.asarray(rates) * s, jnp.asarray(times)))(jnp.asarray(scales))
    np.testing.assert_allclose(batched, values, rtol=1e-12)
    np.testing.assert_allclose(values, [oracle(rates * s, times) for s in scales], rtol=1e-10)


def test_float32_mjp_smoke():
    times, y = irregular_data(4)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    d = MarkovJumpProcess(f32(PI3), f32(Q3), dist.Normal(f32(MEANS3), f32(0.8)), f32(times))
    lp = d.log_prob(f32(y))
    assert lp.dtype == jnp.float32
    assert abs(float(lp) - scipy_mjp(PI3, Q3, times, y)) < 1e-4 * max(1.0, abs(scipy_mjp(PI3, Q3, times, y)))
    path = d.posterior_path(jax.random.PRNGKey(0), f32(y), max_jumps=16)
    assert path.times.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(path.times)))


def test_nuts_jump_rate_matches_quadrature_posterior_from_scipy_oracle():
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS

    rng = np.random.default_rng(7)
    lam_true, back, n = 0.8, 0.5, 60
    times = np.cumsum(rng.exponential(0.8, n))
    q_of = lambda lam: np.array([[-lam, lam], [back, -back]])
    x = [0]
    for dt in np.diff(times):
        x.append(rng.choice(2, p=scipy.linalg.expm(dt * q_of(lam_true))[x[-1]]))
    means = np.array([0.0, 1.5])
    y = rng.normal(means[np.array(x)], 0.7)

    def model(y):
        lam = numpyro.sample("lam", dist.LogNormal(0.0, 1.0))
        q = jnp.stack([jnp.stack([-lam, lam]), jnp.array([back, -back])])
        numpyro.sample("y", MarkovJumpProcess(jnp.array([0.5, 0.5]), q, dist.Normal(jnp.asarray(means), 0.7), times), obs=y)

    def oracle_loglik(lam):
        ll = stats.norm.logpdf(y[:, None], means, 0.7)
        return oracles.hmm_forward(np.array([0.5, 0.5]), scipy_transitions(q_of(lam), times), ll)["log_evidence"]

    grid = np.linspace(0.05, 4.0, 800)
    mean, sd = oracles.grid_posterior(np.vectorize(oracle_loglik), lambda lam: stats.lognorm.logpdf(lam, 1.0), grid)
    mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=1000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(8), jnp.asarray(y))
    draws = np.asarray(mcmc.get_samples()["lam"])
    ess = float(effective_sample_size(draws[None]))
    mcse = draws.std() / np.sqrt(ess)
    assert abs(draws.mean() - mean) < 4 * mcse, (draws.mean(), mean, mcse)
    assert abs(draws.std() / sd - 1) < 0.10, (draws.std(), sd)


# ----------------------------------------------------------------------------- the guided CTMC

from markovppl.jump import guided as jg  # noqa: E402


def test_guided_ctmc_importance_sampling_matches_exact_evidence_and_ignoring_the_weight_fails():
    # the CTMC example of the BFFG research brief: exact (e^{TQ} g)[x0] = 0.288023
    g = np.array([0.05, 0.15, 0.8])
    q_aux = np.full((3, 3), 0.3) - 0.9 * np.eye(3)
    exact = (scipy.linalg.expm(1.5 * Q3) @ g)[0]
    for cells, seed in [(4, 0), (32, 1)]:  # unbiased for any grid; a finer grid only lowers the variance
        gd = jg.dense_guiding(q_aux, np.log(g), jg.guiding_grid(1.5, cells))
        est, paths = jg.guided_ctmc_evidence(jax.random.PRNGKey(seed), 0, jg.dense_rates(Q3), gd, 10_000, max_jumps=30)
        assert int(est.num_overflow) == 0
        assert abs(float(est.evidence) - exact) < 3 * float(est.standard_error), (float(est.evidence), exact)
        assert float(est.standard_error) < 0.01 * exact
        # the guided paths end where h~ points: the final state's law is tilted towards g
        h0 = float(np.exp(paths.log_h0[0]))
        assert abs(h0 - exact) > 10 * float(est.standard_error)           # so dropping the weight is detectable
        unweighted = jg.is_estimate(paths.log_h0[0], jnp.zeros_like(paths.log_weight))
        assert abs(float(unweighted.evidence) - exact) > 3 * float(est.standard_error)


def _ring_model(d, a=0.3, c=0.8, b=1.0):
    """d binary sites on a ring; site i switches on at rate a + c * (number of neighbours on), off at rate b."""

    def rates_fn(x):
        nbrs = jnp.roll(x, 1) + jnp.roll(x, -1)
        targets = jnp.where(jnp.eye(d, dtype=bool), 1 - x[None, :], x[None, :])
        return targets, jnp.where(x == 0, a + c * nbrs, b)

    return rates_fn


def _ring_dense_generator(d, a, c, b):
    """Dense oracle of the ring: all 2^d states, their index and the (2^d, 2^d) generator."""
    states = np.array(np.meshgrid(*[[0, 1]] * d, indexing="ij")).reshape(d, -1).T
    index = {tuple(s): i for i, s in enumerate(states)}
    Q = np.zeros((2**d, 2**d))
    for i, s in enumerate(states):
        for site in range(d):
            t = s.copy()
            t[site] = 1 - s[site]
            nb = s[(site - 1) % d] + s[(site + 1) % d]
            Q[i, index[tuple(t)]] = a + c * nb if s[site] == 0 else b
    return states, index, Q - np.diag(Q.sum(1))


def test_guided_ctmc_with_a_product_auxiliary_on_an_interacting_system_matches_the_dense_oracle():
    d, a, c, b, T = 6, 0.3, 0.8, 1.0, 1.0
    rng = np.random.default_rng(3)
    obs = rng.integers(0, 2, d)
    log_g = np.log(np.where(np.arange(2)[None, :] == obs[:, None], 0.8, 0.2))  # (d, 2)
    x0 = np.array([1, 0, 0, 1, 1, 0])
    states, index, Q = _ring_dense_generator(d, a, c, b)   # dense oracle on the 2^d states
    g = np.exp(log_g[np.arange(d), states].sum(1))
    exact = (scipy.linalg.expm(T * Q) @ g)[index[tuple(x0)]]
    # auxiliary: independent sites, each with one neighbour on (a mean-field guess)
    q_site = np.array([[-(a + c), a + c], [b, -b]])
    pg = jg.product_guiding(q_site, log_g, jg.guiding_grid(T, 16))
    est, _ = jg.guided_ctmc_evidence(jax.random.PRNGKey(4), x0, _ring_model(d, a, c, b), pg, 10_000, max_jumps=40)
    assert int(est.num_overflow) == 0
    assert abs(float(est.evidence) - exact) < 3 * float(est.standard_error), (float(est.evidence), exact)
    assert float(est.standard_error) < 0.02 * exact


def test_guided_ctmc_with_observations_at_several_times_matches_the_forward_algorithm():
    # noisy observations at irregular times: exact p(y | x0) by the forward algorithm with scipy expm
    times = np.array([0.3, 0.5, 1.2, 1.6])
    emit = np.array([[0.7, 0.2, 0.1], [0.15, 0.7, 0.15], [0.1, 0.2, 0.7]])
    ys = np.array([1, 1, 2, 0])
    alpha, prev = np.eye(3)[0], 0.0
    for t, y in zip(times, ys):
        alpha = (alpha @ scipy.linalg.expm((t - prev) * Q3)) * emit[:, y]
        prev = t
    exact = alpha.sum()
    log_g = np.log(emit[:, ys].T)                        # (n, K)
    gd = jg.dense_guiding_times(np.full((3, 3), 0.3) - 0.9 * np.eye(3), times, log_g, 8)
    est, paths = jg.guided_ctmc_evidence(jax.random.PRNGKey(11), 0, jg.dense_rates(Q3), gd, 10_000, max_jumps=40)
    assert int(est.num_overflow) == 0
    assert abs(float(est.evidence) - exact) < 3 * float(est.standard_error), (float(est.evidence), exact)
    assert float(est.standard_error) < 0.02 * exact
    # the weight is what makes it right: h~(0, x0) alone (unit weights) is off by many standard errors
    unweighted = jg.is_estimate(paths.log_h0[0], jnp.zeros_like(paths.log_weight))
    assert abs(float(unweighted.evidence) - exact) > 5 * float(est.standard_error)
    # product auxiliary on the interacting ring, two observation times, dense 2^d oracle
    d, a, c, b = 5, 0.3, 0.8, 1.0
    rng = np.random.default_rng(5)
    obs = rng.integers(0, 2, (2, d))
    log_gp = np.log(np.where(np.arange(2)[None, None, :] == obs[:, :, None], 0.8, 0.2))   # (n, d, 2)
    x0 = np.array([1, 0, 0, 1, 0])
    states, index, Q = _ring_dense_generator(d, a, c, b)
    tp = np.array([0.4, 1.0])
    alpha, prev = np.eye(2**d)[index[tuple(x0)]], 0.0
    for t, lg in zip(tp, log_gp):
        alpha = (alpha @ scipy.linalg.expm((t - prev) * Q)) * np.exp(lg[np.arange(d), states].sum(1))
        prev = t
    pg = jg.product_guiding_times(np.array([[-(a + c), a + c], [b, -b]]), tp, log_gp, 8)
    est, _ = jg.guided_ctmc_evidence(jax.random.PRNGKey(12), x0, _ring_model(d, a, c, b), pg, 10_000, max_jumps=40)
    assert int(est.num_overflow) == 0
    assert abs(float(est.evidence) - alpha.sum()) < 3 * float(est.standard_error), (float(est.evidence), alpha.sum())
    with pytest.raises(ValueError, match="strictly increasing"):
        jg.dense_guiding_times(Q3, np.array([0.5, 0.3]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="after start"):
        jg.dense_guiding_times(Q3, np.array([0.0, 0.3]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="one row per observation time"):
        jg.product_guiding_times(Q3, np.array([0.5]), np.zeros((2, 4, 3)))


def test_guided_ctmc_rejects_zero_likelihoods_and_flags_overflow():
    with pytest.raises(ValueError, match="g > 0"):
        jg.dense_guiding(Q3, np.array([-np.inf, np.log(0.5), np.log(0.5)]), jg.guiding_grid(1.0, 4))
    with pytest.raises(ValueError, match="negative off-diagonal"):
        jg.product_guiding(-Q3, np.zeros((2, 3)), jg.guiding_grid(1.0, 4))
    gd = jg.dense_guiding(Q3, np.log(np.array([0.2, 0.3, 0.5])), jg.guiding_grid(1.0, 4))
    out = jg.guided_ctmc_path(jax.random.PRNGKey(0), 0, jg.dense_rates(100 * Q3), gd, max_jumps=3)
    assert bool(out.path.overflow)


@pytest.mark.slow
def test_full_size_bridge_and_guided_ctmc_checks():
    """Larger versions of the bridge z-tests (10^5 bridges per case) and of the guided-CTMC estimate
    (10^5 paths); results recorded in docs/jump_processes.md."""
    n = 100_000
    cases = [(Q3, 1.5, 0, 2), (Q3, 0.4, 1, 1), (np.array([[-3.0, 3.0], [0.5, -0.5]]), 2.0, 1, 0)]
    m = max(jb.suggest_max_jumps(q, ell) for q, ell, _, _ in cases)
    for i, (q, ell, a, b) in enumerate(cases):
        path = jb.sample_bridge(jax.random.PRNGKey(100 + i), q, ell, jnp.full(n, a), b, m)
        z = bridge_z_scores(path, q, ell, a, b)
        print(f"bridge case {i}: max |z| = {np.max(np.abs(z)):.2f} over {len(z)} statistics")
        assert np.max(np.abs(z)) < 4.5
    g = np.array([0.05, 0.15, 0.8])
    exact = (scipy.linalg.expm(1.5 * Q3) @ g)[0]
    gd = jg.dense_guiding(np.full((3, 3), 0.3) - 0.9 * np.eye(3), np.log(g), jg.guiding_grid(1.5, 32))
    est, _ = jg.guided_ctmc_evidence(jax.random.PRNGKey(7), 0, jg.dense_rates(Q3), gd, n, max_jumps=30)
    print(f"guided CTMC: {float(est.evidence):.6f} +- {float(est.standard_error):.6f} (exact {exact:.6f}), ESS {float(est.ess):.0f}")
    assert abs(float(est.evidence) - exact) < 3 * float(est.standard_error)
