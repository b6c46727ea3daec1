"""Interacting particle systems (SIR contact process): the factorised-auxiliary BFFG of markovppl.ips
against an independent 27-state joint chain (3 individuals) built in NumPy: exact forward-algorithm
evidence, forward-backward smoothing marginals, and the joint transition law. Statistical checks use
fixed seeds; the chi-square check of the exact-auxiliary sampler is also run on a deliberately broken
sampler (messages off by one step), which must fail it."""

import itertools

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from scipy import stats

from markovppl import ips

# ----------------------------------------------------------------------------- independent oracle

STATES = np.array(list(itertools.product(range(3), repeat=3)))  # (27, 3): joint state a <-> (x0, x1, x2)


def individual_matrix(lam, mu, nu, tau, xi, count):
    """The 3x3 SIR matrix at infected-neighbour count `count`, written out from the model definition."""
    stay_s = xi * np.exp(-lam * tau * count)
    return np.array([
        [stay_s, 1.0 - stay_s, 0.0],
        [0.0, np.exp(-mu * tau), 1.0 - np.exp(-mu * tau)],
        [1.0 - np.exp(-nu * tau), 0.0, np.exp(-nu * tau)],
    ])


def joint_transition(graph, lam, mu, nu, tau, xi):
    """27x27 joint transition matrix: each individual moves given the infected count of the current state."""
    nodes = list(graph.nodes)
    adj = nx.to_numpy_array(graph, nodelist=nodes)
    P = np.ones((27, 27))
    for a, x in enumerate(STATES):
        counts = adj @ (x == 1)
        for b, y in enumerate(STATES):
            for i in range(3):
                P[a, b] *= individual_matrix(lam, mu, nu, tau, xi, counts[i])[x[i], y[i]]
    return P


def joint_initial(pi0):
    return np.array([np.prod([pi0[i][x[i]] for i in range(3)]) for x in STATES])


def joint_likelihoods(times, states, emission, num_steps):
    """g_t(a) for every step t (1 where unobserved)."""
    g = np.ones((num_steps + 1, 27))
    for t, y in zip(times, states):
        for a, x in enumerate(STATES):
            g[t, a] = np.prod([emission[x[i], y[i]] if y[i] >= 0 else 1.0 for i in range(3)])
    return g


def forward_backward(P, pi, g):
    """Evidence and smoothing marginals p(x_t = a | y) by the scaled forward-backward algorithm."""
    T1 = g.shape[0]
    alpha, c = np.zeros((T1, 27)), np.zeros(T1)
    a = pi * g[0]
    for t in range(T1):
        if t:
            a = (alpha[t - 1] @ P) * g[t]
        c[t] = a.sum()
        alpha[t] = a / c[t]
    beta = np.ones((T1, 27))
    for t in range(T1 - 2, -1, -1):
        beta[t] = P @ (g[t + 1] * beta[t + 1]) / c[t + 1]
    smooth = alpha * beta
    return np.log(c).sum(), smooth / smooth.sum(1, keepdims=True)


# ----------------------------------------------------------------------------- settings

TRIANGLE = nx.cycle_graph(3)
PATH = nx.path_graph(3)
PI0 = np.array([[0.7, 0.3, 0.0], [0.9, 0.1, 0.0], [0.5, 0.3, 0.2]])
RATES = dict(infection=2.5, recovery=0.6, waning=0.3)
TAU, XI = 0.25, 0.95
NUM_STEPS = 12
NOISY = np.array([[0.85, 0.15], [0.25, 0.75], [0.8, 0.2]])  # p(report "not infected" / "infected" | S, I, R)
CONFUSED = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.15, 0.05, 0.8]])  # misreported states

# every setting has 4 observation times and a 3-column emission, so compiled functions are shared across tests
HARD = dict(times=[0, 4, 8, 12], states=[[0, 1, 0], [1, 1, 0], [1, 2, 1], [2, 0, 1]], emission=None)
PARTIAL = dict(times=[2, 5, 9, 12], states=[[1, -1, 2], [-1, 1, 1], [0, 2, -1], [1, -1, 1]], emission=CONFUSED)
TEST_RESULTS = dict(times=[2, 5, 9, 12], states=[[1, -1, 0], [-1, 1, 1], [0, 0, -1], [1, -1, 1]], emission=NOISY)


