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


@pytest.mark.smoke
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


@pytest.mark.smoke
def test_bridge_reproduces_van_loan_jump_counts_and_occupation_times_and_a_broken_bridge_fails():
    n = 4000
    cases = [(Q3, 1.5, 0, 2), (Q3, 0.4, 1, 1), (np.array([[-3.0, 3.0], [0.5, -0.5]]), 2.0, 1, 0)]
    broken_z = []
    for i, (q, ell, a, b) in enumerate(cases):
        m = jb.suggest_max_jumps(q, ell)
        path = jb.sample_bridge(jax.random.PRNGKey(10 + i), q, ell, jnp.full(n, a), b, m)
        assert not bool(path.overflow.any())
        assert np.all(np.asarray(path.states)[np.arange(n), np.maximum(np.asarray(path.num_jumps) - 1, 0)][np.asarray(path.num_jumps) > 0] == b)
        assert np.all(np.diff(np.asarray(path.times), axis=-1) >= 0) and float(path.times.max()) <= ell
        z = bridge_z_scores(path, q, ell, a, b)
        assert np.max(np.abs(z)) < 4.5, z
        # the same statistics reject a bridge that draws its event count ignoring the endpoints
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
