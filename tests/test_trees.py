"""Tree models (GaussianTree, DiscreteTree) against independent oracles (tests/oracles_tree.py):
dense multivariate-normal evidence and conditioning, Felsenstein pruning with scipy expm, brute-force
enumeration; statistical tests of posterior_sample (with a broken sampler that must fail them);
gradients against finite differences; NUTS against a quadrature posterior; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy import stats

import markovppl as mp
import oracles_tree as ot
from markovppl.backward.tree import tree_backward_filter
from markovppl.graph import EdgeKernels, from_newick, random_tree
from markovppl.guided.tree import tree_forward_guide
from markovppl.kernels import Categorical, JumpProcess, LinearGaussian
from markovppl.kernels.continuous import BrownianMotion, OrnsteinUhlenbeck, ou_transition


def rel_close(a, ref, tol):
    a, ref = np.asarray(a, float), np.asarray(ref, float)
    return np.all(np.abs(a - ref) <= tol * np.maximum(1.0, np.abs(ref)))


# ------------------------------------------------------------------------------ Gaussian set-ups
def _spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.5 * np.eye(d))


def _gaussian_case(num_leaves, kind, d, seed, m=None, internal_obs=2, missing_frac=0.15, unobserved_leaves=2):
    """A random tree, edge kernel, observation set-up and data, with the dense oracle's ingredients."""
    rng = np.random.default_rng(seed)
    tree = random_tree(num_leaves, seed=seed, mean_length=0.4)
    n, ell = tree.num_nodes, tree.branch_lengths
    sigma = _spd(rng, d)
    if kind == "bm":
        kernel = BrownianMotion(jnp.asarray(sigma))
        A = np.broadcast_to(np.eye(d), (n, d, d)).copy()
        b = np.zeros((n, d))
        Q = np.stack([np.zeros((d, d))] + [e * sigma for e in ell])
    else:
        B = np.eye(d) * rng.uniform(0.5, 1.5, d) + 0.3 * rng.normal(size=(d, d))  # non-diagonal drift
        mu = rng.normal(size=d)
        kernel = OrnsteinUhlenbeck(jnp.asarray(B), jnp.asarray(mu), jnp.asarray(sigma))
        phis, qs = ot.ou_pairs_lyapunov(B, sigma, ell)
        A = np.concatenate([np.eye(d)[None], phis])
        Q = np.concatenate([np.zeros((1, d, d)), qs])
        b = np.concatenate([np.zeros((1, d)), mu - phis @ mu])
    root_mean, root_cov = rng.normal(size=d), _spd(rng, d, 0.5)
    leaves = list(tree.leaves)
    rng.shuffle(leaves)
    observed = sorted(leaves[unobserved_leaves:]) + list(rng.choice(tree.internal[1:], internal_obs, replace=False))
    m = d if m is None else m
    k = len(observed)
    L = rng.normal(size=(m, d)) if m != d else np.eye(d)
    c = 0.1 * rng.normal(size=m)
    R = _spd(rng, m, 0.2)
    mean, cov = ot.dense_joint(tree.parent, A, b, Q, root_mean, root_cov)
    x = rng.multivariate_normal(mean.reshape(-1), cov + 1e-12 * np.eye(n * d)).reshape(n, d)
    y = x[observed] @ L.T + c + rng.multivariate_normal(np.zeros(m), R, size=k)
    y[rng.uniform(size=y.shape) < missing_frac] = np.nan
    model = mp.GaussianTree(tree, kernel, root_mean, root_cov, R, obs_matrix=L, obs_offset=c, observed=observed)
    oracle = (mean, cov, observed, y, np.broadcast_to(L, (k, m, d)), np.broadcast_to(c, (k, m)), np.broadcast_to(R, (k, m, m)))
    return model, jnp.asarray(y), oracle