NUM_PATHS = 8000  # importance-sampling paths (one size for all tests: the compiled sampler is reused)
NUM_DRAWS = 6000  # guided draws for the chi-square and telescoping checks

# compiled once per shape and reused across tests (parameters are array leaves)
draws_of = jax.jit(jax.vmap(ips.guided_draw, (None, None, 0)))
telescoped_of = jax.jit(jax.vmap(ips.telescoped_log_weight, (None, None, None, 0)))
filter_of = jax.jit(ips.backward_filter)


def build(graph, setting, rates=RATES, dtype=None):
    model = ips.contact_process(graph, **rates, initial_probs=PI0, step=TAU, xi=XI)
    data = ips.observations(setting["times"], setting["states"], NUM_STEPS, emission=setting["emission"], dtype=dtype)
    return model, data


def exact(graph, setting, rates=RATES):
    P = joint_transition(graph, rates["infection"], rates["recovery"], rates["waning"], TAU, XI)
    emission = np.eye(3) if setting["emission"] is None else setting["emission"]
    g = joint_likelihoods(setting["times"], np.asarray(setting["states"]), emission, NUM_STEPS)
    return forward_backward(P, joint_initial(PI0), g)


# ----------------------------------------------------------------------------- evidence

@pytest.mark.smoke
@pytest.mark.parametrize("setting", [HARD, PARTIAL], ids=["hard-full", "noisy-partial"])
def test_guided_evidence_matches_27_state_forward_algorithm(setting):
    model, data = build(TRIANGLE, setting)
    log_z, _ = exact(TRIANGLE, setting)
    est = ips.importance_evidence(jax.random.PRNGKey(3), model, data, NUM_PATHS)
    z_hat, se = np.exp(float(est.log_evidence) - log_z), np.exp(float(est.log_standard_error) - log_z)
    assert abs(z_hat - 1.0) < 3 * se, (z_hat, se)
    # power: the relative standard error is small, and the weights do correct something (P~ != P) ...
    assert se < 0.03
    assert float(jnp.std(est.log_weights)) > 0.05
    # ... so broken estimators fail the same 3-SE check: the weights dropped (the auxiliary evidence
    # alone), or the weights inverted (a sign error in log w)
    log_root = float(filter_of(model, data).log_root)
    assert abs(np.exp(log_root - log_z) - 1.0) > 4 * se
    flipped = ips.summarize_log_weights(2 * log_root - est.log_weights)
    z_bad, se_bad = np.exp(float(flipped.log_evidence) - log_z), np.exp(float(flipped.log_standard_error) - log_z)
    assert abs(z_bad - 1.0) > 6 * se_bad


def test_unguided_evidence_is_consistent_but_less_efficient():
    model, data = build(TRIANGLE, PARTIAL)
    log_z, _ = exact(TRIANGLE, PARTIAL)
    guided = ips.importance_evidence(jax.random.PRNGKey(5), model, data, NUM_PATHS)
    forward = ips.importance_evidence(jax.random.PRNGKey(5), model, data, NUM_PATHS, guided=False)
    z_hat, se = np.exp(float(forward.log_evidence) - log_z), np.exp(float(forward.log_standard_error) - log_z)
    assert abs(z_hat - 1.0) < 3 * se
    assert float(guided.ess) > 3 * float(forward.ess)


