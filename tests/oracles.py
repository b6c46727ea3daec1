"""Independent reference implementations ("oracles") for markovppl tests.

Everything here is plain NumPy / SciPy in float64 -- deliberately *no JAX* --
so that the library's JAX code can be checked against code that shares none
of its implementation.  Clarity is preferred over speed: plain Python loops
over time are used throughout.  The oracles are also cross-checked against
each other in ``tests/test_oracles.py`` (enumeration vs. forward-backward,
Kalman vs. dense joint Gaussian, ...).

Conventions
-----------
Finite-state HMM
    Observations y_0..y_{T-1}.  ``initial_probs`` (K,) is the law of x_0, the
    state at the FIRST observation.  ``transition`` is (K, K) or time-varying
    (T-1, K, K), where ``transition[t][i, j] = p(x_{t+1}=j | x_t=i)``.  The
    emission model enters only through ``loglik`` (T, K) with
    ``loglik[t, k] = log p(y_t | x_t = k)`` (a missing step is a row of 0s).

Linear-Gaussian state-space model
    x_0 ~ N(m0, P0);  x_t = A x_{t-1} + b + N(0, Q);
    y_t = H x_t + c + N(0, R) for t = 0..T-1 (observation at t=0 included).
    ``y`` has shape (T, m); NaN entries are missing coordinates (a full NaN
    row is a missing step).  Partial missingness is handled by selecting the
    observed rows of H, c and R.
"""

import itertools

import numpy as np
import scipy.linalg
import scipy.special
import scipy.stats

__all__ = [
    "hmm_enumerate",
    "hmm_forward",
    "hmm_forward_backward",
    "hmm_viterbi",
    "hmm_stationary",
    "kalman_filter",
    "rts_smoother",
    "lgssm_dense",
    "lgssm_simulate",
    "grid_posterior",
    "grid_posterior_2d",
]

_LOG_2PI = np.log(2.0 * np.pi)


# ---------------------------------------------------------------------------
# Finite-state HMM
# ---------------------------------------------------------------------------


def _hmm_inputs(initial_probs, transition, loglik):
    pi0 = np.asarray(initial_probs, dtype=np.float64)
    P = np.asarray(transition, dtype=np.float64)
    ll = np.asarray(loglik, dtype=np.float64)
    if ll.ndim != 2:
        raise ValueError("loglik must have shape (T, K)")
    T, K = ll.shape
    if pi0.shape != (K,):
        raise ValueError("initial_probs must have shape (K,)")
    if P.ndim == 2:
        if P.shape != (K, K):
            raise ValueError("transition must have shape (K, K) or (T-1, K, K)")
    elif P.ndim == 3:
        if P.shape != (T - 1, K, K):
            raise ValueError("time-varying transition must have shape (T-1, K, K)")
    else:
        raise ValueError("transition must have shape (K, K) or (T-1, K, K)")
    return pi0, P, ll, T, K


def _trans_at(P, t):
    """Transition matrix mapping x_t -> x_{t+1}."""
    return P if P.ndim == 2 else P[t]


def _safe_log(a):
    with np.errstate(divide="ignore"):
        return np.log(a)


def hmm_enumerate(initial_probs, transition, loglik):
    """Brute-force enumeration over all K**T state paths.

    Returns dict with ``log_evidence``, ``marginals`` (T,K), ``pairwise``
    (T-1,K,K) = p(x_t=i, x_{t+1}=j | y), ``map_path`` (T,) int and
    ``map_log_joint`` = log p(x_map, y).
    """
    pi0, P, ll, T, K = _hmm_inputs(initial_probs, transition, loglik)
    if K**T > 2e6:
        raise ValueError(f"K**T = {K**T} paths is too many to enumerate")
    log_pi0 = _safe_log(pi0)
    log_P = _safe_log(P)

    paths = np.array(list(itertools.product(range(K), repeat=T)), dtype=np.int64)
    paths = paths.reshape(-1, T)
    # log p(x_{0:T-1}, y_{0:T-1}) for each path
    log_joint = log_pi0[paths[:, 0]] + ll[0, paths[:, 0]]
    for t in range(1, T):
        log_joint = (
            log_joint
            + _trans_at(log_P, t - 1)[paths[:, t - 1], paths[:, t]]
            + ll[t, paths[:, t]]
        )

    log_evidence = scipy.special.logsumexp(log_joint)
    w = np.exp(log_joint - log_evidence)  # posterior path probabilities

    marginals = np.zeros((T, K))
    for t in range(T):
        np.add.at(marginals[t], paths[:, t], w)
    pairwise = np.zeros((max(T - 1, 0), K, K))
    for t in range(T - 1):
        np.add.at(pairwise[t], (paths[:, t], paths[:, t + 1]), w)

    best = int(np.argmax(log_joint))
    return {
        "log_evidence": float(log_evidence),
        "marginals": marginals,
        "pairwise": pairwise,
        "map_path": paths[best].copy(),
        "map_log_joint": float(log_joint[best]),
    }


