r"""Resampling schemes for particle methods.

Each scheme maps ``(rng_key, log_weights, num_samples)`` to ``num_samples`` ancestor indices in
``[0, N)`` whose offspring counts $O_i = \#\{j : a_j = i\}$ are unbiased, $E[O_i] = M W_i$, with
$W_i = e^{\ell_i} / \sum_k e^{\ell_k}$ the normalised weights of the log-weights $\ell$ and $M$ =
``num_samples``. All shapes are fixed (``jit``/``vmap`` friendly); the weights are normalised with a
log-sum-exp, NaN log-weights count as $-\infty$ (zero weight), and if every weight is zero the
indices are valid (in range) but meaningless.

Offspring variances: multinomial has $\mathrm{Var}\,O_i = M W_i (1 - W_i)$; stratified, systematic
and residual resampling have smaller variance (systematic and stratified give $O_i \in
\{\lfloor M W_i \rfloor, \lceil M W_i \rceil\}$ up to the straddling of strata).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["multinomial", "stratified", "systematic", "residual", "conditional", "normalized_weights"]


def normalized_weights(log_weights) -> jax.Array:
    r"""Normalised weights $W_i = e^{\ell_i - \max_k \ell_k} / \sum_k e^{\ell_k - \max_k \ell_k}$.

    NaN entries count as $-\infty$; if every weight is zero the result is all zeros.

    Examples:
        >>> import jax.numpy as jnp
        >>> normalized_weights(jnp.log(jnp.array([1.0, 3.0]))).round(3).tolist()
        [0.25, 0.75]
        >>> normalized_weights(jnp.full(2, -jnp.inf)).tolist()
        [0.0, 0.0]
    """
    lw = jnp.asarray(log_weights)
    lw = jnp.where(jnp.isnan(lw), -jnp.inf, lw)
    mx = jnp.max(lw)
    mx = jnp.where(jnp.isfinite(mx), mx, 0.0)
    w = jnp.exp(lw - mx)
    total = jnp.sum(w)
    return w / jnp.where(total > 0, total, 1.0)


def _inverse_cdf(weights, u) -> jax.Array:
    """Indices $i$ with $C_{i-1} \\le u\\,C_{N-1} < C_i$ for the cumulative sums $C$ of the
    (unnormalised, non-negative) ``weights``; ``u`` in $[0, 1)$."""
    cdf = jnp.cumsum(weights)
    idx = jnp.searchsorted(cdf, u * cdf[-1], side="right")
    return jnp.clip(idx, 0, weights.shape[0] - 1).astype(jnp.int32)


def multinomial(rng_key, log_weights, num_samples: int) -> jax.Array:
    r"""Multinomial resampling: $a_j \overset{iid}{\sim} \mathrm{Categorical}(W)$.

    Args:
        rng_key: a JAX PRNG key.
        log_weights: ``(N,)`` unnormalised log-weights.
        num_samples: $M$, the number of indices.

    Returns:
        ``(M,)`` int32 indices.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> idx = multinomial(jax.random.PRNGKey(0), jnp.log(jnp.array([0.0, 1.0, 0.0])), 4)
        >>> idx.tolist()
        [1, 1, 1, 1]
    """
    u = jax.random.uniform(rng_key, (num_samples,), dtype=jnp.result_type(float))
    return _inverse_cdf(normalized_weights(log_weights), u)


def stratified(rng_key, log_weights, num_samples: int) -> jax.Array:
    r"""Stratified resampling: one uniform per stratum, $u_j = (j + U_j)/M$, $U_j \overset{iid}{\sim} U(0,1)$,
    inverted through the cumulative weights.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> stratified(jax.random.PRNGKey(0), jnp.log(jnp.array([0.5, 0.25, 0.25])), 4).tolist()
        [0, 0, 1, 2]
    """
    dtype = jnp.result_type(float)
    u = (jnp.arange(num_samples, dtype=dtype) + jax.random.uniform(rng_key, (num_samples,), dtype=dtype)) / num_samples
    return _inverse_cdf(normalized_weights(log_weights), u)


def systematic(rng_key, log_weights, num_samples: int) -> jax.Array:
    r"""Systematic resampling: one shared uniform, $u_j = (j + U)/M$, $U \sim U(0, 1)$, inverted through
    the cumulative weights.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> systematic(jax.random.PRNGKey(0), jnp.log(jnp.array([0.5, 0.25, 0.25])), 4).tolist()
        [0, 0, 1, 2]
    """
    dtype = jnp.result_type(float)
    u = (jnp.arange(num_samples, dtype=dtype) + jax.random.uniform(rng_key, (), dtype=dtype)) / num_samples
    return _inverse_cdf(normalized_weights(log_weights), u)


def residual(rng_key, log_weights, num_samples: int) -> jax.Array:
    r"""Residual resampling: $\lfloor M W_i \rfloor$ deterministic copies of each particle, and the
    remaining $R = M - \sum_i \lfloor M W_i \rfloor$ indices drawn multinomially with probabilities
    proportional to the residuals $M W_i - \lfloor M W_i \rfloor$.

    Fixed shapes: the deterministic copies fill slots $j < M - R$ by inverting their cumulative counts,
    and a full-length multinomial draw from the residuals fills the remaining slots.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> residual(jax.random.PRNGKey(0), jnp.log(jnp.array([0.5, 0.25, 0.25])), 4).tolist()
        [0, 0, 1, 2]
    """
    w = normalized_weights(log_weights)
    scaled = num_samples * w
    copies = jnp.floor(scaled)
    cum = jnp.cumsum(copies)
    slots = jnp.arange(num_samples)
    det = jnp.clip(jnp.searchsorted(cum, slots, side="right"), 0, w.shape[0] - 1).astype(jnp.int32)
    u = jax.random.uniform(rng_key, (num_samples,), dtype=w.dtype)
    rest = _inverse_cdf(jnp.clip(scaled - copies, 0.0, None), u)
    return jnp.where(slots < cum[-1], det, rest)


def conditional(resample_fn: Callable) -> Callable:
    r"""Conditional resampler for conditional SMC: slot 0 is pinned to the reference particle.

    The returned function ``(rng_key, log_weights, num_samples, pinned_index) -> indices`` sets
    ``indices[0] = pinned_index`` and draws the other $M - 1$ indices i.i.d. from
    $\mathrm{Categorical}(W)$ (conditional multinomial resampling), so that
    $E[O_i] = 1\{i = \text{pinned}\} + (M - 1) W_i$.

    Only multinomial resampling has this simple conditional form. For ``stratified``, ``systematic``
    and ``residual`` (whose indices are dependent) the free indices are **also drawn multinomially**:
    the conditional resampler is then valid for conditional SMC but does not inherit their lower
    variance (their exact conditional versions, Chopin & Singh 2015, are not implemented yet).

    Args:
        resample_fn: one of ``multinomial``, ``stratified``, ``systematic``, ``residual``.

    Returns:
        ``(rng_key, log_weights, num_samples, pinned_index) -> (num_samples,)`` int32 indices.

    Raises:
        ValueError: any other ``resample_fn``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> cond = conditional(systematic)
        >>> idx = cond(jax.random.PRNGKey(0), jnp.log(jnp.array([0.0, 1.0, 0.0])), 3, 2)
        >>> idx.tolist()
        [2, 1, 1]
    """
    if resample_fn not in (multinomial, stratified, systematic, residual):
        raise ValueError("conditional() supports multinomial, stratified, systematic and residual")

    def resample(rng_key, log_weights, num_samples: int, pinned_index) -> jax.Array:
        idx = multinomial(rng_key, log_weights, num_samples)
        return idx.at[0].set(jnp.asarray(pinned_index, idx.dtype))

    resample.__doc__ = f"Conditional {resample_fn.__name__} resampling (slot 0 pinned; see `conditional`)."
    return resample
