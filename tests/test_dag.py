"""DAGs with guided join nodes (markovppl.graph.dag, markovppl.families.dag) against independent oracles:
the dense joint Gaussian of a linear-Gaussian DAG and brute-force enumeration of a finite-state DAG.
Guided importance sampling must be unbiased for the evidence (within 3 standard errors), exact when the
guiding function factorises the joint message, and its self-normalised draws must match the posterior
moments; dropping the weights must fail the same check."""

import itertools

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from scipy import stats

from markovppl.families.dag import GuidedDAG
from markovppl.graph import from_networkx
from markovppl.graph.dag import anchored_guide, dag_from_networkx
from markovppl.kernels import Categorical, LinearGaussian
from markovppl.kernels.continuous import BrownianMotion

D = 2


# ------------------------------------------------------------------------------ Gaussian DAG
def _gaussian_graph(a_mix, anchors, obs_var=0.3):
    """r -> a, b (Brownian edges); c = A1 a + A2 b + noise (join); c -> d, e; a -> f.  Observed: f, d, e
    (e only in its first coordinate), c."""
    rng = np.random.default_rng(3)
    sigma = np.array([[1.0, 0.3], [0.3, 0.6]])
    q_c = np.array([[0.4, 0.1], [0.1, 0.5]])
    a1, a2 = a_mix
    lengths = {("r", "a"): 0.7, ("r", "b"): 1.3, ("c", "d"): 0.5, ("c", "e"): 0.9, ("a", "f"): 0.4}
    g = nx.DiGraph()
    for (u, w), ell in lengths.items():
        g.add_edge(u, w, kernel=BrownianMotion(jnp.asarray(sigma)), length=ell)
    g.add_edges_from([("a", "c"), ("b", "c")])
    b_c = np.array([0.2, -0.1])
    g.nodes["c"].update(kernel=LinearGaussian(jnp.asarray(np.hstack([a1, a2])), jnp.asarray(b_c), jnp.asarray(q_c)),
                        guide=anchored_guide(jnp.asarray(anchors)), parents=("a", "b"))
    obs = LinearGaussian(jnp.eye(D), jnp.zeros(D), obs_var * jnp.eye(D))
    for name in ("f", "d", "e", "c"):
        g.nodes[name]["obs"] = obs
    y = {name: rng.normal(size=D) for name in ("f", "d", "e", "c")}
    y["e"][1] = np.nan
    spec = dict(sigma=sigma, q_c=q_c, a1=a1, a2=a2, b_c=b_c, lengths=lengths, obs_var=obs_var)
    return g, y, spec


def _dense(names, spec, root_cov):
    """Joint mean and covariance of all node states (order ``names``) by x = (I - A)^{-1}(b + eps)."""
    n = len(names)
    ix = {name: i for i, name in enumerate(names)}
    big_a = np.zeros((n * D, n * D))
    b = np.zeros(n * D)
    cov_e = np.zeros((n * D, n * D))

    def blk(name):
        return slice(ix[name] * D, ix[name] * D + D)

    cov_e[blk("r"), blk("r")] = root_cov
    for (u, w), ell in spec["lengths"].items():
        big_a[blk(w), blk(u)] = np.eye(D)
        cov_e[blk(w), blk(w)] = ell * spec["sigma"]
    big_a[blk("c"), blk("a")] = spec["a1"]
    big_a[blk("c"), blk("b")] = spec["a2"]
    b[blk("c")] = spec["b_c"]
    cov_e[blk("c"), blk("c")] = spec["q_c"]
    inv = np.linalg.inv(np.eye(n * D) - big_a)
    return inv @ b, inv @ cov_e @ inv.T, blk


def _gaussian_oracle(names, y, spec, observed):
    mean, cov, blk = _dense(names, spec, np.eye(D))
    rows, vals = [], []
    for name in observed:
        for k in range(D):
            if not np.isnan(y[name][k]):
                rows.append(blk(name).start + k)
                vals.append(y[name][k])
    rows, vals = np.array(rows), np.array(vals)
    s_oo = cov[np.ix_(rows, rows)] + spec["obs_var"] * np.eye(len(rows))
    log_ev = stats.multivariate_normal(mean[rows], s_oo).logpdf(vals)
    gain = cov[:, rows] @ np.linalg.inv(s_oo)
    post_mean = mean + gain @ (vals - mean[rows])
    post_cov = cov - gain @ cov[rows, :]
    return log_ev, post_mean, post_cov


