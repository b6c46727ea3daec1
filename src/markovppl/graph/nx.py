r"""Trees from ``networkx.DiGraph`` objects whose edges (and observed nodes) carry kernels.

Edge attributes:

* ``kernel`` (required): the edge's Markov kernel, e.g.
  [`OrnsteinUhlenbeck`][markovppl.kernels.continuous.OrnsteinUhlenbeck],
  [`BrownianMotion`][markovppl.kernels.continuous.BrownianMotion],
  [`LinearGaussian`][markovppl.kernels.gaussian.LinearGaussian] or
  [`Categorical`][markovppl.kernels.finite.Categorical];
* ``length`` (optional): a fixed branch length, used as the kernel's ``duration`` where that field is
  ``None``. To learn branch lengths, give them as ``duration`` arrays instead (see
  [`EdgeKernels`][markovppl.graph.edges.EdgeKernels]).

Node attribute ``obs`` (optional): an observation kernel (e.g. ``LinearGaussian(L, b, R)``); the nodes
that carry one are the observed nodes, in preorder.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .edges import EdgeKernels, fill_durations, stack_kernels
from .topology import Tree, _fmt_names, from_parents

__all__ = ["GraphModel", "from_networkx"]


class GraphModel(NamedTuple):
    r"""A compiled graph: topology, grouped edge kernels, observed nodes and their observation kernels.

    Attributes:
        tree: the [`Tree`][markovppl.graph.topology.Tree].
        edges: [`EdgeKernels`][markovppl.graph.edges.EdgeKernels], one stacked kernel per kernel type.
        observed: names of the nodes with an ``obs`` attribute (preorder).
        obs: their observation kernels stacked along a leading axis (``None`` if no node has one).

    Examples:
        >>> GraphModel._fields
        ('tree', 'edges', 'observed', 'obs')
    """

    tree: Tree
    edges: EdgeKernels
    observed: tuple
    obs: object


def check_dag(graph, caller: str) -> None:
    """A non-empty ``networkx.DiGraph`` without cycles, or a ``ValueError`` that names the cycle."""
    import networkx as nx

    if not isinstance(graph, nx.DiGraph) or isinstance(graph, nx.MultiDiGraph):
        raise ValueError(f"{caller} needs a networkx.DiGraph, got {type(graph).__name__}")
    if graph.number_of_nodes() == 0:
        raise ValueError("the graph has no nodes")
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise ValueError(f"the graph has a cycle: {' -> '.join(str(u) for u, _ in cycle)} -> {cycle[0][0]}")


def from_networkx(graph) -> GraphModel:
    r"""Validate a directed graph and compile it to a [`GraphModel`][markovppl.graph.nx.GraphModel].

    Raises:
        ValueError: not a directed graph, no nodes, a cycle, several roots, a node with several
            parents (exact BFFG needs a tree; DAGs whose multi-parent nodes carry a guiding function
            compile with [`dag_from_networkx`][markovppl.graph.dag.dag_from_networkx]), an edge without ``kernel``, a
            negative or non-finite ``length``, or kernels of one type whose shapes differ.

    Examples:
        >>> import networkx as nx, jax.numpy as jnp
        >>> from markovppl.kernels.continuous import BrownianMotion
        >>> from markovppl.kernels import LinearGaussian
        >>> g = nx.DiGraph()
        >>> bm = BrownianMotion(jnp.eye(1))
        >>> g.add_edge("root", "a", kernel=bm, length=1.0)
        >>> g.add_edge("root", "b", kernel=bm, length=2.0)
        >>> g.nodes["a"]["obs"] = g.nodes["b"]["obs"] = LinearGaussian(jnp.eye(1), jnp.zeros(1), 0.1 * jnp.eye(1))
        >>> model = from_networkx(g)
        >>> model.tree.names, model.observed, model.edges.kernels[0].duration.tolist()
        (('root', 'a', 'b'), ('a', 'b'), [1.0, 2.0])
    """
    check_dag(graph, "from_networkx")
    multi = [(v, list(graph.predecessors(v))) for v in graph.nodes if graph.in_degree(v) > 1]
    if multi:
        v, ps = multi[0]
        raise ValueError(
            f"node {v!r} has {len(ps)} parents ({', '.join(map(repr, ps))}){' and ' + str(len(multi) - 1) + ' more nodes too' if len(multi) > 1 else ''}: "
            "exact backward filtering needs a tree, where every node has one parent. A node with several "
            "parents is only allowed with a user-supplied guiding function for it: give the node a joint 'kernel' "
            "and a 'guide' attribute and compile with markovppl.graph.dag_from_networkx (see GuidedDAG)."
        )
    roots = [v for v in graph.nodes if graph.in_degree(v) == 0]
    if len(roots) != 1:
        raise ValueError(f"the graph must have exactly one root (node without parents), found {len(roots)}: {_fmt_names(roots)}")
    nodes = list(graph.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    parents = np.full(len(nodes), -1, np.int64)
    lengths = np.full(len(nodes), np.nan)
    kernels = [None] * len(nodes)
    for u, w, attrs in graph.edges(data=True):
        if attrs.get("kernel") is None:
            raise ValueError(f"edge {u!r} -> {w!r} has no 'kernel' attribute")
        parents[index[w]] = index[u]
        kernels[index[w]] = attrs["kernel"]
        if attrs.get("length") is not None:
            lengths[index[w]] = float(attrs["length"])
    tree = from_parents(parents, [str(v) for v in nodes], lengths)
    if len(set(map(str, nodes))) != len(nodes):
        raise ValueError("node names must be distinct as strings")
    by_name = {str(v): v for v in nodes}
    ordered = [by_name[name] for name in tree.names]
    # group edge kernels by type, in edge order
    groups: dict[type, list[int]] = {}
    for e, v in enumerate(ordered[1:]):
        groups.setdefault(type(kernels[index[v]]), []).append(e)
    stacked, idx = [], []
    for typ, edge_ids in groups.items():
        ks = []
        for e in edge_ids:
            k = kernels[index[ordered[e + 1]]]
            if hasattr(k, "_fields") and "duration" in k._fields and k.duration is None:
                if np.isnan(tree.lengths[e + 1]):
                    raise ValueError(f"edge into {tree.names[e + 1]!r}: its {typ.__name__} kernel has no duration and the edge no 'length'")
                k = fill_durations(k, float(tree.lengths[e + 1]))
            ks.append(k)
        stacked.append(stack_kernels(ks))
        idx.append(edge_ids)
    observed = tuple(name for name in tree.names if graph.nodes[by_name[name]].get("obs") is not None)
    obs = stack_kernels([graph.nodes[by_name[name]]["obs"] for name in observed]) if observed else None
    return GraphModel(tree, EdgeKernels(stacked, idx), observed, obs)
