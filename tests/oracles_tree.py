"""Independent oracles for tree models (plain numpy/scipy, Python loops, no markovppl code).

* dense joint Gaussian of all node states (top-down recursion for means and the full covariance),
  OU transitions by ``scipy.linalg.expm`` and either numerical quadrature of the covariance integral or
  the Lyapunov solution (scipy);
* Brownian-motion covariance from shared path lengths (MRCA depths);
* Felsenstein pruning with ``scipy.linalg.expm``, and brute-force enumeration of all internal states.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.integrate
import scipy.linalg
from scipy.stats import multivariate_normal


def ou_pair(B, S, ell):
    """(e^{-B l}, int_0^l e^{-Bu} S e^{-B'u} du) by expm and adaptive quadrature."""
    B, S = np.atleast_2d(B), np.atleast_2d(S)
    phi = scipy.linalg.expm(-B * ell)
    if ell == 0:
        return phi, np.zeros_like(S)
    q, _ = scipy.integrate.quad_vec(lambda u: scipy.linalg.expm(-B * u) @ S @ scipy.linalg.expm(-B.T * u), 0.0, ell,
                                    epsabs=1e-14, epsrel=1e-13)
    return phi, 0.5 * (q + q.T)


def ou_pairs_lyapunov(B, S, ells):
    """Stacked (e^{-B l}, X - e^{-B l} X e^{-B' l}) over branch lengths ``ells``, with B X + X B' = S
    (scipy; one batched expm). Accurate unless l * |B| is tiny (then use ``ou_pair``)."""
    B, S = np.atleast_2d(B), np.atleast_2d(S)
    X = scipy.linalg.solve_continuous_lyapunov(B, S)
    phi = scipy.linalg.expm(-B[None] * np.asarray(ells, float)[:, None, None])
    q = X - phi @ X @ np.swapaxes(phi, -1, -2)
    return phi, 0.5 * (q + np.swapaxes(q, -1, -2))


def dense_joint(parent, A, b, Q, root_mean, root_cov):
    """Mean (n, d) and covariance (n*d, n*d) of all node states; node v's edge is (A[v], b[v], Q[v])
    (rows for the root ignored). ``parent`` lists parents with parent[v] < v (preorder)."""
    n, d = len(parent), len(root_mean)
    mean = np.zeros((n, d))
    cov = np.zeros((n * d, n * d))
    mean[0] = root_mean
    cov[:d, :d] = root_cov
    for v in range(1, n):
        p = parent[v]
        mean[v] = A[v] @ mean[p] + b[v]
        sv, sp = slice(v * d, (v + 1) * d), slice(p * d, (p + 1) * d)
        cov[sv, : v * d] = A[v] @ cov[sp, : v * d]
        cov[: v * d, sv] = cov[sv, : v * d].T
        cov[sv, sv] = A[v] @ cov[sp, sp] @ A[v].T + Q[v]
    return mean, cov


def bm_leaf_cov(parent, lengths, nodes, sigma, root_cov):
    """Covariance of the states at ``nodes`` under Brownian motion: shared path length (x) sigma + root cov.

    Shared path length of u, w = depth of their most recent common ancestor = total length of the edges
    into their common ancestors."""
    n = len(parent)
    anc = np.zeros((n, n), bool)  # anc[v, a]: a is v or an ancestor of v
    anc[0, 0] = True
    for v in range(1, n):
        anc[v] = anc[parent[v]]
        anc[v, v] = True
    nodes = np.asarray(nodes)
    k = len(nodes)
    a = anc[nodes].astype(float)
    shared = (a * np.asarray(lengths, float)[None, :]) @ a.T
    return np.kron(shared, sigma) + np.kron(np.ones((k, k)), root_cov)


def observe(mean, cov, nodes, y, L, c, R):
    """Joint Gaussian of the observed coordinates: returns (mu_y, S_yy, C_xy, mask) for dense conditioning.

    y: (k, m) with NaN = missing; L: (k, m, d), c: (k, m), R: (k, m, m)."""
    n, d = mean.shape
    k, m = y.shape
    G = np.zeros((k * m, n * d))
    off = np.zeros(k * m)
    Rbig = np.zeros((k * m, k * m))
    for i, v in enumerate(nodes):
        G[i * m:(i + 1) * m, v * d:(v + 1) * d] = L[i]
        off[i * m:(i + 1) * m] = c[i]
        Rbig[i * m:(i + 1) * m, i * m:(i + 1) * m] = R[i]
    mask = ~np.isnan(y.reshape(-1))
    G, off, Rbig = G[mask], off[mask], Rbig[np.ix_(mask, mask)]
    mu_y = G @ mean.reshape(-1) + off
    S = G @ cov @ G.T + Rbig
    C = cov @ G.T
    return mu_y, S, C, y.reshape(-1)[mask]


def gaussian_evidence(mean, cov, nodes, y, L, c, R):
    mu_y, S, _, yy = observe(mean, cov, nodes, y, L, c, R)
    if yy.size == 0:
        return 0.0
    return float(multivariate_normal(mu_y, S, allow_singular=False).logpdf(yy))


def gaussian_posterior(mean, cov, nodes, y, L, c, R):
    """Posterior means (n, d) and marginal covariances (n, d, d) of every node by dense conditioning."""
    n, d = mean.shape
    mu_y, S, C, yy = observe(mean, cov, nodes, y, L, c, R)
    K = np.linalg.solve(S, C.T).T
    pm = mean.reshape(-1) + K @ (yy - mu_y)
    pc = cov - K @ C.T
    covs = np.stack([pc[v * d:(v + 1) * d, v * d:(v + 1) * d] for v in range(n)])
    return pm.reshape(n, d), covs


def pruning(parent, P, root_probs, nodes, y, E=None):
    """Felsenstein pruning: P[v] is the (K, K) matrix of the edge into v; y[i] observed at nodes[i]
    (negative = missing); E optional (K, M) emission."""
    n, K = len(parent), len(root_probs)
    like = np.ones((n, K))
    for i, v in enumerate(nodes):
        if y[i] >= 0:
            like[v] *= (np.eye(K)[:, y[i]] if E is None else E[:, y[i]])
    for v in range(n - 1, 0, -1):
        like[parent[v]] *= P[v] @ like[v]
    return float(np.log(root_probs @ like[0]))


def enumerate_posterior(parent, P, root_probs, nodes, y):
    """Brute force: p(y) and posterior marginals (n, K) of every node by summing over all joint states."""
    n, K = len(parent), len(root_probs)
    obs = {v: y[i] for i, v in enumerate(nodes) if y[i] >= 0}
    marg = np.zeros((n, K))
    total = 0.0
    free = [v for v in range(n) if v not in obs]
    for states in itertools.product(range(K), repeat=len(free)):
        x = np.zeros(n, int)
        x[free] = states
        for v, s in obs.items():
            x[v] = s
        p = root_probs[x[0]]
        for v in range(1, n):
            p *= P[v][x[parent[v]], x[v]]
        total += p
        marg[np.arange(n), x] += p
    return float(np.log(total)), marg / total