@pytest.mark.smoke
def test_bm_evidence_equals_shared_path_length_mvn():
    # leaves observed with noise tau^2 I: y ~ N(root, S (x) Sigma + 1 1' (x) P0 + tau^2 I), S = shared path lengths
    tree = from_newick("(((A:0.5,B:0.5):0.7,(C:0.2,D:1.1):0.3):0.4,(E:1.3,F:0.9):0.8);")
    sigma, p0, tau2 = np.array([[1.0, 0.3], [0.3, 0.5]]), np.array([[0.2, 0.0], [0.0, 0.1]]), 0.1
    root = np.array([0.5, -1.0])
    y = np.random.default_rng(0).normal(size=(6, 2))
    model = mp.GaussianTree(tree, BrownianMotion(jnp.asarray(sigma)), root, p0, tau2 * np.eye(2))
    cov = ot.bm_leaf_cov(tree.parent, tree.lengths, tree.leaves, sigma, p0) + tau2 * np.eye(12)
    ref = stats.multivariate_normal(np.tile(root, 6), cov).logpdf(y.reshape(-1))
    assert rel_close(model.log_prob(jnp.asarray(y)), ref, 1e-12)


@pytest.mark.parametrize("kind,d,m,leaves", [("bm", 1, None, 200), ("ou", 1, None, 200), ("ou", 2, None, 120),
                                             ("ou", 3, 2, 40), ("bm", 3, None, 60)])
def test_gaussian_evidence_and_marginals_equal_dense_oracle(kind, d, m, leaves):
    model, y, (mean, cov, nodes, yy, L, c, R) = _gaussian_case(leaves, kind, d, seed=leaves + d, m=m)
    ref = ot.gaussian_evidence(mean, cov, nodes, yy, L, c, R)
    assert rel_close(model.log_prob(y), ref, 1e-9)
    post = model.smooth(y)
    pm, pc = ot.gaussian_posterior(mean, cov, nodes, yy, L, c, R)
    assert rel_close(post.log_evidence, ref, 1e-9)
    assert rel_close(post.means, pm, 1e-8) and rel_close(post.covs, pc, 1e-8)


def test_evidence_from_networkx_mixed_kernels_and_edge_kernels_equal_oracle():
    import networkx as nx

    rng = np.random.default_rng(3)
    tree = random_tree(30, seed=3)
    B, mu, S = np.array([[1.0, 0.4], [-0.2, 0.7]]), np.array([0.3, -0.1]), np.array([[0.8, 0.2], [0.2, 0.4]])
    g = nx.DiGraph()
    kinds = rng.integers(0, 3, tree.num_nodes)
    A, b, Q = [np.eye(2)], [np.zeros(2)], [np.zeros((2, 2))]
    for v in range(1, tree.num_nodes):
        ell = float(tree.lengths[v])
        if kinds[v] == 0:
            k = BrownianMotion(jnp.asarray(S))
            A.append(np.eye(2)), b.append(np.zeros(2)), Q.append(ell * S)
        elif kinds[v] == 1:
            k = OrnsteinUhlenbeck(jnp.asarray(B), jnp.asarray(mu), jnp.asarray(S))
            phi, q = (a[0] for a in ot.ou_pairs_lyapunov(B, S, [ell]))
            A.append(phi), b.append(mu - phi @ mu), Q.append(q)
        else:
            a_v, b_v, q_v = 0.9 * np.eye(2), np.array([0.1, 0.0]), 0.3 * np.eye(2)
            k = LinearGaussian(jnp.asarray(a_v), jnp.asarray(b_v), jnp.asarray(q_v))
            A.append(a_v), b.append(b_v), Q.append(q_v)
        g.add_edge(tree.names[tree.parent[v]], tree.names[v], kernel=k, length=ell)
    compiled = mp.graph.from_networkx(g)
    assert compiled.tree.names == tree.names and len(compiled.edges.kernels) == 3
    model = mp.GaussianTree(compiled.tree, compiled.edges, np.zeros(2), np.eye(2), 0.2 * np.eye(2))
    y = rng.normal(size=(30, 2))
    mean, cov = ot.dense_joint(tree.parent, np.stack(A), np.stack(b), np.stack(Q), np.zeros(2), np.eye(2))
    k = 30
    ref = ot.gaussian_evidence(mean, cov, list(tree.leaves), y, np.broadcast_to(np.eye(2), (k, 2, 2)), np.zeros((k, 2)),
                               np.broadcast_to(0.2 * np.eye(2), (k, 2, 2)))
    assert rel_close(model.log_prob(jnp.asarray(y)), ref, 1e-9)