def _gaussian_model(a_mix, anchors):
    g, y, spec = _gaussian_graph(a_mix, anchors)
    dag = dag_from_networkx(g)
    model = GuidedDAG(dag, root_mean=jnp.zeros(D), root_cov=jnp.eye(D))
    value = jnp.asarray(np.stack([y[name] for name in dag.observed]))
    return model, value, _gaussian_oracle(dag.names, y, spec, dag.observed)


MIX = (np.array([[0.6, 0.1], [0.0, 0.5]]), np.array([[0.3, 0.0], [0.2, 0.4]]))


def test_gaussian_dag_importance_sampling_is_unbiased():
    model, value, (log_ev, _, _) = _gaussian_model(MIX, np.zeros((2, D)))
    est = jax.jit(lambda m, y: m.log_evidence(jax.random.PRNGKey(1), y, 20000))(model, value)
    z = (float(est.log_evidence) - log_ev) / float(est.std_error)
    assert abs(z) < 3, (float(est.log_evidence), log_ev, float(est.std_error))
    assert float(est.std_error) > 1e-4          # the guide is not exact here: the weights do vary
    # a guiding function whose messages are wrong only makes the weights noisier, never biased
    bad = _gaussian_model(MIX, np.full((2, D), 3.0))[0]
    est_bad = bad.log_evidence(jax.random.PRNGKey(2), value, 20000)
    assert abs(float(est_bad.log_evidence) - log_ev) < 3 * float(est_bad.std_error)
    assert float(est_bad.ess) < float(est.ess)


def test_gaussian_dag_exact_guide_has_constant_weights_and_exact_draws():
    """With A2 = 0 the join depends on a only, anchored guiding factorises exactly: the weights are
    constant, the estimate equals the dense evidence and the draws are exact posterior draws."""
    mix = (MIX[0], np.zeros((D, D)))
    model, value, (log_ev, post_mean, post_cov) = _gaussian_model(mix, np.zeros((2, D)))
    states, lw = jax.jit(lambda m, y: m.guided_sample(jax.random.PRNGKey(4), y, 10000))(model, value)
    assert float(jnp.std(lw)) < 1e-10
    back = model.backward(value)
    assert abs(float(back.log_evidence + lw[0]) - log_ev) < 1e-9 * max(1.0, abs(log_ev))
    x = np.asarray(states).reshape(states.shape[0], -1)
    sd = np.sqrt(np.diag(post_cov))
    z_mean = (x.mean(0) - post_mean) / (sd / np.sqrt(len(x)))
    z_var = (x.var(0) - sd**2) / (sd**2 * np.sqrt(2.0 / len(x)))
    assert np.abs(z_mean).max() < 4.5 and np.abs(z_var).max() < 4.5


def test_gaussian_dag_weighted_draws_match_posterior_and_unweighted_fail():
    model, value, (_, post_mean, post_cov) = _gaussian_model(MIX, np.zeros((2, D)))
    states, lw = model.guided_sample(jax.random.PRNGKey(5), value, 40000)
    w = np.exp(np.asarray(lw) - np.max(lw))
    w /= w.sum()
    ess = 1.0 / np.sum(w**2)
    x = np.asarray(states).reshape(states.shape[0], -1)
    sd = np.sqrt(np.diag(post_cov))
    z = (w @ x - post_mean) / (sd / np.sqrt(ess))
    assert np.abs(z).max() < 4.5, np.abs(z).max()
    # the same draws without their weights are not posterior draws: the check must reject them
    z_unweighted = (x.mean(0) - post_mean) / (sd / np.sqrt(len(x)))
    assert np.abs(z_unweighted).max() > 4.5


def test_gaussian_dag_gradient_matches_finite_differences_and_jits():
    g, y, _ = _gaussian_graph(MIX, np.zeros((2, D)))
    dag = dag_from_networkx(g)
    value = jnp.asarray(np.stack([y[name] for name in dag.observed]))
    noise = jax.random.normal(jax.random.PRNGKey(0), (len(dag.names), D))

    model = GuidedDAG(dag, root_mean=jnp.zeros(D), root_cov=jnp.eye(D))
    (comps, obs, joins, root), aux = model.tree_flatten()

    @jax.jit
    def loglik(scale):
        scaled = (joins[0]._replace(A=scale * joins[0].A),)
        return GuidedDAG.tree_unflatten(aux, (comps, obs, scaled, root)).guided_log_likelihood(value, noise)

    grad = jax.grad(loglik)(1.0)
    h = 1e-5
    fd = (loglik(1.0 + h) - loglik(1.0 - h)) / (2 * h)
    assert abs(float(grad) - float(fd)) < 1e-6 * max(1.0, abs(float(fd)))
    assert np.isfinite(float(grad)) and abs(float(grad)) > 1e-3