def test_guided_paths_respect_hard_observations_exactly():
    model, data = build(PATH, HARD)
    out = ips.guided_sample(jax.random.PRNGKey(0), model, data, 4000)
    paths = np.asarray(out.paths)
    for t, y in zip(HARD["times"], HARD["states"]):
        assert (paths[:, t] == np.asarray(y)).all()
    assert np.isfinite(np.asarray(out.log_weights)).all()
    # partial hard observations: only the observed entries are pinned, the missing ones vary
    data = ips.observations([2, 4, 9, 12], [[-1, -1, -1], [1, -1, 0], [-1, -1, -1], [-1, 2, -1]], NUM_STEPS)
    paths = np.asarray(ips.guided_sample(jax.random.PRNGKey(1), model, data, 4000).paths)
    assert (paths[:, 4, 0] == 1).all() and (paths[:, 4, 2] == 0).all() and (paths[:, 12, 1] == 2).all()
    assert len(np.unique(paths[:, 4, 1])) > 1


@pytest.mark.parametrize("setting", [HARD, PARTIAL], ids=["hard-full", "noisy-partial"])
def test_telescoped_weight_equals_per_step_weight(setting):
    model, data = build(TRIANGLE, setting)
    filt = filter_of(model, data)
    z = jax.random.normal(jax.random.PRNGKey(7), (NUM_DRAWS,) + ips.noise_shape(model, data))
    draws = draws_of(model, filt, z)
    tele = telescoped_of(model, filt, data, draws.path)
    per_step = draws.step_log_weights.sum(-1)
    assert float(jnp.std(per_step)) > 0.05  # P~ != P: the identity is not trivially 0 = 0
    np.testing.assert_allclose(tele, per_step, atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- exact auxiliary

def chi_square_pvalues(paths, marginals, num=None):
    """Per-(time, individual) chi-square p-values of guided marginals against exact ones (dropping empty cells)."""
    n = paths.shape[0]
    out = []
    for t in range(paths.shape[1]):
        for i in range(3):
            p = np.array([marginals[t][STATES[:, i] == k].sum() for k in range(3)])
            counts = np.bincount(paths[:, t, i], minlength=3)
            keep = p > 1e-12
            assert counts[~keep].sum() == 0  # never a state of zero posterior probability
            if keep.sum() > 1:
                out.append(stats.chisquare(counts[keep], n * p[keep] / p[keep].sum()).pvalue)
    return np.array(out)


@pytest.mark.parametrize("graph,rates", [
    (nx.empty_graph(3), RATES),                                   # no edges: N_i = 0 = N~_i
    (TRIANGLE, dict(RATES, infection=0.0)),                       # edges but lambda = 0: no coupling
], ids=["edgeless", "lambda0"])
def test_exact_auxiliary_gives_zero_weights_and_exact_posterior_draws(graph, rates):
    model, data = build(graph, PARTIAL, rates)
    log_z, marginals = exact(graph, PARTIAL, rates)
    filt = filter_of(model, data)
    np.testing.assert_allclose(float(filt.log_root), log_z, atol=1e-10)
    z = jax.random.normal(jax.random.PRNGKey(11), (NUM_DRAWS,) + ips.noise_shape(model, data))
    draws = draws_of(model, filt, z)
    assert float(jnp.max(jnp.abs(draws.step_log_weights))) < 1e-12
    pvals = chi_square_pvalues(np.asarray(draws.path), marginals)
    # Bonferroni over the (time, individual) cells: family-wise false-alarm probability 1e-3
    assert pvals.min() > 1e-3 / len(pvals), pvals.min()
    # broken sampler: guiding by h~_t instead of h~_{t+1} (messages off by one step) must fail the same test
    shifted = filt.messages._replace(log_h=jnp.concatenate([filt.messages.log_h[:1], filt.messages.log_h[:-1]], 0))
    broken = draws_of(model, filt._replace(messages=shifted), z)
    assert chi_square_pvalues(np.asarray(broken.path), marginals).min() < 1e-8


def test_forward_simulator_matches_joint_chain():
    model, _ = build(TRIANGLE, HARD)
    P = joint_transition(TRIANGLE, RATES["infection"], RATES["recovery"], RATES["waning"], TAU, XI)
    paths = np.asarray(ips.simulate(jax.random.PRNGKey(2), model, 4, num_samples=20000))
    idx = paths[:, 4] @ np.array([9, 3, 1])
    p = joint_initial(PI0) @ np.linalg.matrix_power(P, 4)
    counts = np.bincount(idx, minlength=27)
    assert counts[p == 0].sum() == 0  # impossible joint states are never visited
    keep = p * len(idx) > 5
    pooled = ~keep & (p > 0)  # rare states pooled into one cell
    expected = np.append(p[keep], p[pooled].sum()) * len(idx) if pooled.any() else p[keep] * len(idx)
    observed = np.append(counts[keep], counts[pooled].sum()) if pooled.any() else counts[keep]
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # coupling matters: the same test against the lambda = 0 chain rejects the simulator
    p0 = joint_initial(PI0) @ np.linalg.matrix_power(joint_transition(TRIANGLE, 0.0, 0.6, 0.3, TAU, XI), 4)
    assert stats.chisquare(np.bincount(idx, minlength=27)[p0 > 0], p0[p0 > 0] * len(idx)).pvalue < 1e-8


# ----------------------------------------------------------------------------- centred moves

def test_path_log_prob_matches_joint_chain():
    model, data = build(TRIANGLE, PARTIAL)
    P = joint_transition(TRIANGLE, RATES["infection"], RATES["recovery"], RATES["waning"], TAU, XI)
    pi = joint_initial(PI0)
    z = jax.random.normal(jax.random.PRNGKey(4), (NUM_DRAWS,) + ips.noise_shape(model, data))
    paths = draws_of(model, filter_of(model, data), z).path[:50]  # guided paths: any path of positive probability
    got = jax.jit(jax.vmap(ips.path_log_prob, (None, 0)))(model, paths)
    for x, value in zip(np.asarray(paths), np.asarray(got)):
        idx = x @ np.array([9, 3, 1])
        expected = np.log(pi[idx[0]]) + np.log(P[idx[:-1], idx[1:]]).sum()
        np.testing.assert_allclose(value, expected, atol=1e-12)


def test_innovations_for_path_reproduce_the_path_and_are_standard_normal():
    model, data = build(TRIANGLE, PARTIAL)
    filt = filter_of(model, data)
    z = jax.random.normal(jax.random.PRNGKey(8), (NUM_DRAWS,) + ips.noise_shape(model, data))
    paths = draws_of(model, filt, z).path
    keys = jax.random.split(jax.random.PRNGKey(9), NUM_DRAWS)
    redraw = jax.jit(jax.vmap(ips.innovations_for_path, (0, None, None, 0)))
    z_new = redraw(keys, model, filt, paths)
    assert (np.asarray(draws_of(model, filt, z_new).path) == np.asarray(paths)).all()
    # x ~ guided law and z | x ~ N(0, I) restricted to the preimage of x  =>  z ~ N(0, I) exactly
    assert stats.kstest(np.asarray(z_new).ravel(), "norm").pvalue > 1e-3
    assert float(jnp.max(jnp.abs(z_new - z))) > 0.5  # a fresh draw, not the old innovations
    lo, hi = jax.vmap(ips.innovation_intervals, (None, None, 0))(model, filt, paths)
    u = jax.scipy.special.ndtr(z_new)
    assert bool(jnp.all((u > lo - 1e-12) & (u <= hi + 1e-12)))
    # broken: the midpoint of each interval also reproduces every path, but is not the conditional law
    z_mid = jax.scipy.special.ndtri(0.5 * (lo + hi))
    assert (np.asarray(draws_of(model, filt, z_mid).path) == np.asarray(paths)).all()
    assert stats.kstest(np.asarray(z_mid).ravel(), "norm").pvalue < 1e-8


# ----------------------------------------------------------------------------- JAX transformations

def test_jit_vmap_grad_over_parameters_and_noise():
    model, data = build(TRIANGLE, PARTIAL)
    z = jax.random.normal(jax.random.PRNGKey(0), (4,) + ips.noise_shape(model, data))

    def lw(lam, noise):
        return ips.log_weight(model._replace(infection=lam), data, noise)

    one = jax.jit(lw)  # one compile serves every (lambda, noise) below: parameters are array leaves
    lams = jnp.array([0.5, 1.0, 2.5, 4.0])
    loop = np.array([float(one(lam, zi)) for lam, zi in zip(lams, z)])
    np.testing.assert_allclose(jax.jit(jax.vmap(lw))(lams, z), loop, atol=1e-12)  # vmap over parameters and noise
    loop_z = np.array([float(one(jnp.asarray(2.5), zi)) for zi in z])
    assert float(np.std(loop_z)) > 0  # different noise, different paths and weights
    # at fixed noise the path is locally constant in lambda: the gradient matches central differences
    g = float(jax.jit(jax.grad(lw))(jnp.asarray(2.5), z[0]))
    eps = 1e-6
    fd = (float(one(jnp.asarray(2.5 + eps), z[0])) - float(one(jnp.asarray(2.5 - eps), z[0]))) / (2 * eps)
    assert np.isfinite(g) and abs(g - fd) <= 1e-5 * max(1.0, abs(fd))


@pytest.mark.smoke
def test_float32_runs_and_agrees_with_float64():
    # also the one correctness check with a non-square emission (an infected / not-infected test, M = 2)
    model64, data64 = build(TRIANGLE, TEST_RESULTS)
    model32 = ips.contact_process(TRIANGLE, *(jnp.float32(RATES[k]) for k in ("infection", "recovery", "waning")),
                                  initial_probs=jnp.asarray(PI0, jnp.float32), step=jnp.float32(TAU),
                                  xi=jnp.float32(XI))
    data32 = ips.observations(TEST_RESULTS["times"], TEST_RESULTS["states"], NUM_STEPS, emission=NOISY,
                              dtype=jnp.float32)
    f32 = filter_of(model32, data32)
    assert f32.messages.log_h.dtype == jnp.float32
    np.testing.assert_allclose(float(f32.log_root), float(filter_of(model64, data64).log_root), rtol=1e-5)
    est = ips.importance_evidence(jax.random.PRNGKey(3), model32, data32, 2000)
    assert est.log_weights.dtype == jnp.float32 and np.isfinite(np.asarray(est.log_weights)).all()
    log_z, _ = exact(TRIANGLE, TEST_RESULTS)
    assert abs(np.exp(float(est.log_evidence) - log_z) - 1.0) < 3 * np.exp(float(est.log_standard_error) - log_z)


# ----------------------------------------------------------------------------- bad input

def test_bad_input_raises_clear_errors():
    pi = [0.9, 0.1, 0.0]
    for kwargs, msg in [
        (dict(infection=-1.0), "infection must be a non-negative rate"),
        (dict(recovery=np.nan), "recovery contains NaN"),
        (dict(xi=1.2), "xi must lie in"),
        (dict(xi=0.0), "xi must lie in"),
        (dict(step=0.0), "step must be positive"),
        (dict(initial_probs=[0.9, 0.2, 0.0]), "initial_probs must sum to one"),
        (dict(initial_probs=[1.2, -0.2, 0.0]), "negative probabilities"),
        (dict(initial_probs=np.full((4, 3), 1 / 3)), r"initial_probs must have shape \(3, 3\)"),
    ]:
        args = dict(infection=1.0, recovery=0.5, waning=0.1, initial_probs=pi, step=0.1, xi=0.99)
        args.update(kwargs)
        with pytest.raises(ValueError, match=msg):
            ips.contact_process(PATH, **args)
    g = nx.path_graph(3)
    g.add_edge(1, 1)
    for bad, msg in [(g, "self-loops"), (nx.MultiGraph(PATH), "multigraph"), (nx.Graph(), "no nodes"),
                     ([[0, 1]], "networkx Graph")]:
        with pytest.raises(ValueError, match=msg):
            ips.contact_graph(bad)
    for (times, states, kw), msg in [
        (([3, 1], [[0, 0, 0]] * 2, {}), "strictly increasing"),
        (([1, 1], [[0, 0, 0]] * 2, {}), "strictly increasing"),
        (([-1], [[0, 0, 0]], {}), r"must lie in \[0, num_steps"),
        (([13], [[0, 0, 0]], {}), r"must lie in \[0, num_steps"),
        (([], np.zeros((0, 3), int), {}), "non-empty"),
        (([1.5], [[0, 0, 0]], {}), "integer steps"),
        (([1], [[0, 3, 0]], {}), "codes in -1..2"),
        (([1], [[0, -2, 0]], {}), "codes in -1..2"),
        (([1], [[0, 1.5, 0]], {}), "integer codes"),
        (([1, 2], [[0, 0, 0]], {}), r"shape \(len\(times\), n\)"),
        (([1], [[0, 2, 0]], dict(emission=NOISY)), "codes in -1..1"),
        (([1], [[0, 1, 0]], dict(emission=NOISY[:, ::-1] * [1.0, 1.1])), "sum to one"),
        (([1], [[0, 1, 0]], dict(emission=np.eye(3)[:2])), r"shape \(3, M\)"),
        (([1], [[0, 1, 0]], dict(emission=np.array([[1.0, 0], [1, 0], [1, 0]]))), "column of zeros"),
    ]:
        with pytest.raises(ValueError, match=msg):
            ips.observations(times, states, NUM_STEPS, **kw)
    model = ips.contact_process(PATH, 1.0, 0.5, 0.1, initial_probs=pi)
    with pytest.raises(ValueError, match="observations are for 4 individuals"):
        ips.backward_filter(model, ips.observations([1], [[0, 0, 0, 0]], NUM_STEPS))
    data = ips.observations([1], [[0, 0, 0]], NUM_STEPS)
    with pytest.raises(ValueError, match=r"counts must have shape \(T, n\)"):
        ips.backward_filter(model, data, counts=jnp.zeros((NUM_STEPS + 1, 3)))
    with pytest.raises(ValueError, match="num_steps must be non-negative"):
        ips.simulate(jax.random.PRNGKey(0), model, -1)


# ----------------------------------------------------------------------------- NumPyro pCN Gibbs (slow)

@pytest.mark.slow
def test_pcn_random_walk_gibbs_recovers_the_exact_grid_posterior():
    """NumPyro model in the innovation form, sampled by markovppl.infer.pcn.pcn_random_walk; the posterior
    of lambda must match the grid posterior from the exact 27-state evidence within 4 MC standard errors,
    and the chain with the weights dropped (the auxiliary likelihood alone) must not."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC

    from markovppl.infer.pcn import pcn_random_walk

    model0, data = build(TRIANGLE, PARTIAL)
    shape = ips.noise_shape(model0, data)
    grid = np.linspace(0.005, 80.0, 4000)
    log_post = np.array([exact(TRIANGLE, PARTIAL, dict(RATES, infection=g))[0] for g in grid]) - 0.2 * grid
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    grid_mean = float((w * grid).sum())

    def run(weighted):
        def npmodel():
            lam = numpyro.sample("lam", dist.Exponential(0.2))
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand(shape).to_event(2))
            m = model0._replace(infection=lam)
            if weighted:
                numpyro.factor("bffg", ips.log_weight(m, data, z))
            else:
                numpyro.factor("bffg", ips.backward_filter(m, data).log_root + 0.0 * jnp.sum(z))

        mcmc = MCMC(pcn_random_walk(npmodel, ["z"], rho=0.9), num_warmup=1000, num_samples=4000, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0))
        lam = np.asarray(mcmc.get_samples()["lam"])
        return lam.mean(), lam.std() / np.sqrt(float(effective_sample_size(lam[None])))

    mean, se = run(True)
    assert abs(mean - grid_mean) < 4 * se, (mean, se, grid_mean)
    bad_mean, bad_se = run(False)
    print(f"grid mean {grid_mean:.3f}; pCN chain {mean:.3f} +- {se:.3f}; weights dropped {bad_mean:.3f} +- {bad_se:.3f}")
    assert abs(bad_mean - grid_mean) > 4 * bad_se, (bad_mean, bad_se, grid_mean)