def test_large_tree_evidence_equals_dense_oracle():
    # 1000 leaves: the level plan at a size where the dense oracle is still quick (5000 leaves: slow test)
    tree = random_tree(1000, seed=11, mean_length=0.3)
    sigma2, tau2 = 0.7, 0.05
    model = mp.GaussianTree(tree, OrnsteinUhlenbeck(jnp.eye(1) * 0.0, jnp.zeros(1), sigma2 * jnp.eye(1)), jnp.zeros(1),
                            jnp.zeros((1, 1)), tau2 * jnp.eye(1))
    y = np.random.default_rng(1).normal(size=(1000, 1))
    cov = sigma2 * ot.bm_leaf_cov(tree.parent, tree.lengths, tree.leaves, np.eye(1), np.zeros((1, 1))) + tau2 * np.eye(1000)
    ref = stats.multivariate_normal(np.zeros(1000), cov).logpdf(y[:, 0])
    assert rel_close(model.log_prob(jnp.asarray(y)), ref, 1e-9)
    assert tree.padded_work() <= 2.5 * tree.num_nodes


def test_ou_transition_matches_quadrature_for_stiff_and_long_branches():
    B = np.array([[2.0, 1.5], [-0.5, 0.3]])
    S = np.array([[1.0, 0.4], [0.4, 0.6]])
    for ell in [0.0, 1e-6, 0.01, 1.0, 7.0, 60.0]:
        phi, q = ou_transition(jnp.asarray(B), jnp.asarray(S), jnp.asarray(ell))
        phi_ref, q_ref = ot.ou_pair(B, S, ell)
        assert rel_close(phi, phi_ref, 1e-12) and rel_close(q, q_ref, 1e-10), ell
    # very long branch of a stiff OU: Q is the stationary covariance, no overflow, no cancellation
    B2 = np.array([[200.0, 5.0], [0.0, 0.5]])
    phi, q = ou_transition(jnp.asarray(B2), jnp.asarray(S), jnp.asarray(5e3))
    assert rel_close(q, scipy.linalg.solve_continuous_lyapunov(B2, S), 1e-10) and np.all(np.asarray(phi) == 0)


# ------------------------------------------------------------------------------ posterior sampling
def _z_scores(draws, mean, var):
    """z of the sample mean and of the sample variance (Gaussian draws) per coordinate."""
    n = draws.shape[0]
    z_mean = (draws.mean(0) - mean) / np.sqrt(var / n)
    z_var = (draws.var(0, ddof=1) - var) / (var * np.sqrt(2.0 / (n - 1)))
    return z_mean, z_var


def test_gaussian_posterior_sample_matches_marginals_and_broken_sampler_fails():
    model, y, (mean, cov, nodes, yy, L, c, R) = _gaussian_case(25, "ou", 2, seed=5, internal_obs=1)
    pm, pc = ot.gaussian_posterior(mean, cov, nodes, yy, L, c, R)
    var = np.diagonal(pc, axis1=-2, axis2=-1)
    draws = np.asarray(model.posterior_sample(jax.random.PRNGKey(0), y, (10_000,)))
    zm, zv = _z_scores(draws, pm, var)
    assert np.abs(zm).max() < 4.5 and np.abs(zv).max() < 4.5
    # broken: the message at one internal node ignores the leaves below it (only its own observation, if any)
    back = tree_backward_filter(model.tree, model._edge_lg(), model._node_messages(y), model._law())
    target = int(model.tree.children(0)[0])
    obs_only = model._node_messages(y)
    broken = jax.tree.map(lambda a, o: a.at[target].set(o[target]), back.messages, obs_only)
    noise = jax.random.normal(jax.random.PRNGKey(0), (10_000, model.tree.num_nodes, 2))
    bad = np.asarray(jax.jit(jax.vmap(lambda z: tree_forward_guide(model.tree, model._edge_lg(), broken, z, model._law())[0]))(noise))
    zm, zv = _z_scores(bad, pm, var)
    assert max(np.abs(zm).max(), np.abs(zv).max()) > 4.5


def test_gaussian_prior_sample_matches_dense_joint():
    model, y, (mean, cov, *_) = _gaussian_case(10, "ou", 2, seed=8)
    x, yy = model.sample_with_states(jax.random.PRNGKey(2), (10_000,))
    var = np.diagonal(cov).reshape(mean.shape)
    zm, zv = _z_scores(np.asarray(x), mean, var)
    assert np.abs(zm).max() < 4.5 and np.abs(zv).max() < 4.5
    assert yy.shape == (10_000,) + model.event_shape