def hmm_forward(initial_probs, transition, loglik):
    """Scaled forward algorithm (normalised at every step).

    Returns dict with ``log_evidence``, ``filtered`` (T,K) = p(x_t | y_{0:t}),
    ``predicted`` (T,K) = p(x_t | y_{0:t-1}) (row 0 is ``initial_probs``) and
    ``log_predictive`` (T,) = log p(y_t | y_{0:t-1}).
    """
    pi0, P, ll, T, K = _hmm_inputs(initial_probs, transition, loglik)
    filtered = np.zeros((T, K))
    predicted = np.zeros((T, K))
    log_predictive = np.zeros(T)

    pred = pi0.copy()
    for t in range(T):
        predicted[t] = pred
        mx = np.max(ll[t])
        unnorm = pred * np.exp(ll[t] - mx)
        s = unnorm.sum()
        log_predictive[t] = np.log(s) + mx
        filtered[t] = unnorm / s
        if t < T - 1:
            pred = filtered[t] @ _trans_at(P, t)

    return {
        "log_evidence": float(np.sum(log_predictive)),
        "filtered": filtered,
        "predicted": predicted,
        "log_predictive": log_predictive,
    }


def hmm_forward_backward(initial_probs, transition, loglik):
    """Forward filter + scaled backward recursion.

    Returns dict with ``marginals`` (T,K) = p(x_t | y), ``pairwise``
    (T-1,K,K) = p(x_t=i, x_{t+1}=j | y), ``log_evidence`` and ``filtered``.
    """
    pi0, P, ll, T, K = _hmm_inputs(initial_probs, transition, loglik)
    fwd = hmm_forward(pi0, P, ll)
    filtered = fwd["filtered"]

    # beta_t(i) proportional to p(y_{t+1:T-1} | x_t = i); rescaled each step.
    betas = np.zeros((T, K))
    betas[T - 1] = 1.0
    for t in range(T - 2, -1, -1):
        lik_next = np.exp(ll[t + 1] - np.max(ll[t + 1]))
        b = _trans_at(P, t) @ (lik_next * betas[t + 1])
        betas[t] = b / b.sum()

    marginals = filtered * betas
    marginals /= marginals.sum(axis=1, keepdims=True)

    pairwise = np.zeros((max(T - 1, 0), K, K))
    for t in range(T - 1):
        lik_next = np.exp(ll[t + 1] - np.max(ll[t + 1]))
        xi = filtered[t][:, None] * _trans_at(P, t) * (lik_next * betas[t + 1])[None, :]
        pairwise[t] = xi / xi.sum()

    return {
        "log_evidence": fwd["log_evidence"],
        "marginals": marginals,
        "pairwise": pairwise,
        "filtered": filtered,
    }


def hmm_viterbi(initial_probs, transition, loglik):
    """Log-space Viterbi.

    Returns dict with ``map_path`` (T,) int and ``map_log_joint`` = log p(x_map, y).
    """
    pi0, P, ll, T, K = _hmm_inputs(initial_probs, transition, loglik)
    log_P = _safe_log(P)
    delta = _safe_log(pi0) + ll[0]
    backptr = np.zeros((T, K), dtype=np.int64)
    for t in range(1, T):
        scores = delta[:, None] + _trans_at(log_P, t - 1)  # [i, j]
        backptr[t] = np.argmax(scores, axis=0)
        delta = scores[backptr[t], np.arange(K)] + ll[t]
    path = np.zeros(T, dtype=np.int64)
    path[T - 1] = int(np.argmax(delta))
    for t in range(T - 1, 0, -1):
        path[t - 1] = backptr[t, path[t]]
    return {"map_path": path, "map_log_joint": float(np.max(delta))}