# ------------------------------------------------------------------------------ finite-state DAG
K = 3


def _discrete_graph(anchor):
    """r -> a, b, and a -> e; c = f(a, b) (join); c -> d; e = join of (c, a) too.  Observed: d, e, b
    (through a noisy emission)."""
    rng = np.random.default_rng(7)

    def stoch(rows):
        p = rng.uniform(0.2, 1.0, size=(rows, K)) ** 2
        return p / p.sum(1, keepdims=True)

    p_ra, p_rb, p_cd = stoch(K), stoch(K), stoch(K)
    p_c, p_e = stoch(K * K), stoch(K * K)
    emit = stoch(K)
    g = nx.DiGraph()
    g.add_edge("r", "a", kernel=Categorical(jnp.asarray(p_ra)))
    g.add_edge("r", "b", kernel=Categorical(jnp.asarray(p_rb)))
    g.add_edge("c", "d", kernel=Categorical(jnp.asarray(p_cd)))
    g.add_edges_from([("a", "c"), ("b", "c"), ("c", "e"), ("a", "e")])
    g.nodes["c"].update(kernel=Categorical(jnp.asarray(p_c)), guide=anchored_guide(jnp.asarray(anchor)), parents=("a", "b"))
    g.nodes["e"].update(kernel=Categorical(jnp.asarray(p_e)), guide=anchored_guide(jnp.asarray(anchor)), parents=("c", "a"))
    for name in ("d", "e", "b"):
        g.nodes[name]["obs"] = Categorical(jnp.asarray(emit))
    cpts = dict(a=(("r",), p_ra), b=(("r",), p_rb), d=(("c",), p_cd), c=(("a", "b"), p_c), e=(("c", "a"), p_e))
    return g, cpts, emit


def _enumerate(names, cpts, emit, prior, observed, y):
    """Evidence and posterior marginals by summing over all K^n joint states."""
    n = len(names)
    ix = {name: i for i, name in enumerate(names)}
    ev = 0.0
    marg = np.zeros((n, K))
    for x in itertools.product(range(K), repeat=n):
        p = prior[x[ix["r"]]]
        for node, (parents, table) in cpts.items():
            row = 0
            for par in parents:
                row = row * K + x[ix[par]]
            p *= table[row, x[ix[node]]]
        for name, obs in zip(observed, y):
            if obs >= 0:
                p *= emit[x[ix[name]], obs]
        ev += p
        marg[np.arange(n), x] += p
    return np.log(ev), marg / ev


@pytest.mark.smoke
def test_discrete_dag_evidence_and_marginals_against_enumeration():
    g, cpts, emit = _discrete_graph(np.array([0, 0]))
    dag = dag_from_networkx(g)
    prior = np.array([0.5, 0.3, 0.2])
    model = GuidedDAG(dag, root_probs=jnp.asarray(prior))
    y = np.array([{"d": 2, "e": 0, "b": 1}[name] for name in dag.observed])
    log_ev, marg = _enumerate(dag.names, cpts, emit, prior, dag.observed, y)
    states, lw = jax.jit(lambda m, v: m.guided_sample(jax.random.PRNGKey(0), v, 40000))(model, jnp.asarray(y))
    back = model.backward(jnp.asarray(y))
    from markovppl.families.dag import importance_estimate
    est = importance_estimate(back.log_evidence, lw)
    assert abs(float(est.log_evidence) - log_ev) < 3 * float(est.std_error), (float(est.log_evidence), log_ev)
    assert float(est.std_error) > 1e-4
    w = np.exp(np.asarray(lw) - np.max(lw))
    w /= w.sum()
    ess = 1.0 / np.sum(w**2)
    x = np.asarray(states)
    for i in range(len(dag.names)):
        p_hat = np.array([w[x[:, i] == k].sum() for k in range(K)])
        se = np.sqrt(marg[i] * (1 - marg[i]) / ess) + 1e-12
        assert np.all(np.abs(p_hat - marg[i]) < 4.5 * se + 1e-9), (dag.names[i], p_hat, marg[i])
    # unweighted guided draws are biased at the join nodes: the same check rejects them
    worst = 0.0
    for i in range(len(dag.names)):
        p_raw = np.array([(x[:, i] == k).mean() for k in range(K)])
        worst = max(worst, np.max(np.abs(p_raw - marg[i]) / np.sqrt(marg[i] * (1 - marg[i]) / len(x))))
    assert worst > 4.5