# ------------------------------------------------------------------------------ discrete
def _discrete_case(num_leaves, K, seed, emission=False):
    rng = np.random.default_rng(seed)
    tree = random_tree(num_leaves, seed=seed, mean_length=0.5)
    Qg = rng.uniform(0.2, 1.5, (K, K))
    np.fill_diagonal(Qg, 0.0)
    np.fill_diagonal(Qg, -Qg.sum(1))
    pi = rng.dirichlet(np.ones(K))
    P = np.stack([np.eye(K)] + [scipy.linalg.expm(e * Qg) for e in tree.branch_lengths])
    E = rng.dirichlet(np.ones(K + 1), size=K) if emission else None
    y = rng.integers(0, K + 1 if emission else K, len(tree.leaves))
    y[rng.uniform(size=y.shape) < 0.15] = -1
    model = mp.DiscreteTree(tree, JumpProcess(jnp.asarray(Qg), None), pi, E)
    return model, jnp.asarray(y), (tree.parent, P, pi, list(tree.leaves), y, E)


@pytest.mark.smoke
@pytest.mark.parametrize("K,leaves,emission", [(2, 150, False), (4, 200, False), (3, 60, True)])
def test_discrete_evidence_equals_pruning_with_scipy_expm(K, leaves, emission):
    model, y, (parent, P, pi, nodes, yy, E) = _discrete_case(leaves, K, seed=K + leaves, emission=emission)
    assert rel_close(model.log_prob(y), ot.pruning(parent, P, pi, nodes, yy, E), 1e-10)


def test_discrete_marginals_equal_enumeration_and_categorical_edges():
    model, y, (parent, P, pi, nodes, yy, _) = _discrete_case(7, 3, seed=1)
    log_ev, marg = ot.enumerate_posterior(parent, P, pi, nodes, np.asarray(yy))
    post = model.smooth(y)
    assert rel_close(post.log_evidence, log_ev, 1e-10) and rel_close(post.probs, marg, 1e-10)
    # the same model with explicit per-edge matrices (Categorical) and as EdgeKernels in two groups
    cat = mp.DiscreteTree(model.tree, Categorical(jnp.asarray(P[1:])), pi)
    assert rel_close(cat.log_prob(y), log_ev, 1e-10)
    groups = EdgeKernels([Categorical(jnp.asarray(P[1:6])), JumpProcess(model.edges.generator, jnp.asarray(model.tree.branch_lengths[5:]))],
                         [range(0, 5), range(5, model.tree.num_edges)])
    assert rel_close(mp.DiscreteTree(model.tree, groups, pi).log_prob(y), log_ev, 1e-10)


def _chi2_pvalues(draws, probs):
    out = []
    for v in range(probs.shape[0]):
        expected = probs[v] * draws.shape[0]
        counts = np.bincount(draws[:, v], minlength=probs.shape[1])
        keep = expected > 0
        if keep.sum() < 2:
            assert np.all(counts[~keep] == 0)
            continue
        out.append(stats.chisquare(counts[keep], expected[keep] * counts[keep].sum() / expected[keep].sum()).pvalue)
    return np.asarray(out)


def test_discrete_posterior_sample_chi_square_and_broken_sampler_fails():
    model, y, (parent, P, pi, nodes, yy, _) = _discrete_case(8, 3, seed=4)
    _, marg = ot.enumerate_posterior(parent, P, pi, nodes, np.asarray(yy))
    draws = np.asarray(model.posterior_sample(jax.random.PRNGKey(1), y, (10_000,)))
    assert _chi2_pvalues(draws, marg).min() > 1e-3
    back = model._backward(y)
    target = int(model.tree.children(0)[0])
    none = jax.tree.map(lambda a: a.at[target].set(0.0), back.messages)  # ignore everything below `target`
    g = jax.random.gumbel(jax.random.PRNGKey(1), (10_000, model.tree.num_nodes, 3))
    bad = np.asarray(jax.jit(jax.vmap(lambda z: tree_forward_guide(model.tree, model._edge_cat(), none, z, model._law())[0]))(g))
    assert _chi2_pvalues(bad, marg).min() < 1e-3


# ------------------------------------------------------------------------------ gradients, jit, float32
def _fd(f, x, eps=1e-6):
    x = np.asarray(x, float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(jnp.asarray(x + e)) - f(jnp.asarray(x - e))) / (2 * eps)
    return g