def hmm_stationary(transition):
    """Stationary distribution pi with pi @ P = pi (left eigenvector for eigenvalue 1)."""
    P = np.asarray(transition, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError("transition must be a square (K, K) matrix")
    evals, evecs = np.linalg.eig(P.T)
    i = int(np.argmin(np.abs(evals - 1.0)))
    v = np.real(evecs[:, i])
    v = v / v.sum()
    return v


# ---------------------------------------------------------------------------
# Linear-Gaussian state-space model
# ---------------------------------------------------------------------------


def _lgssm_inputs(m0, P0, A, b, Q, H, c, R, y):
    m0 = np.atleast_1d(np.asarray(m0, dtype=np.float64))
    d = m0.shape[0]
    P0 = np.asarray(P0, dtype=np.float64).reshape(d, d)
    A = np.asarray(A, dtype=np.float64).reshape(d, d)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), (d,)).copy()
    Q = np.asarray(Q, dtype=np.float64).reshape(d, d)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    T, m = y.shape
    H = np.asarray(H, dtype=np.float64).reshape(m, d)
    c = np.broadcast_to(np.asarray(c, dtype=np.float64), (m,)).copy()
    R = np.asarray(R, dtype=np.float64).reshape(m, m)
    return m0, P0, A, b, Q, H, c, R, y, T, d, m


def _sym(M):
    return 0.5 * (M + M.T)


def kalman_filter(m0, P0, A, b, Q, H, c, R, y):
    """Kalman filter with NaN-aware (partial) missingness and Joseph-form update.

    Returns dict with ``log_evidence``, ``filtered_means`` (T,d),
    ``filtered_covs`` (T,d,d), ``predicted_means`` (T,d), ``predicted_covs``
    (T,d,d) (row 0 is (m0, P0)) and ``log_predictive`` (T,) (0 for fully
    missing steps).
    """
    m0, P0, A, b, Q, H, c, R, y, T, d, m = _lgssm_inputs(m0, P0, A, b, Q, H, c, R, y)
    fm = np.zeros((T, d))
    fP = np.zeros((T, d, d))
    pm = np.zeros((T, d))
    pP = np.zeros((T, d, d))
    log_pred = np.zeros(T)
    I = np.eye(d)

    mean, cov = m0.copy(), P0.copy()
    for t in range(T):
        pm[t], pP[t] = mean, cov
        obs = ~np.isnan(y[t])
        if np.any(obs):
            Ho = H[obs]
            co = c[obs]
            Ro = R[np.ix_(obs, obs)]
            v = y[t, obs] - Ho @ mean - co
            S = _sym(Ho @ cov @ Ho.T + Ro)
            cho = scipy.linalg.cho_factor(S, lower=True)
            # Kalman gain K = cov Ho^T S^{-1}  (S symmetric)
            K = scipy.linalg.cho_solve(cho, Ho @ cov).T
            logdet = 2.0 * np.sum(np.log(np.diag(cho[0])))
            maha = v @ scipy.linalg.cho_solve(cho, v)
            log_pred[t] = -0.5 * (maha + logdet + obs.sum() * _LOG_2PI)
            mean = mean + K @ v
            IKH = I - K @ Ho
            cov = _sym(IKH @ cov @ IKH.T + K @ Ro @ K.T)
        fm[t], fP[t] = mean, cov
        if t < T - 1:
            mean = A @ mean + b
            cov = _sym(A @ cov @ A.T + Q)

    return {
        "log_evidence": float(np.sum(log_pred)),
        "filtered_means": fm,
        "filtered_covs": fP,
        "predicted_means": pm,
        "predicted_covs": pP,
        "log_predictive": log_pred,
    }