def test_discrete_dag_forward_simulation_matches_enumerated_prior():
    g, cpts, emit = _discrete_graph(np.array([0, 0]))
    dag = dag_from_networkx(g)
    prior = np.array([0.5, 0.3, 0.2])
    model = GuidedDAG(dag, root_probs=jnp.asarray(prior))
    states, ys = model.sample_with_states(jax.random.PRNGKey(3), 20000)
    _, marg = _enumerate(dag.names, cpts, emit, prior, dag.observed, np.full(len(dag.observed), -1))
    x = np.asarray(states)
    for i in range(len(dag.names)):
        counts = np.bincount(x[:, i], minlength=K)
        assert stats.chisquare(counts, marg[i] * len(x)).pvalue > 1e-3
    assert ys.shape == (20000, len(dag.observed))


# ------------------------------------------------------------------------------ bad input
def test_dag_errors():
    g = nx.DiGraph([("r", "a"), ("r", "b"), ("a", "c"), ("b", "c")])
    for u, w in (("r", "a"), ("r", "b")):
        g.edges[u, w]["kernel"] = Categorical(jnp.eye(2))
    with pytest.raises(ValueError, match="several parents|has 2 parents"):
        from_networkx(g)
    with pytest.raises(ValueError, match="'guide' function"):
        dag_from_networkx(g)
    g.nodes["c"].update(kernel=Categorical(jnp.full((4, 2), 0.5)), guide=anchored_guide(jnp.array([0, 0])))
    g.edges["a", "c"]["kernel"] = Categorical(jnp.eye(2))
    with pytest.raises(ValueError, match="carries a kernel"):
        dag_from_networkx(g)
    del g.edges["a", "c"]["kernel"]
    g.nodes["c"]["parents"] = ("a", "x")
    with pytest.raises(ValueError, match="does not list its parents"):
        dag_from_networkx(g)
    g.nodes["c"]["parents"] = ("b", "a")
    dag = dag_from_networkx(g)
    assert dag.joins[0].parents == ("b", "a")
    with pytest.raises(ValueError, match="no node of the DAG has an 'obs'"):
        GuidedDAG(dag, root_probs=jnp.array([0.5, 0.5]))
    g.nodes["c"]["obs"] = Categorical(jnp.eye(2))
    dag = dag_from_networkx(g)
    with pytest.raises(ValueError, match="either root_mean"):
        GuidedDAG(dag)
    g.nodes["c"]["kernel"] = Categorical(jnp.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="joint kernel must map"):
        GuidedDAG(dag_from_networkx(g), root_probs=jnp.array([0.5, 0.5]))
    g.nodes["c"].update(kernel=Categorical(jnp.full((4, 2), 0.5)), guide=lambda joint: (joint,))
    model = GuidedDAG(dag_from_networkx(g), root_probs=jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="returned 1 messages for 2 parents"):
        model.backward(jnp.array([1]))
    g2 = nx.DiGraph([("r", "a"), ("b", "a")])
    with pytest.raises(ValueError, match="exactly one root"):
        dag_from_networkx(g2)
    g3 = nx.DiGraph([("r", "a"), ("a", "b"), ("b", "a")])
    with pytest.raises(ValueError, match="cycle"):
        dag_from_networkx(g3)


def test_float32_dag_runs():
    model, value, (log_ev, _, _) = _gaussian_model(MIX, np.zeros((2, D), np.float32))
    m32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), model)
    est = jax.jit(lambda m, y: m.log_evidence(jax.random.PRNGKey(1), y, 4000))(m32, value.astype(jnp.float32))
    assert est.log_evidence.dtype == jnp.float32
    assert abs(float(est.log_evidence) - log_ev) < 4 * float(est.std_error) + 1e-3