def test_gradients_match_finite_differences():
    tree = random_tree(6, seed=2)
    y = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)))
    B0, S0 = np.array([[1.0, 0.3], [-0.2, 0.8]]), np.array([[0.7, 0.1], [0.1, 0.5]])

    def loglik(B, S, ell, tau):
        ou = OrnsteinUhlenbeck(B, jnp.array([0.2, -0.1]), 0.5 * (S + S.T), ell)
        return mp.GaussianTree(tree, ou, jnp.zeros(2), 0.3 * jnp.eye(2), tau * jnp.eye(2)).log_prob(y)

    args = (jnp.asarray(B0), jnp.asarray(S0), jnp.asarray(tree.branch_lengths), jnp.asarray(0.2))
    grads = jax.grad(loglik, argnums=(0, 1, 2, 3))(*args)
    loglik_jit = jax.jit(loglik)
    for i, g in enumerate(grads):
        f = lambda x, i=i: float(loglik_jit(*[x if j == i else a for j, a in enumerate(args)]))
        assert rel_close(g, _fd(f, args[i]), 1e-6), i

    model, yd, _ = _discrete_case(8, 3, seed=9)

    def disc(q_off, ell):
        q = q_off - jnp.diag(q_off.sum(1))
        return mp.DiscreteTree(model.tree, JumpProcess(q, ell), model.root_probs).log_prob(yd)

    q0 = np.abs(np.asarray(model.edges.generator)) * (1 - np.eye(3))
    ell0 = np.asarray(model.tree.branch_lengths)
    gq, gl = jax.grad(disc, argnums=(0, 1))(jnp.asarray(q0), jnp.asarray(ell0))
    disc_jit = jax.jit(disc)
    assert rel_close(gq, _fd(lambda x: float(disc_jit(x, jnp.asarray(ell0))), q0) * (1 - np.eye(3)), 1e-6)
    assert rel_close(gl, _fd(lambda x: float(disc_jit(jnp.asarray(q0), x)), ell0), 1e-6)


def test_jit_does_not_retrace_for_new_durations_and_parameters():
    tree = random_tree(40, seed=0)
    y = jnp.asarray(np.random.default_rng(0).normal(size=(40, 1)))
    traces = []

    @jax.jit
    def f(rate, ell):
        traces.append(1)
        ou = OrnsteinUhlenbeck(rate * jnp.eye(1), jnp.zeros(1), jnp.eye(1), ell)
        return mp.GaussianTree(tree, ou, jnp.zeros(1), jnp.eye(1), 0.1 * jnp.eye(1)).log_prob(y)

    vals = [f(jnp.asarray(r), jnp.asarray(tree.branch_lengths * s)) for r, s in [(0.5, 1.0), (1.0, 2.0), (2.0, 0.5)]]
    assert len(traces) == 1 and len(set(float(x) for x in vals)) == 3


