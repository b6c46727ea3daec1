r"""Static topology of a rooted tree and its level-ordered execution plan.

A [`Tree`][markovppl.graph.topology.Tree] holds only structure (numpy arrays, never traced): node
names, the parent of every node, optional fixed branch lengths. Nodes are stored in **preorder**
(the root is node 0, every parent comes before its children, children in the order given), so the
edge into node $v$ is edge $v - 1$ and every per-edge parameter array has ``num_nodes - 1`` rows.

The plan groups nodes by their **height** (distance in edges to the deepest leaf below them): every
child has a smaller height than its parent, so the backward filter runs level by level from the
leaves up (height 0, 1, ...) and forward guiding runs the same levels top down. Levels are cut into
chunks of one common width ([`Tree.schedule`][markovppl.graph.topology.Tree.schedule]), so a whole
sweep is a single ``lax.scan`` (one traced loop body, whatever the shape of the tree) whose steps
process up to ``width`` nodes at once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["Tree", "from_parents", "STEP_COST"]

#: fixed cost of one scan step, in units of one node's work, used to choose the plan's width
STEP_COST = 32


def _fmt_names(names, limit=5) -> str:
    names = [repr(n) for n in names]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


class Tree:
    r"""A rooted tree (static structure; hashable by identity so that it can be pytree aux data).

    Build one with [`from_parents`][markovppl.graph.topology.from_parents],
    [`from_newick`][markovppl.graph.newick.from_newick], [`from_networkx`][markovppl.graph.nx.from_networkx]
    or the builders in [`markovppl.graph.builders`][markovppl.graph.builders].

    Attributes:
        names: node names, in preorder (root first).
        parent: ``(n,)`` int array, parent index of each node (``-1`` at the root).
        lengths: ``(n,)`` float array of fixed branch lengths (length of the edge into each node;
            ``nan`` where none was given, ``0`` at the root).
        leaves: indices of the leaves (nodes without children), in preorder.
        internal: indices of the internal nodes, in preorder.

    Examples:
        >>> t = from_parents([-1, 0, 0, 1, 1], names=["root", "a", "C", "A", "B"], lengths=[0, 1.0, 2.0, 0.5, 0.5])
        >>> t.num_nodes, [t.names[i] for i in t.leaves], t.height
        (5, ['A', 'B', 'C'], 2)
        >>> t.names, t.branch_lengths.tolist()          # preorder; edge v - 1 enters node v
        (('root', 'a', 'A', 'B', 'C'), [1.0, 0.5, 0.5, 2.0])
    """

    def __init__(self, names: Sequence[str], parent: np.ndarray, lengths: np.ndarray):
        self.names = tuple(names)
        self.parent = np.asarray(parent, np.int64)
        self.lengths = np.asarray(lengths, float)
        n = len(self.names)
        self.num_nodes = n
        counts = np.bincount(self.parent[1:], minlength=n) if n > 1 else np.zeros(n, int)
        self.num_children = counts
        self.leaves = np.flatnonzero(counts == 0)
        self.internal = np.flatnonzero(counts > 0)
        self.index = {name: i for i, name in enumerate(self.names)}
        # height: processed in reverse preorder, children before parents
        h = np.zeros(n, np.int64)
        for v in range(n - 1, 0, -1):
            p = self.parent[v]
            h[p] = max(h[p], h[v] + 1)
        self.node_height = h
        self.height = int(h[0]) if n else 0
        d = np.zeros(n, np.int64)
        for v in range(1, n):
            d[v] = d[self.parent[v]] + 1
        self.depth = d
        self._schedule = None

    # ------------------------------------------------------------------ basics
    def __repr__(self) -> str:
        return f"Tree(num_nodes={self.num_nodes}, num_leaves={len(self.leaves)}, height={self.height})"

    @property
    def num_edges(self) -> int:
        """Number of edges, ``num_nodes - 1``; edge ``e`` enters node ``e + 1``."""
        return self.num_nodes - 1

    @property
    def branch_lengths(self) -> np.ndarray:
        """Fixed branch lengths per edge, ``(num_edges,)``; raises if some edge has none.

        Examples:
            >>> from_parents([-1, 0, 0], lengths=[0.0, 1.0, 2.5]).branch_lengths.tolist()
            [1.0, 2.5]
        """
        ell = self.lengths[1:]
        if np.any(np.isnan(ell)):
            bad = [self.names[v + 1] for v in np.flatnonzero(np.isnan(ell))]
            raise ValueError(f"no branch length on the edge(s) into {_fmt_names(bad)}; give lengths or pass durations explicitly")
        return ell.copy()

    def nodes(self, names) -> np.ndarray:
        """Indices of nodes given by name (or already as indices), validated.

        Examples:
            >>> from_parents([-1, 0, 0], names=["r", "x", "y"]).nodes(["y", "x"]).tolist()
            [2, 1]
        """
        out = []
        for name in names:
            if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
                if not 0 <= int(name) < self.num_nodes:
                    raise ValueError(f"node index {name} out of range for a tree with {self.num_nodes} nodes")
                out.append(int(name))
            elif name in self.index:
                out.append(self.index[name])
            else:
                raise ValueError(f"no node named {name!r} in the tree")
        out = np.asarray(out, np.int64)
        if len(np.unique(out)) != len(out):
            dup = [self.names[i] for i in np.unique(out) if np.sum(out == i) > 1]
            raise ValueError(f"nodes listed more than once: {_fmt_names(dup)}")
        return out

    def children(self, v: int) -> np.ndarray:
        """Children of node ``v`` in order.

        Examples:
            >>> from_parents([-1, 0, 0, 1]).children(0).tolist()    # preorder: node 2 is the child of node 1
            [1, 3]
        """
        return np.flatnonzero(self.parent == v)

    def path_length_matrix(self, nodes=None, durations=None) -> np.ndarray:
        r"""Shared path lengths $S_{ij}$ = distance from the root to the most recent common ancestor of
        nodes $i$ and $j$ (the Brownian-motion covariance of unit rate); ``(k, k)`` for ``k`` nodes.

        Examples:
            >>> t = from_parents([-1, 0, 0, 1, 1], lengths=[0, 1.0, 2.0, 0.5, 0.5])
            >>> t.path_length_matrix(t.leaves).tolist()
            [[1.5, 1.0, 0.0], [1.0, 1.5, 0.0], [0.0, 0.0, 2.0]]
        """
        ell = np.concatenate([[0.0], np.asarray(durations, float)]) if durations is not None else np.nan_to_num(self.lengths)
        nodes = np.arange(self.num_nodes) if nodes is None else np.asarray(nodes)
        ancestors = np.zeros((self.num_nodes, self.num_nodes), bool)
        ancestors[0, 0] = True
        for v in range(1, self.num_nodes):
            ancestors[v] = ancestors[self.parent[v]]
            ancestors[v, v] = True
        a = ancestors[nodes].astype(float) * ell[None, :]
        return a @ ancestors[nodes].T.astype(float)

    # ------------------------------------------------------------------ plan
    def levels(self) -> list[np.ndarray]:
        """Node indices grouped by height, from the leaves (height 0) to the root.

        Examples:
            >>> [lv.tolist() for lv in from_parents([-1, 0, 0, 1, 1]).levels()]
            [[2, 3, 4], [1], [0]]
        """
        order = np.argsort(self.node_height, kind="stable")
        bounds = np.searchsorted(self.node_height[order], np.arange(self.height + 2))
        return [order[bounds[k]:bounds[k + 1]] for k in range(self.height + 1)]

    def schedule(self) -> np.ndarray:
        r"""The execution plan: a ``(num_steps, width)`` array of node indices, one scan step per row.

        Each level (nodes of equal height) is cut into chunks of ``width`` nodes, and the chunks are
        listed level by level from the leaves up; padding entries hold ``num_nodes`` (a dummy node).
        Every node comes after all its children, so one ``lax.scan`` over the rows runs the backward
        filter, and the reversed rows run forward guiding. The width is the power of two minimising
        ``num_steps * (width + STEP_COST)``: wide, shallow trees get wide steps, deep ladders narrow
        ones, and the padded work stays within a small factor of ``num_nodes``.

        Examples:
            >>> from_parents([-1, 0, 0, 1, 1]).schedule().tolist()     # levels [2, 3, 4], [1], [0]; 5 = padding
            [[2, 3, 4], [1, 5, 5], [0, 5, 5]]
        """
        if self._schedule is not None:
            return self._schedule
        levels = self.levels()
        widths = np.array([len(lv) for lv in levels])
        best = None
        w = 1
        while True:
            steps = int(np.sum(-(-widths // w)))
            cost = steps * (w + STEP_COST)
            if best is None or cost < best[0]:
                best = (cost, w)
            if w >= widths.max():
                break
            w *= 2
        w = min(best[1], int(widths.max()))
        rows = []
        for lv in levels:
            for start in range(0, len(lv), w):
                row = np.full(w, self.num_nodes, np.int32)
                chunk = lv[start:start + w]
                row[: len(chunk)] = chunk
                rows.append(row)
        self._schedule = np.stack(rows)
        return self._schedule

    def padded_work(self) -> int:
        """Number of (padded) node slots the plan processes; compare with ``num_nodes``.

        Examples:
            >>> from_parents([-1, 0, 0, 1, 1]).padded_work()
            9
        """
        return int(self.schedule().size)


def from_parents(parents, names=None, lengths=None) -> Tree:
    r"""A tree from the parent index of every node (``-1`` for the root), any node order.

    Nodes are renumbered in preorder (root first, children in increasing original index).

    Args:
        parents: ``(n,)`` parent indices; exactly one entry is ``-1``.
        names: optional node names (default ``"n0"``, ``"n1"``, ... by original index).
        lengths: optional ``(n,)`` branch lengths (edge into each node; the root's entry is ignored;
            ``nan`` = not given).

    Raises:
        ValueError: no or several roots, a cycle (nodes not reachable from the root), an out-of-range
            parent, duplicate names, negative or non-finite lengths.

    Examples:
        >>> t = from_parents([1, -1, 1], names=["x", "root", "y"], lengths=[0.3, 0.0, 0.7])
        >>> t.names, t.parent.tolist(), t.lengths.tolist()
        (('root', 'x', 'y'), [-1, 0, 0], [0.0, 0.3, 0.7])
    """
    parents = np.asarray(parents)
    if parents.ndim != 1 or parents.size == 0:
        raise ValueError(f"parents must be a non-empty 1-d array, got shape {parents.shape}")
    if not np.issubdtype(parents.dtype, np.integer):
        raise ValueError("parents must hold integer node indices (-1 for the root)")
    n = parents.size
    names = [f"n{i}" for i in range(n)] if names is None else [str(x) for x in names]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} nodes")
    if len(set(names)) != n:
        seen, dup = set(), []
        for x in names:
            (dup.append(x) if x in seen else seen.add(x))
        raise ValueError(f"node names must be unique; repeated: {_fmt_names(dup)}")
    if np.any((parents < -1) | (parents >= n)):
        raise ValueError(f"parent indices must lie in [-1, {n - 1}]")
    roots = np.flatnonzero(parents == -1)
    if len(roots) != 1:
        raise ValueError(
            "a tree needs exactly one root (parent -1), found "
            + ("none (every node has a parent, so the graph has a cycle)" if len(roots) == 0 else f"{len(roots)}: {_fmt_names([names[r] for r in roots])}")
        )
    if np.any(parents == np.arange(n)):
        raise ValueError(f"node {names[int(np.flatnonzero(parents == np.arange(n))[0])]!r} is its own parent (a cycle)")
    lengths = np.full(n, np.nan) if lengths is None else np.asarray(lengths, float).copy()
    if lengths.shape != (n,):
        raise ValueError(f"lengths must have shape ({n},), got {lengths.shape}")
    given = ~np.isnan(lengths)
    given[roots[0]] = False
    if np.any(~np.isfinite(lengths[given])):
        raise ValueError("branch lengths must be finite")
    if np.any(lengths[given] < 0):
        bad = [names[i] for i in np.flatnonzero(given & (lengths < 0))]
        raise ValueError(f"negative branch length on the edge(s) into {_fmt_names(bad)}")
    # children lists, preorder by an explicit stack
    order = np.argsort(parents, kind="stable")
    sorted_par = parents[order]
    starts = np.searchsorted(sorted_par, np.arange(n))
    stops = np.searchsorted(sorted_par, np.arange(n), side="right")
    pre, stack = [], [int(roots[0])]
    while stack:
        v = stack.pop()
        pre.append(v)
        stack.extend(order[starts[v]:stops[v]][::-1].tolist())
        if len(pre) > n:
            break
    if len(pre) != n:
        unreached = sorted(set(range(n)) - set(pre))
        raise ValueError(f"nodes {_fmt_names([names[i] for i in unreached])} are not reachable from the root (a cycle)")
    pre = np.asarray(pre)
    new_index = np.empty(n, np.int64)
    new_index[pre] = np.arange(n)
    new_parent = np.where(parents[pre] >= 0, new_index[np.maximum(parents[pre], 0)], -1)
    new_lengths = lengths[pre]
    new_lengths[0] = 0.0
    return Tree([names[i] for i in pre], new_parent, new_lengths)
