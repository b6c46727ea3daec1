r"""Guided Gamma-process bridges with exact log-weights (BFFG for a non-Gaussian, non-finite process).

**Problem.** A [`GammaProcess`][markovppl.kernels.gamma.GammaProcess] starts at $x_0$ and has independent
increments $\Delta_s \sim \mathrm{Gamma}(\alpha_s, \beta_s)$, $s = 1..n$. We condition on the endpoint
$X_n = x_v$ and want bridge paths and the evidence $p(x_v)$ (a density in $x_v$). With a step-dependent
rate $\beta_s$ neither has a closed form.

**Auxiliary process and $\tilde h$.** The auxiliary is the homogeneous Gamma process with the same shapes and
one rate $\tilde\beta$. Write $y = x_v - x$ for the remaining distance, $R_s = \sum_{r \ge s} \alpha_r$ for the
remaining shape before step $s$ and $g(y; a, \beta) = \beta^a y^{a-1} e^{-\beta y}/\Gamma(a)$. Its backward
message after step $s$ is exact and closed-form:

$$\tilde h_s(x) = g(x_v - x;\ R_{s+1},\ \tilde\beta),\qquad \tilde h_0(x_0) = g(x_v - x_0;\ A,\ \tilde\beta),\quad
  A = R_1 .$$

By bffg.md §1.3, for any guided kernel $q_s$ the weight $\Psi = p(\text{path}, x_v) / q(\text{path})$ satisfies
$p(x_v) = E_q[p(\text{path}, x_v)/q(\text{path})]$; both constructions below write it as
$\tilde h_0(x_0)\,\Psi$ with an explicit $\Psi$, so the estimate is $p(x_v) \approx \tilde h_0(x_0)\,\overline{\Psi}$.
The last step is never sampled: $x_n = x_v$ exactly.

**(a) Auxiliary bridge** (``method="auxiliary"``). $q_s = \tilde\kappa_s \tilde h_s / \tilde h_{s-1}$ is the exact
bridge of the auxiliary, which does not depend on $\tilde\beta$: the step takes the fraction

$$\Delta_s = y_{s-1}\, U_s,\qquad U_s \sim \mathrm{Beta}(\alpha_s,\ R_s - \alpha_s)$$

of the remaining distance ($U_n = 1$). Then $q(\text{path}) = \tilde p(\text{path}, x_v)/\tilde p(x_v)$, and since
$p$ and $\tilde p$ differ only in the rates,

$$\log\Psi^{(a)} = \sum_{s=1}^n \Big[\alpha_s \log\frac{\beta_s}{\tilde\beta} - (\beta_s - \tilde\beta)\,\Delta_s\Big],
  \qquad \tilde h_0(x_0) = \tilde p(x_v).$$

With a constant rate $\beta$ this is $A\log(\beta/\tilde\beta) - (\beta - \tilde\beta)(x_v - x_0)$ for every path, and
$\tilde h_0 \Psi^{(a)} = g(x_v - x_0; A, \beta)$ exactly (bffg.md §5 item 12).

**(b) True kernel times $\tilde h$** (``method="tilted"``). $q_s(x, dx') \propto \kappa_s(x, dx')\,\tilde h_s(x')$. With
$a = \alpha_s$, $R = R_s$, $\beta = \beta_s$ and $\Delta = y u$,

$$\kappa_s\tilde h_s \propto u^{a-1}(1-u)^{R-a-1} e^{-(\beta - \tilde\beta)\, y\, u},$$

an exponentially tilted Beta$(a, R-a)$ on $(0, 1)$, drawn exactly by rejection
(see [`sample_tilted_beta`][markovppl.guided.gamma.sample_tilted_beta]). Integrating,

$$(\kappa_s\tilde h_s)(x) = \frac{\beta^a\tilde\beta^{R-a}}{\Gamma(a)\Gamma(R-a)} e^{-\tilde\beta y} y^{R-1}
   B(a, R-a)\, E\big[e^{-(\beta-\tilde\beta) y B}\big]
 = \Big(\frac{\beta}{\tilde\beta}\Big)^{a} g(y; R, \tilde\beta)\; {}_1F_1\big(a; R; -(\beta - \tilde\beta) y\big),$$

$B \sim \mathrm{Beta}(a, R-a)$ (Kummer's integral). Since $(\tilde\kappa_s\tilde h_s)(x) = \tilde h_{s-1}(x) = g(y; R,
\tilde\beta)$, the per-step weight $w_s = (\kappa_s\tilde h_s)/(\tilde\kappa_s\tilde h_s)$ of bffg.md §1.3 is

$$\log\Psi^{(b)} = \sum_{s=1}^n \Big[\alpha_s\log\frac{\beta_s}{\tilde\beta}
   + \log {}_1F_1\big(\alpha_s;\ R_s;\ -(\beta_s - \tilde\beta)\, y_{s-1}\big)\Big],$$

where the last step ($R_n = \alpha_n$, ${}_1F_1(a; a; z) = e^z$) is the forced increment's
$g(y_{n-1}; \alpha_n, \beta_n)/g(y_{n-1}; \alpha_n, \tilde\beta)$. The weight is a function of the path only through
the remaining distances $y_{s-1}$. bffg.md §1.7 quotes the *telescoped* per-step form
$\alpha\log(\beta_s/\tilde\beta) + \log g(y; R, \tilde\beta) - \log g(y - \Delta; R - \alpha, \tilde\beta) + \log{}_1F_1$,
which is $\log\kappa_s - \log q_s$; its sum is $\log\tilde h_0(x_0) + \log\Psi^{(b)}$ (the $\tilde h$ terms telescope),
the same estimator. The ${}_1F_1$ term is computed deterministically by
[`log_hyp1f1`][markovppl.guided.gamma.log_hyp1f1] (the reference code estimated it by Monte Carlo).

With $\tilde\beta = \beta$ constant, (b) is the exact bridge and $\Psi^{(b)} \equiv 1$; otherwise its weights vary
but remain unbiased: $E_q[\Psi^{(b)}]\,\tilde h_0(x_0) = p(x_v)$.

Everything is pure JAX: keys are explicit, paths and weights are ``jit``/``vmap``-able, and the (a) weight is
differentiable in the rates at a fixed key (its path does not depend on them).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betaln, gammaln, logsumexp

from .. import _validation as v
from ..jump.guided import ISEstimate, is_estimate
from ..kernels.gamma import GammaProcess, gamma_log_density

__all__ = ["GuidedGammaPath", "log_hyp1f1", "sample_tilted_beta", "gamma_bridge_log_h0", "gamma_bridge_log_weight",
           "guided_gamma_bridge", "guided_gamma_bridges", "gamma_bridge_evidence"]

METHODS = ("auxiliary", "tilted")
_CHUNK = 16


# --------------------------------------------------------------------------------------------------------------
# 1F1


def _log_positive_series(c, b, x, max_chunks):
    r"""$\log\sum_{k\ge0} \frac{(c)_k}{(b)_k}\frac{x^k}{k!}$ for $0 \le c \le b$, $b > 0$, $x \ge 0$: positive terms,
    summed in chunks of ``_CHUNK`` with a running log-sum-exp until the rest is provably below machine epsilon."""
    dtype = jnp.result_type(c, b, x, float)
    c, b, x = (jnp.asarray(u, dtype) for u in (c, b, x))
    log_eps = jnp.log(jnp.finfo(dtype).eps)
    logx = jnp.log(x)
    # the term ratio rho_k = x (c+k) / ((b+k)(k+1)) is unimodal in k (max at k_m) and equals 1 at most twice
    # (larger root k_hi); beyond both it decreases, so once rho <= 1/2 the tail is at most the last term.
    disc_m = c * c - b * c + b - c
    k_m = jnp.where(disc_m > 0, -c + jnp.sqrt(jnp.maximum(disc_m, 0.0)), 0.0)
    disc_h = (b + 1.0 - x) ** 2 - 4.0 * (b - c * x)
    k_hi = jnp.where(disc_h >= 0, 0.5 * ((x - b - 1.0) + jnp.sqrt(jnp.maximum(disc_h, 0.0))), 0.0)
    j_stop = jnp.maximum(jnp.maximum(k_m, k_hi), 0.0) + 1.0
    offs = jnp.arange(_CHUNK, dtype=dtype)
    log_half = jnp.log(jnp.asarray(0.5, dtype))

    def body(carry):
        k0, l_last, log_sum, _, it = carry
        j = k0 + offs  # term indices; term_j = term_{j-1} * rho_{j-1}
        terms = l_last + jnp.cumsum(logx + jnp.log((c + j - 1.0) / ((b + j - 1.0) * j)))
        log_sum = jnp.logaddexp(log_sum, logsumexp(terms))
        jl = k0 + (_CHUNK - 1)
        log_rho = logx + jnp.log((c + jl) / ((b + jl) * (jl + 1.0)))
        done = (terms[-1] == -jnp.inf) | ((jl >= j_stop) & (log_rho <= log_half) & (terms[-1] <= log_sum + log_eps))
        return k0 + _CHUNK, terms[-1], log_sum, done, it + 1

    def cond(carry):
        return (~carry[3]) & (carry[4] < max_chunks)

    init = (jnp.ones((), dtype), jnp.zeros((), dtype), jnp.zeros((), dtype), jnp.asarray(False), jnp.asarray(0))
    _, _, log_sum, done, _ = jax.lax.while_loop(cond, body, init)
    return jnp.where(done, log_sum, jnp.nan)


@partial(jax.custom_jvp, nondiff_argnums=(3,))
def _log_hyp1f1(a, b, z, max_chunks):
    neg = z <= 0
    s = _log_positive_series(jnp.where(neg, b - a, a), b, jnp.abs(z), max_chunks)
    return jnp.where(neg, z + s, s)


@partial(_log_hyp1f1.defjvp, symbolic_zeros=True)
def _log_hyp1f1_jvp(max_chunks, primals, tangents):
    a, b, z = primals
    da, db, dz = tangents
    if not (type(da) is jax.custom_derivatives.SymbolicZero and type(db) is jax.custom_derivatives.SymbolicZero):
        raise NotImplementedError("log_hyp1f1 is differentiable in z only (not in a or b)")
    out = _log_hyp1f1(a, b, z, max_chunks)
    if type(dz) is jax.custom_derivatives.SymbolicZero:
        return out, jnp.zeros_like(out)
    # d/dz 1F1(a; b; z) = (a / b) 1F1(a + 1; b + 1; z)
    deriv = a / b * jnp.exp(_log_hyp1f1(a + 1.0, b + 1.0, z, max_chunks) - out)
    return out, deriv * dz


def log_hyp1f1(a, b, z, max_terms: int = 2**22):
    r"""$\log {}_1F_1(a; b; z)$ (Kummer's confluent hypergeometric function) for $0 < a \le b$ and real $z$,
    deterministic and accurate to a few ulps of the log in float64.

    Method. For $0 < a < b$, ${}_1F_1(a; b; z) = E[e^{zB}]$ with $B \sim \mathrm{Beta}(a, b - a)$, positive. For
    $z > 0$ the Maclaurin series $\sum_k \frac{(a)_k}{(b)_k}\frac{z^k}{k!}$ has positive terms; for $z \le 0$ the
    Kummer transformation ${}_1F_1(a; b; z) = e^{z}\,{}_1F_1(b - a; b; -z)$ gives again a series of positive terms.
    So there is never cancellation, for any $|z|$. The terms are summed in log space by their ratio
    $\rho_k = \frac{|z|(c + k)}{(b + k)(k + 1)}$ ($c = a$ or $b - a$) until the remainder is provably below machine
    epsilon ($\rho_k$ is unimodal in $k$ and crosses 1 at most twice; past both, once $\rho_k \le 1/2$ the tail is
    at most the last term). The cost is about $\max(|z|, \sqrt{b}) + O(\sqrt{|z|})$ terms; under ``vmap`` every
    lane runs as long as the slowest. Returns NaN only if ``max_terms`` terms did not reach that bound.

    Differentiable in ``z`` (custom JVP, $\partial_z {}_1F_1(a;b;z) = \frac{a}{b}{}_1F_1(a+1;b+1;z)$); asking for
    a derivative in ``a`` or ``b`` raises.

    Args:
        a: $a > 0$, any shape (broadcast with ``b`` and ``z``).
        b: $b \ge a$.
        z: real argument.
        max_terms: cap on the number of series terms (static).

    Examples:
        >>> import jax.numpy as jnp
        >>> round(float(log_hyp1f1(1.0, 2.0, 1.0)), 6)                  # 1F1(1; 2; z) = (e^z - 1) / z
        0.541325
        >>> round(float(log_hyp1f1(0.5, 0.5, -300.0)), 6)               # 1F1(a; a; z) = e^z
        -300.0
    """
    a, b, z = jnp.broadcast_arrays(*(jnp.asarray(u) for u in (a, b, z)))
    dtype = jnp.result_type(a, b, z, float)
    a, b, z = a.astype(dtype), b.astype(dtype), z.astype(dtype)
    if all(v.is_concrete(u) for u in (a, b)):
        an, bn = np.asarray(a), np.asarray(b)
        if np.any(~(an > 0)):
            raise ValueError(f"log_hyp1f1: a must be positive, got minimum {np.nanmin(an) if an.size else an}")
        if np.any(~(bn >= an)):
            raise ValueError("log_hyp1f1: b must be >= a (the Beta-mixture domain 0 < a <= b)")
    v.check_finite("z", z)
    max_chunks = max(1, int(max_terms) // _CHUNK)
    flat = jax.vmap(lambda p, q, r: _log_hyp1f1(p, q, r, max_chunks))(a.ravel(), b.ravel(), z.ravel())
    return flat.reshape(a.shape)


# --------------------------------------------------------------------------------------------------------------
# exact tilted-Beta sampler

_NUM_S = 16


def _envelope_choice(p, q, t):
    r"""Best envelope for $v^{p-1}(1-v)^{q-1}e^{tv}$, $t \ge 0$: Beta$(p, q - s)$ over a grid of $s$, or (for
    $p \ge 1$) a Gamma$(q, t + p - 1)$ law for $1 - v$. Returns (use_gamma, s, log_bound, lam)."""
    dtype = p.dtype
    t_safe = jnp.where(t > 0, t, 1.0)
    s_max = jnp.where(t < q, t, q * (1.0 - 1.0 / _NUM_S))
    s = s_max * jnp.arange(_NUM_S + 1, dtype=dtype) / _NUM_S
    # sup_v (1-v)^s e^{tv}: e^{t - s}(s/t)^s when s < t, else 1
    log_bound = jnp.where(s < t, jax.scipy.special.xlogy(s, s / t_safe) + t - s, 0.0)
    score_beta = -betaln(p, q - s) - log_bound
    j = jnp.argmax(score_beta)
    lam = t + p - 1.0
    gamma_ok = (p >= 1.0) & (lam > 0)
    lam_safe = jnp.where(gamma_ok, lam, 1.0)
    score_gamma = jnp.where(gamma_ok, -(gammaln(q) - q * jnp.log(lam_safe)) - t, -jnp.inf)
    use_gamma = score_gamma > score_beta[j]
    return use_gamma, s[j], log_bound[j], lam_safe


def sample_tilted_beta(rng_key, p, q, t, max_tries: int = 10_000):
    r"""Exact draw of $U$ with density $\propto u^{p-1}(1-u)^{q-1}e^{tu}$ on $(0, 1)$ ($p, q > 0$, real $t$),
    returned as ``(log_u, log1m_u, ok)`` (both logs accurate even when $U$ is within rounding of 0 or 1).

    Rejection sampling, with the tilt made non-negative by the reflection $U \to 1 - U$ (which swaps $p$ and
    $q$). For $v^{p-1}(1-v)^{q-1}e^{tv}$, $t \ge 0$, two exact envelope families are scored by their acceptance
    rate (computable in closed form up to the common normaliser) and the best is used:

    * Beta$(p, q - s)$, $0 \le s < q$: the ratio $(1-v)^s e^{tv}$ is bounded by $e^{t-s}(s/t)^s$ ($s < t$) or
      by 1 ($s = t$); $s = 0$ is the plain Beta proposal, $s = t$ absorbs the whole tilt when $t < q$;
    * for $p \ge 1$: $1 - v \sim$ Gamma$(q, t + p - 1)$ (rejected when $\ge 1$), ratio
      $(1-w)^{p-1}e^{(p-1)w} \le 1$ — efficient for strong tilts against large shapes.

    ``ok`` is False if ``max_tries`` proposals were all rejected (then the value is not a valid draw).
    Pure and ``jit``/``vmap``-able.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> keys = jax.random.split(jax.random.PRNGKey(0), 2000)
        >>> lu, _, ok = jax.vmap(lambda k: sample_tilted_beta(k, 2.0, 3.0, 0.0))(keys)
        >>> bool(ok.all()), bool(abs(float(jnp.exp(lu).mean()) - 0.4) < 0.02)        # Beta(2, 3) mean 0.4
        (True, True)
    """
    p, q, t = jnp.broadcast_arrays(*(jnp.asarray(u) for u in (p, q, t)))
    dtype = jnp.result_type(p, q, t, float)
    p, q, t = p.astype(dtype), q.astype(dtype), t.astype(dtype)
    flip = t < 0
    pp, qq, tt = jnp.where(flip, q, p), jnp.where(flip, p, q), jnp.abs(t)
    use_gamma, s, log_bound, lam = _envelope_choice(pp, qq, tt)
    q_env = qq - s

    def body(carry):
        key, lv, l1mv, accepted, it = carry
        key, kg, ku = jax.random.split(key, 3)
        g1, g2, g3 = jax.random.loggamma(kg, jnp.stack([pp, q_env, qq]), dtype=dtype)  # one rejection loop
        # Beta(pp, q_env) proposal on v
        lse = jnp.logaddexp(g1, g2)
        lv_b, l1mv_b = g1 - lse, g2 - lse
        logr_b = s * l1mv_b + tt * jnp.exp(lv_b) - log_bound
        # Gamma(qq, lam) proposal on w = 1 - v
        lw = g3 - jnp.log(lam)
        w = jnp.exp(lw)
        inside = w < 1.0
        l1mw = jnp.log1p(-jnp.where(inside, w, 0.0))
        logr_g = jnp.where(inside, (pp - 1.0) * (l1mw + w), -jnp.inf)
        lv_new = jnp.where(use_gamma, l1mw, lv_b)
        l1mv_new = jnp.where(use_gamma, lw, l1mv_b)
        logr = jnp.where(use_gamma, logr_g, logr_b)
        acc = jnp.log(jax.random.uniform(ku, dtype=dtype)) < logr
        return key, jnp.where(acc, lv_new, lv), jnp.where(acc, l1mv_new, l1mv), acc, it + 1

    def cond(carry):
        return (~carry[3]) & (carry[4] < max_tries)

    init = (rng_key, jnp.zeros((), dtype), jnp.zeros((), dtype), jnp.asarray(False), jnp.asarray(0))
    _, lv, l1mv, ok, _ = jax.lax.while_loop(cond, body, init)
    return jnp.where(flip, l1mv, lv), jnp.where(flip, lv, l1mv), ok


# --------------------------------------------------------------------------------------------------------------
# guided bridges


class GuidedGammaPath(NamedTuple):
    r"""A guided Gamma-process bridge with its weight.

    Attributes:
        path: $x_0, \dots, x_n$ ``(..., n+1)``, non-decreasing, ``path[..., -1]`` $= x_v$ exactly.
        log_weight: $\log\Psi$ ``(...)``.
        log_h0: $\log\tilde h_0(x_0) = \log g(x_v - x_0; A, \tilde\beta)$ ``(...)``.
        overflow: ``(...)`` True where a tilted-Beta draw exhausted ``max_tries`` (weight not valid; never for
            ``method="auxiliary"``).

    Made by [`guided_gamma_bridge`][markovppl.guided.gamma.guided_gamma_bridge].

    Examples:
        >>> GuidedGammaPath._fields
        ('path', 'log_weight', 'log_h0', 'overflow')
    """

    path: jax.Array
    log_weight: jax.Array
    log_h0: jax.Array
    overflow: jax.Array


def _check(process: GammaProcess, x0, x_end, aux_rate, method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    process.validate()
    v.check_finite("x0", x0)
    v.check_finite("x_end", x_end)
    if v.is_concrete(aux_rate):
        ar = np.asarray(aux_rate, float)
        if ar.ndim != 0:
            raise ValueError(f"aux_rate must be a scalar (the auxiliary is homogeneous), got shape {ar.shape}")
        if not (np.isfinite(ar) and ar > 0):
            raise ValueError(f"aux_rate must be positive and finite, got {float(ar)}")
    if v.is_concrete(x0) and v.is_concrete(x_end):
        if not np.all(np.asarray(x_end, float) > np.asarray(x0, float)):
            raise ValueError(f"the endpoint x_end must lie strictly above the start x0 (a Gamma process only increases), "
                             f"got x0={np.asarray(x0)}, x_end={np.asarray(x_end)}")


def _schedule(process: GammaProcess):
    """Shapes a_s, remaining shape before the step R_s and after it q_s = R_s - a_s (q_n = 0 exactly), rates."""
    a = process.shapes()
    r = jnp.flip(jnp.cumsum(jnp.flip(a)))
    q = jnp.concatenate([r[1:], jnp.zeros((1,), a.dtype)])
    return a, r, q, process.rates().astype(a.dtype)


def gamma_bridge_log_h0(process: GammaProcess, x0, x_end, aux_rate) -> jax.Array:
    r"""$\log\tilde h_0(x_0) = \log g(x_v - x_0;\ A,\ \tilde\beta)$: the auxiliary's exact evidence.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels.gamma import GammaProcess
        >>> proc = GammaProcess(1.0, 0.5, jnp.ones(3))
        >>> round(float(gamma_bridge_log_h0(proc, 0.0, 2.0, 0.5)), 4)     # log(0.5^3 2^2 e^-1 / 2!)
        -2.3863
    """
    a = process.shapes()
    return gamma_log_density(jnp.asarray(x_end, a.dtype) - jnp.asarray(x0, a.dtype), jnp.sum(a), jnp.asarray(aux_rate, a.dtype))


def gamma_bridge_log_weight(process: GammaProcess, path, aux_rate, method: str = "auxiliary") -> jax.Array:
    r"""$\log\Psi$ of a bridge ``path`` ``(..., n+1)`` (ending at $x_v$) under construction ``method`` — the
    deterministic function of the path that [`guided_gamma_bridge`][markovppl.guided.gamma.guided_gamma_bridge]
    returns (useful to re-weight paths, e.g. in pCN or after a parameter change).

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.kernels.gamma import GammaProcess
        >>> proc = GammaProcess(1.0, 0.5, jnp.ones(2))
        >>> path = jnp.array([0.0, 0.7, 2.0])
        >>> float(gamma_bridge_log_weight(proc, path, 0.5)), float(gamma_bridge_log_weight(proc, path, 0.5, "tilted"))
        (0.0, 0.0)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    a, r, _, beta = _schedule(process)
    path = jnp.asarray(path, a.dtype)
    bt = jnp.asarray(aux_rate, a.dtype)
    base = jnp.sum(a * (jnp.log(beta) - jnp.log(bt)))
    if method == "auxiliary":
        return base - jnp.sum((beta - bt) * jnp.diff(path, axis=-1), axis=-1)
    y_prev = path[..., -1:] - path[..., :-1]  # remaining distance before each step
    z = -(beta - bt) * y_prev
    return base + jnp.sum(log_hyp1f1(jnp.broadcast_to(a, z.shape), jnp.broadcast_to(r, z.shape), z), axis=-1)


def guided_gamma_bridge(rng_key, process: GammaProcess, x0, x_end, aux_rate, method: str = "auxiliary",
                        max_tries: int = 10_000) -> GuidedGammaPath:
    r"""One guided bridge of ``process`` from ``x0`` to ``x_end`` and its exact log-weight.

    Args:
        rng_key: PRNG key (the only source of randomness: same key, same path).
        process: [`GammaProcess`][markovppl.kernels.gamma.GammaProcess] with $n$ steps.
        x0: start $x_0$ (scalar).
        x_end: endpoint $x_v > x_0$.
        aux_rate: $\tilde\beta > 0$, the rate of the homogeneous auxiliary.
        method: ``"auxiliary"`` (construction (a): the auxiliary's exact Beta bridge) or ``"tilted"``
            (construction (b): true kernel times $\tilde h$, exact rejection sampling).
        max_tries: per-step rejection cap for ``"tilted"`` (``overflow`` if reached).

    Returns:
        [`GuidedGammaPath`][markovppl.guided.gamma.GuidedGammaPath]; the evidence identity is
        $p(x_v) = \tilde h_0(x_0)\,E[\Psi]$.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.kernels.gamma import GammaProcess
        >>> proc = GammaProcess(1.0, 0.5, jnp.full(10, 0.5))
        >>> out = guided_gamma_bridge(jax.random.PRNGKey(0), proc, 0.0, 8.0, 0.4)
        >>> out.path.shape, float(out.path[-1]), bool(jnp.all(jnp.diff(out.path) >= 0))
        ((11,), 8.0, True)
        >>> exact = jax.scipy.stats.gamma.logpdf(8.0, 5.0, scale=2.0)        # constant rate: Psi is constant
        >>> bool(abs(float(out.log_h0 + out.log_weight - exact)) < 1e-4)
        True
    """
    _check(process, x0, x_end, aux_rate, method)
    a, r, q, beta = _schedule(process)
    dtype = a.dtype
    x0 = jnp.asarray(x0, dtype)
    x_end = jnp.asarray(x_end, dtype)
    bt = jnp.asarray(aux_rate, dtype)
    n = a.shape[0]
    keys = jax.random.split(rng_key, n)
    last = q <= 0
    q_safe = jnp.where(last, 1.0, q)

    def step(y, inp):
        key, a_s, q_s, beta_s, last_s = inp
        if method == "auxiliary":
            g1, g2 = jax.random.loggamma(key, jnp.stack([a_s, q_s]), dtype=dtype)
            lse = jnp.logaddexp(g1, g2)
            log_u, log1m_u, ok = g1 - lse, g2 - lse, jnp.asarray(True)
        else:
            log_u, log1m_u, ok = sample_tilted_beta(key, a_s, q_s, -(beta_s - bt) * y, max_tries)
        log_u = jnp.where(last_s, 0.0, log_u)
        log1m_u = jnp.where(last_s, -jnp.inf, log1m_u)
        ok = ok | last_s
        y_new = y * jnp.exp(log1m_u)
        return y_new, (y, y * jnp.exp(log_u), y_new, ok)

    _, (y_prev, inc, y_after, ok) = jax.lax.scan(step, x_end - x0, (keys, a, q_safe, beta, last))
    path = jnp.concatenate([x0[None], x_end - y_after])
    base = jnp.sum(a * (jnp.log(beta) - jnp.log(bt)))
    if method == "auxiliary":
        log_w = base - jnp.sum((beta - bt) * inc)
    else:
        log_w = base + jnp.sum(log_hyp1f1(a, r, -(beta - bt) * y_prev))
    return GuidedGammaPath(path, log_w, gamma_bridge_log_h0(process, x0, x_end, bt), ~jnp.all(ok))


def guided_gamma_bridges(rng_key, process: GammaProcess, x0, x_end, aux_rate, num_paths: int,
                         method: str = "auxiliary", max_tries: int = 10_000) -> GuidedGammaPath:
    r"""``num_paths`` independent guided bridges (vmapped and jitted): ``path`` ``(num_paths, n+1)``, the rest
    ``(num_paths,)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.kernels.gamma import GammaProcess
        >>> proc = GammaProcess(1.0, jnp.full(10, 0.5), jnp.full(10, 0.5))
        >>> out = guided_gamma_bridges(jax.random.PRNGKey(1), proc, 0.0, 8.0, 0.4, 200, method="tilted")
        >>> out.path.shape, bool(out.overflow.any()), bool((out.path[:, -1] == 8.0).all())
        ((200, 11), False, True)
    """
    _check(process, x0, x_end, aux_rate, method)
    dtype = process.shapes().dtype
    return _bridges(rng_key, process, jnp.asarray(x0, dtype), jnp.asarray(x_end, dtype), jnp.asarray(aux_rate, dtype),
                    int(num_paths), method, int(max_tries))


@partial(jax.jit, static_argnames=("num_paths", "method", "max_tries"))
def _bridges(rng_key, process, x0, x_end, aux_rate, num_paths, method, max_tries):
    keys = jax.random.split(rng_key, num_paths)
    return jax.vmap(lambda k: guided_gamma_bridge(k, process, x0, x_end, aux_rate, method, max_tries))(keys)


def gamma_bridge_evidence(rng_key, process: GammaProcess, x0, x_end, aux_rate, num_paths: int,
                          method: str = "auxiliary", max_tries: int = 10_000) -> tuple[ISEstimate, GuidedGammaPath]:
    r"""Guided importance-sampling estimate of the density $p(x_v)$ of $X_n$ at ``x_end`` given $X_0 = x_0$:
    $\tilde h_0(x_0)\,\overline{\Psi}$ over ``num_paths`` bridges, with its Monte Carlo standard error
    ([`ISEstimate`][markovppl.jump.guided.ISEstimate]; ``log_evidence`` is $\log p(x_v)$). Returns
    ``(estimate, paths)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.kernels.gamma import GammaProcess
        >>> proc = GammaProcess(1.0, jnp.full(10, 0.5), jnp.full(10, 0.5))     # constant rate: exact Gamma(5, 0.5)
        >>> est, _ = gamma_bridge_evidence(jax.random.PRNGKey(0), proc, 0.0, 8.0, 0.4, 200, method="tilted")
        >>> exact = float(jax.scipy.stats.gamma.pdf(8.0, 5.0, scale=2.0))
        >>> bool(abs(float(est.evidence) - exact) < 4 * float(est.standard_error))
        True
    """
    paths = guided_gamma_bridges(rng_key, process, x0, x_end, aux_rate, num_paths, method, max_tries)
    return is_estimate(paths.log_h0[0], paths.log_weight, ~paths.overflow), paths