def test_float32_smoke():
    model, y, (mean, cov, nodes, yy, L, c, R) = _gaussian_case(30, "ou", 2, seed=6)
    ref = ot.gaussian_evidence(mean, cov, nodes, yy, L, c, R)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    m32 = mp.GaussianTree(model.tree, jax.tree.map(f32, model.edges), f32(model.root_mean), f32(model.root_cov),
                          f32(model.obs_cov), obs_matrix=f32(model.obs_matrix), obs_offset=f32(model.obs_offset),
                          observed=model.observed)
    val = m32.log_prob(f32(y))
    assert val.dtype == jnp.float32 and rel_close(val, ref, 1e-4)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_raises_clear_errors():
    tree = from_newick("((A:1,B:1):1,C:2);")
    bm = BrownianMotion(jnp.eye(1))
    with pytest.raises(ValueError, match="duration must be non-negative"):
        mp.GaussianTree(tree, BrownianMotion(jnp.eye(1), jnp.array([1.0, -1.0, 1.0, 1.0])), jnp.zeros(1), jnp.eye(1), jnp.eye(1))
    with pytest.raises(ValueError, match="positive semi-definite"):
        mp.GaussianTree(tree, BrownianMotion(-jnp.eye(1)), jnp.zeros(1), jnp.eye(1), jnp.eye(1))
    with pytest.raises(ValueError, match="positive definite"):
        mp.GaussianTree(tree, bm, jnp.zeros(1), jnp.eye(1), jnp.zeros((1, 1)))
    with pytest.raises(ValueError, match="root_cov must have shape"):
        mp.GaussianTree(tree, bm, jnp.zeros(1), jnp.eye(2), jnp.eye(1))
    with pytest.raises(ValueError, match="no node named 'Z'"):
        mp.GaussianTree(tree, bm, jnp.zeros(1), jnp.eye(1), jnp.eye(1), observed=["A", "Z"])
    with pytest.raises(ValueError, match="value must have shape"):
        mp.GaussianTree(tree, bm, jnp.zeros(1), jnp.eye(1), jnp.eye(1)).log_prob(jnp.zeros((2, 1)))
    with pytest.raises(ValueError, match="infinite"):
        mp.GaussianTree(tree, bm, jnp.zeros(1), jnp.eye(1), jnp.eye(1)).log_prob(jnp.array([[0.0], [jnp.inf], [1.0]]))
    with pytest.raises(ValueError, match="no branch length"):
        mp.GaussianTree(from_newick("(A,B);"), bm, jnp.zeros(1), jnp.eye(1), jnp.eye(1))
    with pytest.raises(TypeError, match="markovppl.graph.Tree"):
        mp.GaussianTree("((A,B),C);", bm, jnp.zeros(1), jnp.eye(1), jnp.eye(1))
    with pytest.raises(ValueError, match="negative off-diagonal"):
        mp.DiscreteTree(tree, JumpProcess(jnp.array([[1.0, -1.0], [1.0, -1.0]]), None), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="rows summing to zero"):
        mp.DiscreteTree(tree, JumpProcess(jnp.array([[-1.0, 0.5], [1.0, -1.0]]), None), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="sum to one"):
        mp.DiscreteTree(tree, Categorical(jnp.array([[0.5, 0.6], [0.5, 0.5]])), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="must be < 2"):
        mp.DiscreteTree(tree, Categorical(jnp.eye(2)), jnp.array([0.5, 0.5])).log_prob(jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="edge kernels have 3 states"):
        mp.DiscreteTree(tree, Categorical(jnp.eye(3)), jnp.array([0.5, 0.5]))


# ------------------------------------------------------------------------------ NUTS vs quadrature
def _ou_leaf_cov(shared, depth_leaf, rate, sigma2, root_var):
    """Univariate OU covariance of leaves (closed form): Cov(x_i, x_j) = e^{-r(d_i + d_j - 2 d_m)} Var(x_m),
    d_m = shared path length (MRCA depth), Var(x_m) = e^{-2 r d_m} v0 + sigma2 (1 - e^{-2 r d_m}) / (2 r)."""
    var_m = np.exp(-2 * rate * shared) * root_var + sigma2 * (-np.expm1(-2 * rate * shared)) / (2 * rate)
    return np.exp(-rate * (depth_leaf[:, None] + depth_leaf[None, :] - 2 * shared)) * var_m


def matches_quadrature(draws, mean, sd):
    """Posterior mean within 4 Monte Carlo standard errors and sd within 10% of the quadrature values."""
    from numpyro.diagnostics import effective_sample_size

    draws = np.asarray(draws)
    mcse = draws.std() / np.sqrt(float(effective_sample_size(draws[None])))
    return abs(draws.mean() - mean) < 4 * mcse and abs(draws.std() / sd - 1) < 0.10