def rts_smoother(m0, P0, A, b, Q, H, c, R, y):
    """Rauch-Tung-Striebel smoother (on top of :func:`kalman_filter`).

    Returns the filter's dict plus ``smoothed_means`` (T,d), ``smoothed_covs``
    (T,d,d) and ``smoothed_cross_covs`` (T-1,d,d) with
    ``smoothed_cross_covs[t] = Cov(x_t, x_{t+1} | y)``.
    """
    m0, P0, A, b, Q, H, c, R, y, T, d, m = _lgssm_inputs(m0, P0, A, b, Q, H, c, R, y)
    kf = kalman_filter(m0, P0, A, b, Q, H, c, R, y)
    fm, fP = kf["filtered_means"], kf["filtered_covs"]
    pm, pP = kf["predicted_means"], kf["predicted_covs"]

    sm = np.zeros((T, d))
    sP = np.zeros((T, d, d))
    cross = np.zeros((max(T - 1, 0), d, d))
    sm[T - 1], sP[T - 1] = fm[T - 1], fP[T - 1]
    for t in range(T - 2, -1, -1):
        # G = fP_t A^T pP_{t+1}^{-1}; solve with the symmetric pP_{t+1}
        cho = scipy.linalg.cho_factor(pP[t + 1], lower=True)
        G = scipy.linalg.cho_solve(cho, A @ fP[t]).T
        sm[t] = fm[t] + G @ (sm[t + 1] - pm[t + 1])
        sP[t] = _sym(fP[t] + G @ (sP[t + 1] - pP[t + 1]) @ G.T)
        cross[t] = G @ sP[t + 1]

    out = dict(kf)
    out.update(
        {"smoothed_means": sm, "smoothed_covs": sP, "smoothed_cross_covs": cross}
    )
    return out


def _lgssm_joint_moments(m0, P0, A, b, Q, H, c, R, T):
    """Mean and covariance of the stacked vector (x_0..x_{T-1}, y_0..y_{T-1})."""
    d = m0.shape[0]
    m = H.shape[0]
    # prior means
    mu_x = np.zeros((T, d))
    mu_x[0] = m0
    for t in range(1, T):
        mu_x[t] = A @ mu_x[t - 1] + b
    mu_y = mu_x @ H.T + c

    # x - mu_x = M e,  e = (x_0 - m0, w_1, ..., w_{T-1}),  Cov(e) = diag(P0, Q, ..., Q)
    M = np.zeros((T * d, T * d))
    for t in range(T):
        Apow = np.eye(d)
        for s in range(t, -1, -1):
            M[t * d:(t + 1) * d, s * d:(s + 1) * d] = Apow
            Apow = Apow @ A
    D = scipy.linalg.block_diag(P0, *([Q] * (T - 1)))
    Sxx = M @ D @ M.T

    Hbig = np.kron(np.eye(T), H)
    Rbig = np.kron(np.eye(T), R)
    Sxy = Sxx @ Hbig.T
    Syy = Hbig @ Sxx @ Hbig.T + Rbig

    mean = np.concatenate([mu_x.ravel(), mu_y.ravel()])
    cov = np.block([[Sxx, Sxy], [Sxy.T, Syy]])
    return mean, _sym(cov)


def lgssm_dense(m0, P0, A, b, Q, H, c, R, y):
    """Exact answers from the dense joint Gaussian of (x_{0:T-1}, y_{0:T-1}).

    Returns dict with ``log_evidence`` (density of all observed coordinates of
    y), ``posterior_mean`` (T,d) and ``posterior_cov`` (T*d, T*d) (state
    ordering: time-major, i.e. index t*d + i), plus the joint ``mean``/``cov``.
    Only for small T*d.
    """
    m0, P0, A, b, Q, H, c, R, y, T, d, m = _lgssm_inputs(m0, P0, A, b, Q, H, c, R, y)
    mean, cov = _lgssm_joint_moments(m0, P0, A, b, Q, H, c, R, T)
    nx = T * d
    y_flat = y.ravel()
    obs = ~np.isnan(y_flat)
    oi = nx + np.flatnonzero(obs)
    xi = np.arange(nx)

    mu_x = mean[:nx]
    Sxx = cov[:nx, :nx]
    if oi.size == 0:
        return {
            "log_evidence": 0.0,
            "posterior_mean": mu_x.reshape(T, d),
            "posterior_cov": Sxx.copy(),
            "mean": mean,
            "cov": cov,
        }
    mu_o = mean[oi]
    Soo = cov[np.ix_(oi, oi)]
    Sxo = cov[np.ix_(xi, oi)]
    yo = y_flat[obs]

    log_evidence = scipy.stats.multivariate_normal(mean=mu_o, cov=Soo).logpdf(yo)
    cho = scipy.linalg.cho_factor(Soo, lower=True)
    post_mean = mu_x + Sxo @ scipy.linalg.cho_solve(cho, yo - mu_o)
    post_cov = _sym(Sxx - Sxo @ scipy.linalg.cho_solve(cho, Sxo.T))
    return {
        "log_evidence": float(log_evidence),
        "posterior_mean": post_mean.reshape(T, d),
        "posterior_cov": post_cov,
        "mean": mean,
        "cov": cov,
    }


