r"""Exchangeable blocks of a Markov sequence and their permutations (Diaconis & Freedman, 1980).

Cut a sequence $z_{0:n-1}$ at its visits $s_1 < \dots < s_m = n-1$ to a reference value (the last
element is always a visit). The prefix $z_{0:s_1-1}$ stays in place, the $m-1$ **complete blocks**
$B_k = z_{s_k : s_{k+1}-1}$ each start at the reference value and are followed by it, and the final
element $z_{n-1}$ stays last. Any reordering of the complete blocks

$$z^\pi = \text{prefix} \oplus B_{\pi(1)} \oplus \dots \oplus B_{\pi(m-1)} \oplus z_{n-1}$$

keeps the start state and every transition count, hence has the same probability under every
mixture of Markov chains (and, when the blocks carry the observations attached to the hidden
states, under every mixture of hidden Markov models).

All functions work on fixed-size arrays of capacity $N$ with a dynamic length $n \le N$ (positions
$\ge n$ are padding and stay in place), so they ``jit`` and ``vmap`` over sequences of different
lengths, permutations and candidates. A permutation is described by a slot **order**: ``order[j]``
is the block placed in slot ``j``; slots ``j < num_blocks`` hold the complete blocks.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "BlockStructure",
    "block_structure",
    "random_order",
    "tuple_order",
    "enumerate_tuples",
    "tuple_is_valid",
    "permutation_indices",
    "window_indices",
    "random_final_blocks",
    "final_blocks_from_uniforms",
    "final_window",
]


class BlockStructure(NamedTuple):
    r"""Block decomposition of a sequence of capacity $N$ and length $n$.

    Attributes:
        block_id: ``(N,)`` int: $-1$ in the prefix, $k$ in complete block $k$ ($0 \le k <$
            ``num_blocks``), ``num_blocks`` at the final element, and beyond for padding.
        starts: ``(N,)`` start position of block $k$ (the $(k+1)$-th visit); ``length`` beyond the visits.
        lengths: ``(N,)`` length of complete block $k$; 0 for $k \ge$ ``num_blocks``.
        num_blocks: $m - 1$, the number of complete (permutable) blocks, scalar int.
        prefix_length: $s_1$, scalar int.
        length: $n$, scalar int.

    Examples:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([0, 1, 0, 1, 1, 0, 0, 1])
        >>> st = block_structure(x == x[-1], 8)
        >>> st.block_id.tolist(), int(st.num_blocks), int(st.prefix_length)
        ([-1, 0, 0, 1, 2, 2, 2, 3], 3, 1)
        >>> st.lengths[:3].tolist()
        [2, 1, 3]
    """

    block_id: jax.Array
    starts: jax.Array
    lengths: jax.Array
    num_blocks: jax.Array
    prefix_length: jax.Array
    length: jax.Array


def block_structure(is_visit, length) -> BlockStructure:
    r"""Cut a sequence at its visits to the reference value.

    Args:
        is_visit: ``(N,)`` bool, ``True`` where the sequence equals the reference value; entries at
            positions ``>= length`` are ignored. Position ``length - 1`` must be a visit (the
            reference value is taken from the last element); it is treated as one whatever its flag.
        length: $n$, the number of valid positions (int, may be traced).

    Returns:
        BlockStructure: the decomposition (see its attributes).

    Examples:
        >>> import jax.numpy as jnp
        >>> st = block_structure(jnp.array([True, False, True, True, False]), 4)   # last entry is padding
        >>> st.block_id.tolist(), int(st.num_blocks), st.lengths[:2].tolist()
        ([0, 0, 1, 2, 3], 2, [2, 1])
    """
    is_visit = jnp.asarray(is_visit, bool)
    cap = is_visit.shape[-1]
    pos = jnp.arange(cap)
    length = jnp.asarray(length)
    valid = pos < length
    vis = (is_visit & valid) | (pos == length - 1)
    count = jnp.cumsum(vis)
    num_visits = count[-1]
    block_id = jnp.where(valid, count - 1, num_visits - 1 + pos - length + 1)
    starts = jnp.nonzero(vis, size=cap, fill_value=length)[0]
    nxt = jnp.concatenate([starts[1:], jnp.full((1,), length, starts.dtype)])
    num_blocks = num_visits - 1
    lengths = jnp.where(pos < num_blocks, nxt - starts, 0)
    return BlockStructure(block_id, starts, lengths, num_blocks, starts[0], length)


def random_order(rng_key, structure: BlockStructure) -> jax.Array:
    r"""A uniformly random order of the complete blocks, ``(N,)``.

    Slots ``j < num_blocks`` hold a uniform random permutation of the complete blocks; the other slots
    hold the remaining ids in increasing order (they do not move).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> st = block_structure(jnp.array([0, 1, 0, 1, 1, 0, 0, 1]) == 1, 8)
        >>> order = random_order(jax.random.PRNGKey(0), st)
        >>> sorted(order[:3].tolist()), order[3:].tolist()
        ([0, 1, 2], [3, 4, 5, 6, 7])
    """
    cap = structure.block_id.shape[-1]
    slot = jnp.arange(cap)
    u = jax.random.uniform(rng_key, (cap,))
    keys = jnp.where(slot < structure.num_blocks, u, 2.0 + slot)
    return jnp.argsort(keys)


def tuple_order(blocks, structure: BlockStructure) -> jax.Array:
    r"""An order whose last slots hold the given blocks, ``(N,)``.

    With $r = \min(H, \text{num\_blocks})$, the last $r$ entries of ``blocks`` ``(H,)`` are placed, in
    that order, in the last $r$ complete-block slots (``blocks[-1]`` directly before the final element);
    the other complete blocks keep their relative order before them. Used to enumerate every distinct
    final window exactly (see [`enumerate_tuples`][markovppl.conformal.blocks.enumerate_tuples]).

    Examples:
        >>> import jax.numpy as jnp
        >>> st = block_structure(jnp.array([0, 1, 0, 1, 1, 0, 0, 1]) == 1, 8)
        >>> tuple_order(jnp.array([0]), st)[:3].tolist()
        [1, 2, 0]
    """
    blocks = jnp.asarray(blocks)
    h = blocks.shape[-1]
    cap = structure.block_id.shape[-1]
    slot = jnp.arange(cap)
    r = jnp.minimum(h, structure.num_blocks)
    keys = jnp.where(slot < structure.num_blocks, 0, 2 * h + 2 + slot)
    for j in range(h):  # static, h <= 4
        chosen = j >= h - r
        keys = keys.at[blocks[j]].set(jnp.where(chosen, 1 + j, keys[blocks[j]]))
    return jnp.argsort(keys, stable=True)


def enumerate_tuples(capacity: int, horizon: int) -> jax.Array:
    r"""Every $H$-tuple over ``range(capacity)``, ``(capacity**H, H)`` (static enumeration grid).

    Examples:
        >>> enumerate_tuples(3, 2).shape
        (9, 2)
    """
    grids = jnp.meshgrid(*([jnp.arange(capacity)] * horizon), indexing="ij")
    return jnp.stack([g.reshape(-1) for g in grids], -1)


def tuple_is_valid(blocks, structure: BlockStructure) -> jax.Array:
    r"""Whether an $H$-tuple is the canonical code of one ordered selection of final blocks.

    Valid iff its last $r = \min(H, \text{num\_blocks})$ entries are distinct complete blocks and its
    first $H - r$ entries are 0. Each ordered $r$-selection then has exactly one code, and under a
    uniform permutation of the blocks the last $r$ blocks are a uniform ordered $r$-selection.

    Examples:
        >>> import jax.numpy as jnp
        >>> st = block_structure(jnp.array([0, 1, 0, 1, 1, 0, 0, 1]) == 1, 8)
        >>> [bool(tuple_is_valid(jnp.array(t), st)) for t in ([0, 1], [1, 1], [0, 3])]
        [True, False, False]
    """
    blocks = jnp.asarray(blocks)
    h = blocks.shape[-1]
    r = jnp.minimum(h, structure.num_blocks)
    ok = jnp.array(True)
    for j in range(h):
        chosen = j >= h - r
        ok = ok & jnp.where(chosen, blocks[j] < structure.num_blocks, blocks[j] == 0)
        for i in range(j):
            ok = ok & ~((i >= h - r) & (blocks[i] == blocks[j]))
    return ok


def permutation_indices(structure: BlockStructure, order) -> jax.Array:
    r"""Gather indices of the permuted sequence: $z^\pi = z[\text{idx}]$, ``(N,)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([0, 1, 0, 1, 1, 0, 0, 1])
        >>> st = block_structure(x == 1, 8)
        >>> idx = permutation_indices(st, jnp.array([2, 1, 0, 3, 4, 5, 6, 7]))   # blocks in reverse order
        >>> idx.tolist(), x[idx].tolist()
        ([0, 4, 5, 6, 3, 1, 2, 7], [0, 1, 0, 0, 1, 1, 0, 1])
    """
    st = structure
    cap = st.block_id.shape[-1]
    pos = jnp.arange(cap)
    order = jnp.asarray(order)
    rank = jnp.zeros(cap, order.dtype).at[order].set(jnp.arange(cap, dtype=order.dtype))
    slot_len = jnp.where(pos < st.num_blocks, st.lengths[order], 0)
    offset = jnp.cumsum(slot_len) - slot_len
    b = jnp.clip(st.block_id, 0, cap - 1)
    moves = (st.block_id >= 0) & (st.block_id < st.num_blocks)
    new_pos = jnp.where(moves, st.prefix_length + offset[rank[b]] + pos - st.starts[b], pos)
    return jnp.zeros(cap, pos.dtype).at[new_pos].set(pos)


def window_indices(structure: BlockStructure, order, horizon: int, shift: int = 0) -> jax.Array:
    r"""Indices of the last $H + 1$ elements of $z^\pi$, ``(H + 1,)``: positions $n-1-H-s .. n-1-s$.

    ``shift`` $s = 0$ gives the window that ends at the final element (the corrected construction);
    $s = 1$ reproduces the off-by-one of the published reference code (private baseline only).

    Examples:
        >>> import jax.numpy as jnp
        >>> st = block_structure(jnp.array([0, 1, 0, 1, 1, 0, 0, 1]) == 1, 8)
        >>> window_indices(st, jnp.array([2, 1, 0, 3, 4, 5, 6, 7]), 2).tolist()
        [1, 2, 7]
    """
    idx = permutation_indices(structure, order)
    return jax.lax.dynamic_slice(idx, (structure.length - 1 - horizon - shift,), (horizon + 1,))


def random_final_blocks(rng_key, structure: BlockStructure, size: int) -> jax.Array:
    r"""The last blocks of a uniform random block permutation, as a canonical ``(size,)`` code.

    Draws, without replacement, the $r = \min(\text{size}, \text{num\_blocks})$ blocks that a
    uniformly random permutation puts last (``out[-1]`` directly before the final element), in
    $O(\text{size}^2)$ work independent of the sequence length; the first ``size - r`` entries are 0
    (the code of [`tuple_is_valid`][markovppl.conformal.blocks.tuple_is_valid]).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> st = block_structure(jnp.array([0, 1, 0, 1, 1, 0, 0, 1]) == 1, 8)
        >>> code = random_final_blocks(jax.random.PRNGKey(0), st, 2)
        >>> bool(tuple_is_valid(code, st))
        True
    """
    return final_blocks_from_uniforms(jax.random.uniform(rng_key, (size,)), structure)


def final_blocks_from_uniforms(u, structure: BlockStructure) -> jax.Array:
    r"""[`random_final_blocks`][markovppl.conformal.blocks.random_final_blocks] driven by given uniforms
    ``u`` ``(size,)`` (so that many draws can share one call of the random number generator).

    Examples:
        >>> import jax.numpy as jnp
        >>> st = block_structure(jnp.array([0, 1, 0, 1, 1, 0, 0, 1]) == 1, 8)
        >>> final_blocks_from_uniforms(jnp.array([0.1, 0.9]), st).tolist()   # last block 0, then block 2
        [2, 0]
    """
    u = jnp.asarray(u)
    size = u.shape[-1]
    nb = structure.num_blocks
    r = jnp.minimum(size, nb)
    out = jnp.zeros(size, structure.starts.dtype)
    drawn = []
    for j in range(size):  # static, size <= 5
        avail = jnp.maximum(nb - j, 1)
        val = jnp.minimum(jnp.floor(u[j] * avail).astype(out.dtype), avail - 1)
        if drawn:
            for c in jnp.sort(jnp.stack(drawn)):  # skip the blocks drawn already (ascending)
                val = val + (val >= c)
        drawn.append(val)
        out = out.at[size - 1 - j].set(jnp.where(j < r, val, 0))
    return out


def final_window(structure: BlockStructure, blocks, horizon: int, shift: int = 0) -> jax.Array:
    r"""Indices of the window $z^\pi_{n-1-H-s \,..\, n-1-s}$ of a permutation given by its last blocks, ``(H + 1,)``.

    ``blocks`` ``(H + s,)`` is a canonical code (see
    [`tuple_is_valid`][markovppl.conformal.blocks.tuple_is_valid]) of the blocks the permutation puts
    last; the window depends on nothing else. Equal to ``window_indices(structure,
    tuple_order(blocks, structure), horizon, shift)`` in $O(H^2)$ work.

    Examples:
        >>> import jax.numpy as jnp
        >>> st = block_structure(jnp.array([0, 1, 0, 1, 1, 0, 0, 1]) == 1, 8)
        >>> final_window(st, jnp.array([1, 0]), 2).tolist()      # ... B1, B0, final: (3), (1, 2), 7
        [1, 2, 7]
        >>> window_indices(st, tuple_order(jnp.array([1, 0]), st), 2).tolist()
        [1, 2, 7]
    """
    st = structure
    blocks = jnp.asarray(blocks)
    size = blocks.shape[-1]
    r = jnp.minimum(size, st.num_blocks)
    chosen = jnp.arange(size) >= size - r
    lens = jnp.where(chosen, st.lengths[blocks], 0)[::-1]  # index 0 = the last block
    back_blocks = blocks[::-1]
    cum = jnp.cumsum(lens)
    total = cum[-1]
    out = []
    for j in range(horizon + shift, shift - 1, -1):  # back-offsets, oldest first
        if j == 0:
            out.append(st.length - 1)
            continue
        i = jnp.minimum(jnp.sum(cum < j), size - 1)  # first block whose cumulative length reaches j
        blk = back_blocks[i]
        within = j - (cum[i] - lens[i])
        src = jnp.where(j <= total, st.starts[blk] + st.lengths[blk] - within, st.prefix_length - (j - total))
        out.append(src)
    return jnp.stack([jnp.asarray(o, st.starts.dtype) for o in out])