def _ou_rate_problem(num_leaves=200, seed=0):
    import numpyro
    import numpyro.distributions as dist

    tree = random_tree(num_leaves, seed=seed, mean_length=0.3)
    sigma2, tau2, root_var, rate_true = 1.0, 0.1, 1.0, 1.0
    shared = ot.bm_leaf_cov(tree.parent, tree.lengths, tree.leaves, np.eye(1), np.zeros((1, 1)))
    depth = np.diag(shared).copy()
    rng = np.random.default_rng(seed)
    y = rng.multivariate_normal(np.zeros(num_leaves), _ou_leaf_cov(shared, depth, rate_true, sigma2, root_var) + tau2 * np.eye(num_leaves))

    def model(y):
        log_rate = numpyro.sample("log_rate", dist.Normal(0.0, 1.0))
        ou = OrnsteinUhlenbeck(jnp.exp(log_rate)[None, None], jnp.zeros(1), sigma2 * jnp.eye(1))
        numpyro.sample("y", mp.GaussianTree(tree, ou, jnp.zeros(1), root_var * jnp.eye(1), tau2 * jnp.eye(1)), obs=y)

    def mvn_logpdf(cov):  # zero mean, by a Cholesky factor (scipy's frozen MVN does an eigendecomposition)
        chol = np.linalg.cholesky(cov)
        z = scipy.linalg.solve_triangular(chol, y, lower=True)
        return -0.5 * z @ z - np.log(np.diag(chol)).sum() - 0.5 * num_leaves * np.log(2 * np.pi)

    def quadrature(tau2):
        grid = np.linspace(-2.5, 2.5, 301)
        logpost = np.array([stats.norm.logpdf(g) + mvn_logpdf(_ou_leaf_cov(shared, depth, np.exp(g), sigma2, root_var)
                                                                + tau2 * np.eye(num_leaves)) for g in grid])
        w = np.exp(logpost - logpost.max())
        w /= w.sum()
        mean = float(np.sum(w * grid))
        return mean, float(np.sqrt(np.sum(w * (grid - mean) ** 2)))

    return model, jnp.asarray(y[:, None]), quadrature(tau2), quadrature(0.2)


def test_nuts_ou_rate_matches_quadrature_posterior():
    from numpyro.infer import MCMC, NUTS

    model, y, (mean, sd), (wrong_mean, wrong_sd) = _ou_rate_problem()
    mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), y)
    draws = mcmc.get_samples()["log_rate"]
    assert matches_quadrature(draws, mean, sd)
    # power: the same draws do not match the posterior under a nearby wrong leaf-noise variance (0.2 vs 0.1)
    assert not matches_quadrature(draws, wrong_mean, wrong_sd)


# ------------------------------------------------------------------------------ gallery models
@pytest.mark.parametrize("name,plot,var_names", [
    ("ou_tree", "tree_node_means.png", ["alpha", "theta", "sigma", "tau"]),
    ("mk_tree", "tree_state_probs.png", ["q01", "q10"]),
])
def test_tree_gallery_models_fit_through_cli(name, plot, var_names, tmp_path, capsys):
    from markovppl import cli, diagnostics
    from markovppl.modelfile import bundled_models, load_model_file

    spec = load_model_file(bundled_models()[name])
    assert spec.description and spec.var_names == var_names
    out = tmp_path / name
    assert cli.main(["fit", name, "--num-warmup", "30", "--num-samples", "20", "--chains", "1", "--no-progress",
                     "--out", str(out)]) == 0
    assert "max R-hat" in capsys.readouterr().out
    posterior = diagnostics.get_group(diagnostics.from_netcdf(out / f"{name}_idata.nc"), "posterior")
    for var in var_names:
        values = np.asarray(posterior[var])
        assert values.shape[:2] == (1, 20) and np.all(np.isfinite(values)), var
    png = out / plot
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


# ------------------------------------------------------------------------------ slow, larger versions
@pytest.mark.slow
def test_slow_gaussian_posterior_sample_200_leaves_100k_draws():
    model, y, (mean, cov, nodes, yy, L, c, R) = _gaussian_case(200, "ou", 2, seed=21)
    pm, pc = ot.gaussian_posterior(mean, cov, nodes, yy, L, c, R)
    var = np.diagonal(pc, axis1=-2, axis2=-1)
    total, s1, s2 = 0, 0.0, 0.0
    for k in range(5):
        d = np.asarray(model.posterior_sample(jax.random.PRNGKey(k), y, (20_000,))) - pm
        total, s1, s2 = total + d.shape[0], s1 + d.sum(0), s2 + (d**2).sum(0)
    m = s1 / total
    v = (s2 - total * m**2) / (total - 1)
    z_mean = m / np.sqrt(var / total)
    z_var = (v - var) / (var * np.sqrt(2.0 / (total - 1)))
    print(f"\n[slow gaussian] nodes={model.tree.num_nodes} draws={total} max|z_mean|={np.abs(z_mean).max():.2f} "
          f"max|z_var|={np.abs(z_var).max():.2f}")
    assert np.abs(z_mean).max() < 4.5 and np.abs(z_var).max() < 4.5