def lgssm_simulate(rng, m0, P0, A, b, Q, H, c, R, T):
    """Draw (x, y) with shapes (T,d), (T,m) using a numpy ``Generator``."""
    n_obs = np.asarray(H).size // np.atleast_1d(m0).shape[0]
    y_dummy = np.zeros((T, n_obs))
    m0, P0, A, b, Q, H, c, R, _, T, d, m = _lgssm_inputs(m0, P0, A, b, Q, H, c, R, y_dummy)
    x = np.zeros((T, d))
    y = np.zeros((T, m))
    x[0] = rng.multivariate_normal(m0, P0)
    for t in range(1, T):
        x[t] = A @ x[t - 1] + b + rng.multivariate_normal(np.zeros(d), Q)
    for t in range(T):
        y[t] = H @ x[t] + c + rng.multivariate_normal(np.zeros(m), R)
    return x, y


# ---------------------------------------------------------------------------
# Quadrature
# ---------------------------------------------------------------------------

_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def _eval_on(fn, *args):
    """Evaluate fn vectorised if it supports it, else point by point."""
    shape = np.broadcast(*args).shape
    try:
        out = np.asarray(fn(*args), dtype=np.float64)
        if out.shape == shape:
            return out
    except Exception:
        pass
    flat = [np.ravel(np.broadcast_to(a, shape)) for a in args]
    out = np.array([float(fn(*vals)) for vals in zip(*flat)], dtype=np.float64)
    return out.reshape(shape)


def grid_posterior(log_lik_fn, log_prior_fn, grid):
    """Posterior (mean, sd) of a scalar parameter by trapezoid quadrature on ``grid``.

    ``log_lik_fn`` and ``log_prior_fn`` take a scalar (or the whole grid, if
    vectorised) and return log densities (up to constants).
    """
    grid = np.asarray(grid, dtype=np.float64)
    logp = _eval_on(log_lik_fn, grid) + _eval_on(log_prior_fn, grid)
    logp = np.where(np.isnan(logp), -np.inf, logp)
    w = np.exp(logp - np.max(logp))
    Z = _trapezoid(w, grid)
    mean = _trapezoid(w * grid, grid) / Z
    var = _trapezoid(w * (grid - mean) ** 2, grid) / Z
    return float(mean), float(np.sqrt(var))


def grid_posterior_2d(log_density_fn, grid_x, grid_y):
    """Posterior means (2,) and sds (2,) of a 2-D density by trapezoid quadrature.

    ``log_density_fn(x, y)`` is evaluated on ``meshgrid(grid_x, grid_y,
    indexing="ij")`` (vectorised if possible, else point by point).
    """
    gx = np.asarray(grid_x, dtype=np.float64)
    gy = np.asarray(grid_y, dtype=np.float64)
    X, Y = np.meshgrid(gx, gy, indexing="ij")
    logp = _eval_on(log_density_fn, X, Y)
    logp = np.where(np.isnan(logp), -np.inf, logp)
    w = np.exp(logp - np.max(logp))
    px = _trapezoid(w, gy, axis=1)  # unnormalised marginal of x
    py = _trapezoid(w, gx, axis=0)  # unnormalised marginal of y
    Z = _trapezoid(px, gx)
    mx = _trapezoid(px * gx, gx) / Z
    my = _trapezoid(py * gy, gy) / Z
    vx = _trapezoid(px * (gx - mx) ** 2, gx) / Z
    vy = _trapezoid(py * (gy - my) ** 2, gy) / Z
    return np.array([mx, my]), np.sqrt(np.array([vx, vy]))
