r"""The jitted core of block conformal prediction: p-values of every candidate for a batch of problems.

One *problem* is a calibration sequence $(x_{0:T-1}, y_{0:T-1})$ (padded to a capacity $N$, with its
length $T$) and the next observations $y_{T:T+H-1}$. For every candidate $c \in \mathcal X^H$ the
augmented sequence $z = (x \oplus c, y)$ of length $n = T + H$ is cut into blocks at the returns of
the reference value (the last hidden state, or the last state–observation pair), and the score of
the final window is ranked among the scores of the final windows of block-permuted sequences.
Everything is vectorised: candidates and permutations by ``vmap``, problems by ``lax.map`` in chunks.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .blocks import block_structure, enumerate_tuples, final_blocks_from_uniforms, final_window, tuple_is_valid
from .estimation import EmissionFamily, estimate_transition_matrix, transition_counts

# elements (candidates x permutations x capacity) processed at once per chunk of problems
_CHUNK_ELEMENTS = 1 << 22


class CoreConfig(NamedTuple):
    """Static configuration (hashable) of the compiled core."""

    num_states: int
    horizon: int
    blocks: str  # "state" | "pair"
    score: Callable
    emission: EmissionFamily | None  # None: fixed parameters are passed at call time
    pseudo_count: float
    n_permutations: int | None  # None: exact enumeration of the final blocks
    smoothing: bool
    shift: int = 0  # 1 = the published reference code's anchoring (private baseline)
    event_ndim: int = 0


def candidates(num_states: int, horizon: int) -> jax.Array:
    """All $K^H$ candidate state sequences, ``(K**H, H)``, in row-major (``numpy.ravel_multi_index``) order."""
    return enumerate_tuples(num_states, horizon)


def _quantise(s):
    """Round scores to a fixed grid so that mathematically equal scores tie exactly (a deterministic
    function of the score, so the test stays exact)."""
    bits = 30 if s.dtype == jnp.float64 else 14
    return jnp.round(s * 2.0**bits) / 2.0**bits


def _candidate_p_value(uniforms, cand, states, obs, length, params, cfg: CoreConfig):
    h, k = cfg.horizon, cfg.num_states
    cap = states.shape[0]
    n = length + h
    x = jax.lax.dynamic_update_slice(states, cand.astype(states.dtype), (length,))
    pos = jnp.arange(cap)
    valid = pos < n
    if cfg.emission is None:
        p_hat, emission = params
    else:
        p_hat = estimate_transition_matrix(transition_counts(x, n, k), cfg.pseudo_count)
        emission = cfg.emission.estimate(x, obs, valid, k)
    is_visit = x == x[n - 1]
    if cfg.blocks == "pair":
        same_y = obs == jax.lax.dynamic_index_in_dim(obs, n - 1, keepdims=True)
        is_visit = is_visit & same_y.reshape(cap, -1).all(-1)
    st = block_structure(is_visit, n)
    u_perm, u = uniforms  # (M, H + shift) for the permutations, () for the tie-breaking
    size = h + cfg.shift
    if cfg.n_permutations is None:
        codes = enumerate_tuples(cap, size)
        weights = jax.vmap(tuple_is_valid, (0, None))(codes, st)
    else:
        codes = jax.vmap(final_blocks_from_uniforms, (0, None))(u_perm, st)
        weights = None
    perm_windows = jax.vmap(lambda c: final_window(st, c, h, cfg.shift))(codes)
    obs_window = n - 1 - h + jnp.arange(h + 1)
    windows = jnp.concatenate([obs_window[None], perm_windows], 0)
    scores = jax.vmap(lambda w: cfg.score(x[w], obs[w], p_hat, emission))(windows)
    scores = _quantise(jnp.asarray(scores))
    s0, sp = scores[0], scores[1:]
    u = u.astype(scores.dtype)
    if cfg.shift:  # the reference code: p = #{S_pi >= S_obs} / |G|
        w = jnp.ones_like(sp) if weights is None else weights.astype(sp.dtype)
        return jnp.sum(w * (sp >= s0)) / jnp.sum(w)
    if weights is None:  # observed sequence plus M uniform permutations
        above, ties = jnp.sum(sp > s0), jnp.sum(sp == s0)
        if cfg.smoothing:
            return (above + u * (1 + ties)) / (cfg.n_permutations + 1)
        return (1 + above + ties) / (cfg.n_permutations + 1)
    w = weights.astype(scores.dtype)  # exact: the orbit's final windows, the observed one among them
    total = jnp.sum(w)
    above, ties = jnp.sum(w * (sp > s0)), jnp.sum(w * (sp == s0))
    if cfg.smoothing:
        return (above + u * ties) / total
    return (above + ties) / total


def _problem_p_values(rng_key, states, obs, length, new_obs, params, cfg: CoreConfig):
    ev = cfg.event_ndim
    y = jax.lax.dynamic_update_slice(obs, new_obs.astype(obs.dtype), (length,) + (jnp.zeros_like(length),) * ev)
    cands = candidates(cfg.num_states, cfg.horizon)
    c = cands.shape[0]
    m = cfg.n_permutations or 1
    k_perm, k_tie = jax.random.split(rng_key)  # all randomness of the problem in two generator calls
    u_perm = jax.random.uniform(k_perm, (c, m, cfg.horizon + cfg.shift))
    u_tie = jax.random.uniform(k_tie, (c,))
    fn = functools.partial(_candidate_p_value, states=states, obs=y, length=length, params=params, cfg=cfg)
    return jax.vmap(lambda up, ut, cand: fn((up, ut), cand))(u_perm, u_tie, cands)


def chunk_size(cfg: CoreConfig, capacity: int, num_problems: int) -> int:
    """Problems per compiled call: a power of two, at most what fits ``_CHUNK_ELEMENTS`` and at most 256,
    so that batches of any size reuse a handful of compiled shapes."""
    perms = capacity ** (cfg.horizon + cfg.shift) if cfg.n_permutations is None else cfg.n_permutations + 1
    per_problem = cfg.num_states**cfg.horizon * perms * (capacity + 64)
    limit = max(1, min(256, _CHUNK_ELEMENTS // per_problem))
    limit = 1 << (limit.bit_length() - 1)
    want = 1 << max(0, int(num_problems) - 1).bit_length()
    return int(min(limit, want))


@functools.lru_cache(maxsize=64)
def compiled_p_values(cfg: CoreConfig):
    """``jit`` of ``(keys (B,), states (B, N), obs (B, N, *ev), lengths (B,), new_obs (B, H, *ev), params)
    -> p-values (B, K**H)`` (``vmap`` over problems), cached per configuration; callers feed it
    fixed-size chunks (see ``chunk_size``)."""
    return jax.jit(jax.vmap(lambda k, x, y, n, yn, params: _problem_p_values(k, x, y, n, yn, params, cfg),
                            in_axes=(0, 0, 0, 0, 0, None)))


def p_values_in_chunks(cfg: CoreConfig, keys, states, obs, lengths, new_obs, params):
    """Run ``compiled_p_values`` over fixed-size chunks of problems (the last one padded)."""
    b, cap = states.shape[0], states.shape[1]
    size = chunk_size(cfg, cap, b)
    run = compiled_p_values(cfg)
    out = []
    for start in range(0, b, size):
        stop = min(start + size, b)
        pad = size - (stop - start)

        def part(a):
            a = a[start:stop]
            return jnp.concatenate([a, jnp.repeat(a[:1], pad, 0)], 0) if pad else a

        res = run(*(part(a) for a in (keys, states, obs, lengths, new_obs)), params)
        out.append(res[: stop - start])
    return jnp.concatenate(out, 0)