@pytest.mark.slow
def test_slow_discrete_posterior_sample_12_leaves_100k_draws():
    model, y, (parent, P, pi, nodes, yy, _) = _discrete_case(12, 3, seed=13)
    log_ev, marg = ot.enumerate_posterior(parent, P, pi, nodes, np.asarray(yy))
    assert rel_close(model.log_prob(y), log_ev, 1e-10)
    draws = np.concatenate([np.asarray(model.posterior_sample(jax.random.PRNGKey(k), y, (20_000,))) for k in range(5)])
    p = _chi2_pvalues(draws, marg)
    print(f"\n[slow discrete] nodes={model.tree.num_nodes} draws={draws.shape[0]} min chi2 p={p.min():.3g}")
    assert p.min() > 1e-3


@pytest.mark.slow
def test_slow_evidence_5000_leaves_equals_dense_oracle():
    tree = random_tree(5000, seed=17, mean_length=0.3)
    sigma2, tau2 = 0.7, 0.05
    model = mp.GaussianTree(tree, BrownianMotion(sigma2 * jnp.eye(1)), jnp.zeros(1), jnp.zeros((1, 1)), tau2 * jnp.eye(1))
    y = np.random.default_rng(2).normal(size=(5000, 1))
    cov = sigma2 * ot.bm_leaf_cov(tree.parent, tree.lengths, tree.leaves, np.eye(1), np.zeros((1, 1))) + tau2 * np.eye(5000)
    ref = stats.multivariate_normal(np.zeros(5000), cov).logpdf(y[:, 0])
    val = float(model.log_prob(jnp.asarray(y)))
    print(f"\n[slow 5000 leaves] log p = {val:.8f}, dense {ref:.8f}, rel diff {abs(val - ref) / abs(ref):.2e}")
    assert rel_close(val, ref, 1e-9)


# ------------------------------------------------------------------------------ ArviZ output
def test_to_inference_data_tree_sites():
    """Two tree sites in one model: latent node draws with node coordinates, sequential predictive
    terms that add up to the evidence at every draw, and latent draws that reproduce exact observations."""
    import numpyro
    import numpyro.distributions as dist

    from markovppl import diagnostics

    tree = from_newick("((A:1,B:1)x:0.5,C:1.5)r;")

    def laws(s, p):
        gauss = mp.GaussianTree(tree, BrownianMotion(s * jnp.eye(1)), jnp.zeros(1), jnp.eye(1), 0.1 * jnp.eye(1))
        disc = mp.DiscreteTree(tree, Categorical(jnp.array([[1 - p, p], [p, 1 - p]])), jnp.array([0.5, 0.5]))
        return gauss, disc

    def model(y, z):
        s = numpyro.sample("s", dist.LogNormal(0.0, 1.0))
        p = numpyro.sample("p", dist.Beta(2.0, 2.0))
        gauss, disc = laws(s, p)
        numpyro.sample("y", gauss, obs=y)
        numpyro.sample("z", disc, obs=z)

    y, z = jnp.array([[1.0], [jnp.nan], [0.3]]), jnp.array([1, 0, -1])
    mcmc = numpyro.infer.MCMC(numpyro.infer.NUTS(model), num_warmup=30, num_samples=10, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), y, z)
    idata = mp.to_inference_data(mcmc)
    latent = diagnostics.get_group(idata, "latent_posterior")
    assert latent["y"].dims == ("chain", "draw", "y_node", "state") and latent["z"].dims == ("chain", "draw", "z_node")
    assert list(latent["y"].coords["y_node"].values) == ["r", "x", "A", "B", "C"]
    zs = np.asarray(latent["z"])[0]
    assert np.all(zs[:, tree.index["A"]] == 1) and np.all(zs[:, tree.index["B"]] == 0)
    loglik = diagnostics.get_group(idata, "log_likelihood")
    post = mcmc.get_samples()
    for i in range(10):
        gauss, disc = laws(post["s"][i], post["p"][i])
        assert abs(float(np.asarray(loglik["y"])[0, i].sum() - gauss.log_prob(y))) < 1e-8
        assert abs(float(np.asarray(loglik["z"])[0, i].sum() - disc.log_prob(z))) < 1e-8
    assert np.asarray(loglik["z"])[0, :, 2].max() == 0.0      # the missing observation contributes nothing
