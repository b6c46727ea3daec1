r"""Small builders for common tree shapes (for examples, tests and benchmarks)."""

from __future__ import annotations

import numpy as np

from .topology import Tree, from_parents

__all__ = ["from_edges", "balanced_tree", "caterpillar_tree", "random_tree"]


def from_edges(edges, root=None) -> Tree:
    r"""A tree from ``(parent, child)`` or ``(parent, child, length)`` tuples of node names.

    Examples:
        >>> t = from_edges([("r", "a", 1.0), ("r", "b", 2.0), ("a", "c", 0.5)])
        >>> t.names, t.branch_lengths.tolist()
        (('r', 'a', 'c', 'b'), [1.0, 0.5, 2.0])
    """
    names, index = [], {}

    def _id(x):
        x = str(x)
        if x not in index:
            index[x] = len(names)
            names.append(x)
        return index[x]

    pairs = []
    for e in edges:
        if len(e) not in (2, 3):
            raise ValueError(f"an edge is (parent, child) or (parent, child, length), got {e!r}")
        pairs.append((_id(e[0]), _id(e[1]), float(e[2]) if len(e) == 3 else np.nan))
    if root is not None:
        _id(root)
    parents = np.full(len(names), -1, np.int64)
    lengths = np.full(len(names), np.nan)
    for p, c, ell in pairs:
        if parents[c] != -1:
            raise ValueError(f"node {names[c]!r} has several parents ({names[parents[c]]!r}, {names[p]!r}); a tree needs one")
        parents[c], lengths[c] = p, ell
    return from_parents(parents, names, lengths)


def balanced_tree(depth: int, arity: int = 2, length: float = 1.0) -> Tree:
    r"""The complete ``arity``-ary tree of the given depth, every branch of ``length``.

    Examples:
        >>> t = balanced_tree(3)
        >>> t.num_nodes, len(t.leaves), t.height
        (15, 8, 3)
    """
    if depth < 1 or arity < 1:
        raise ValueError("balanced_tree needs depth >= 1 and arity >= 1")
    n = (arity ** (depth + 1) - 1) // (arity - 1) if arity > 1 else depth + 1
    parents = np.concatenate([[-1], (np.arange(1, n) - 1) // arity])
    return from_parents(parents, lengths=np.full(n, float(length)))


def caterpillar_tree(num_leaves: int, length: float = 1.0) -> Tree:
    r"""The maximally unbalanced (ladder) binary tree: height ``num_leaves - 1``.

    Examples:
        >>> t = caterpillar_tree(4)
        >>> t.num_nodes, len(t.leaves), t.height
        (7, 4, 3)
    """
    if num_leaves < 2:
        raise ValueError("caterpillar_tree needs at least 2 leaves")
    parents = [-1]
    spine = 0
    for k in range(num_leaves - 1):
        parents.append(spine)  # a leaf
        parents.append(spine)  # next spine node (the last one is a leaf)
        spine = len(parents) - 1
    return from_parents(np.asarray(parents), lengths=np.full(len(parents), float(length)))


def random_tree(num_leaves: int, seed: int = 0, mean_length: float = 1.0) -> Tree:
    r"""A random rooted binary tree: leaves are joined in random pairs (the coalescent topology), each
    branch length exponential with mean ``mean_length``. Leaves are named ``t0``, ``t1``, ...

    Examples:
        >>> t = random_tree(50, seed=1)
        >>> len(t.leaves), t.num_nodes, bool((t.branch_lengths > 0).all())
        (50, 99, True)
    """
    if num_leaves < 2:
        raise ValueError("random_tree needs at least 2 leaves")
    rng = np.random.default_rng(seed)
    n = 2 * num_leaves - 1
    parents = np.full(n, -1, np.int64)
    active = list(range(num_leaves))
    nxt = num_leaves
    while len(active) > 1:
        i, j = rng.choice(len(active), 2, replace=False)
        a, b = active[i], active[j]
        parents[a] = parents[b] = nxt
        for k in sorted((i, j), reverse=True):  # swap-remove, O(1)
            active[k] = active[-1]
            active.pop()
        active.append(nxt)
        nxt += 1
    lengths = rng.exponential(mean_length, n)
    names = [f"t{i}" for i in range(num_leaves)] + [f"n{i}" for i in range(num_leaves, n)]
    return from_parents(parents, names, lengths)
