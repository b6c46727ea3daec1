r"""DAGs with nodes of several parents: a forest of trees joined at user-guided nodes.

A node $v$ with parents $p_1, \dots, p_k$ (``k > 1``) has one *joint* kernel
$\kappa_v(x_{p_1}, \dots, x_{p_k}; dx_v)$ acting on the joint parent state (the concatenation
$(x_{p_1}, \dots, x_{p_k})$ for Gaussian states, the row-major joint index $x_{p_1} K^{k-1} + \dots + x_{p_k}$
for $K$-state chains). The backward filter pulls $h_v$ back through $\kappa_v$ to a message
$(\kappa_v h_v)(x_{p_1}, \dots, x_{p_k})$ on the joint parent state, which couples the parents: exact
filtering would have to carry it up through both ancestries. BFFG replaces it by a product of one
message per parent, $\tilde h_{v \to p_1}(x_{p_1}) \cdots \tilde h_{v \to p_k}(x_{p_k})$, produced by a
**guiding function** the user supplies for the node (e.g.
[`anchored_guide`][markovppl.graph.dag.anchored_guide]). Forward guiding then draws $x_v$ from the true
kernel tilted by $h_v$ and corrects with the exact log-weight
$\log(\kappa_v h_v)(x_{\mathrm{pa}(v)}) - \sum_i \log \tilde h_{v \to p_i}(x_{p_i})$
(see [`GuidedDAG`][markovppl.families.dag.GuidedDAG]).

Removing the edges into multi-parent nodes leaves a forest of trees ("components"), rooted at the
root of the graph and at every multi-parent node; each runs on the level-ordered tree plan. The number
of components is the number of multi-parent nodes plus one, and only the loop over components is a
Python loop.

Graph attributes (``networkx.DiGraph``):

* edges into single-parent nodes: ``kernel`` and optional ``length``, as for
  [`from_networkx`][markovppl.graph.nx.from_networkx];
* a multi-parent node: ``kernel`` (the joint kernel), ``guide`` (the guiding function) and optional
  ``parents`` (their order in the joint state; default: ``sorted`` by name as strings); the edges into it
  carry no kernel;
* any node: ``obs``, its observation kernel (``LinearGaussian`` for Gaussian states, ``Categorical``
  emission matrix ``(K, M)`` for finite states).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp

from ..messages import categorical as cm
from ..messages import gaussian as gm
from .nx import GraphModel, check_dag, from_networkx
from .topology import _fmt_names

__all__ = ["DAGGraph", "Component", "JoinNode", "dag_from_networkx", "anchored_guide"]


class JoinNode(NamedTuple):
    r"""A node with several parents.

    Attributes:
        name: the node.
        parents: its parents, in the order of the joint state.
        kernel: joint kernel from the joint parent state to the node.
        guide: guiding function, joint message on the parents -> tuple of one message per parent.
    """

    name: str
    parents: tuple
    kernel: object
    guide: Callable


class Component(NamedTuple):
    r"""One tree of the forest: a compiled [`GraphModel`][markovppl.graph.nx.GraphModel], or for a
    single node without children ``graph = None``.

    Attributes:
        names: node names in the component's preorder (its root first).
        graph: the compiled tree (``None`` for a single node).
        obs: ``{name: observation kernel}`` of its observed nodes.
    """

    names: tuple
    graph: GraphModel | None
    obs: dict


class DAGGraph(NamedTuple):
    r"""A compiled DAG: components in topological order (the root's first), and the join nodes.

    Attributes:
        components: tuple of [`Component`][markovppl.graph.dag.Component]; component ``c > 0`` is rooted
            at ``joins[c - 1].name``.
        joins: tuple of [`JoinNode`][markovppl.graph.dag.JoinNode], in the order of their components.
        names: all node names: the components' preorders concatenated (rows of latent outputs).
        observed: names of the observed nodes, in the order of ``names`` (rows of the value).

    Examples:
        >>> DAGGraph._fields
        ('components', 'joins', 'names', 'observed')
    """

    components: tuple
    joins: tuple
    names: tuple
    observed: tuple

    @property
    def index(self) -> dict:
        """Row of each node name in ``names``."""
        return {name: i for i, name in enumerate(self.names)}


def _component(graph, root, members) -> Component:
    sub = graph.subgraph(members).copy()
    obs = {str(n): graph.nodes[n]["obs"] for n in members if graph.nodes[n].get("obs") is not None}
    if len(members) == 1:
        return Component((str(root),), None, obs)
    for n in sub.nodes:          # the tree compiler takes observation kernels from the edges' graph
        sub.nodes[n].pop("obs", None)
    model = from_networkx(sub)
    return Component(model.tree.names, model, obs)


def dag_from_networkx(graph) -> DAGGraph:
    r"""Validate a directed acyclic graph and compile it to a [`DAGGraph`][markovppl.graph.dag.DAGGraph].

    Raises:
        ValueError: not a DAG, several roots, a node with several parents but no ``guide`` or no
            ``kernel`` node attribute (exact backward filtering cannot handle it: supply the guiding
            function), an edge into such a node that carries a ``kernel``, a ``parents`` attribute that
            does not list the node's parents, the errors of
            [`from_networkx`][markovppl.graph.nx.from_networkx] for the tree parts.

    Examples:
        >>> import networkx as nx, jax.numpy as jnp
        >>> from markovppl.kernels import LinearGaussian
        >>> from markovppl.kernels.continuous import BrownianMotion
        >>> g = nx.DiGraph()
        >>> g.add_edge("r", "a", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
        >>> g.add_edge("r", "b", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
        >>> g.add_edges_from([("a", "c"), ("b", "c")])              # c has two parents
        >>> g.nodes["c"].update(kernel=LinearGaussian(jnp.array([[0.5, 0.5]]), jnp.zeros(1), jnp.eye(1)),
        ...                     guide=anchored_guide(jnp.zeros((2, 1))), obs=LinearGaussian(jnp.eye(1), jnp.zeros(1), jnp.eye(1)))
        >>> dag = dag_from_networkx(g)
        >>> dag.names, [j.parents for j in dag.joins], dag.observed
        (('r', 'a', 'b', 'c'), [('a', 'b')], ('c',))
    """
    import networkx as nx

    check_dag(graph, "dag_from_networkx")
    roots = [v for v in graph.nodes if graph.in_degree(v) == 0]
    if len(roots) != 1:
        raise ValueError(f"the graph must have exactly one root (node without parents), found {len(roots)}: {_fmt_names(roots)}")
    if len(set(map(str, graph.nodes))) != graph.number_of_nodes():
        raise ValueError("node names must be distinct as strings")
    joins = {}
    for v in graph.nodes:
        ps = list(graph.predecessors(v))
        if len(ps) < 2:
            continue
        attrs = graph.nodes[v]
        if attrs.get("guide") is None or attrs.get("kernel") is None:
            raise ValueError(
                f"node {v!r} has {len(ps)} parents ({_fmt_names(ps)}): backward filtering cannot pass its message to "
                "several parents exactly. Give the node a joint 'kernel' (on the joint parent state) and a 'guide' "
                "function that splits the pulled-back message into one message per parent (e.g. "
                "markovppl.graph.dag.anchored_guide)")
        for p in ps:
            if graph.edges[p, v].get("kernel") is not None:
                raise ValueError(f"edge {p!r} -> {v!r} carries a kernel, but {v!r} has several parents: put one joint "
                                 "'kernel' on the node instead")
        order = attrs.get("parents")
        if order is None:
            order = sorted(ps, key=str)
        elif sorted(map(str, order)) != sorted(map(str, ps)):
            raise ValueError(f"node {v!r}: 'parents' {list(order)} does not list its parents {ps}")
        else:
            by_str = {str(p): p for p in ps}
            order = [by_str[str(p)] for p in order]
        joins[v] = JoinNode(str(v), tuple(str(p) for p in order), attrs["kernel"], attrs["guide"])
    forest = graph.copy()
    forest.remove_edges_from([(p, v) for v in joins for p in list(graph.predecessors(v))])
    # components in a topological order of the graph: every join node after all of its parents
    rank = {v: i for i, v in enumerate(nx.topological_sort(graph))}
    starts = sorted([roots[0], *joins], key=rank.__getitem__)
    components, join_list = [], []
    for s in starts:
        members = [s, *nx.descendants(forest, s)]
        components.append(_component(graph, s, members))
        if s in joins:
            join_list.append(joins[s])
    # a join node's parents must lie in earlier components (true for a topological order of the roots)
    names = tuple(n for c in components for n in c.names)
    observed = tuple(n for n in names if any(n in c.obs for c in components))
    return DAGGraph(tuple(components), tuple(join_list), names, observed)


def anchored_guide(anchors) -> Callable:
    r"""Guiding function that fixes the other parents at anchor states.

    For parent $i$ it returns $\tilde h_{v\to p_i}(x) = (\kappa_v h_v)(a_1, \dots, a_{i-1}, x, a_{i+1}, \dots, a_k)$:
    exact when the node depends on parent $i$ only (the other parents then get constant messages), an
    approximation corrected by the importance weight otherwise. Good anchors are prior or rough
    posterior means of the parents.

    Args:
        anchors: ``(k, d)`` parent states for Gaussian states, or ``(k,)`` integer states for finite ones.

    Examples:
        >>> import jax.numpy as jnp
        >>> from markovppl.messages import gaussian_message
        >>> joint = gaussian_message(0.0, jnp.array([1.0, 2.0]), jnp.eye(2))   # log h(x1, x2) = x1 + 2 x2 - |x|^2 / 2
        >>> h1, h2 = anchored_guide(jnp.array([[0.0], [1.0]]))(joint)
        >>> float(h1.c), h1.F.tolist(), float(h2.c), h2.F.tolist()              # h1 at x2 = 1, h2 at x1 = 0
        (1.5, [1.0], 0.0, [2.0])
    """
    anchors = jnp.asarray(anchors)

    def _guide(joint):
        k = anchors.shape[0]
        if isinstance(joint, gm.GaussianMessage):
            d = anchors.shape[-1]
            flat = anchors.reshape(-1)
            out = []
            for i in range(k):
                select = jnp.zeros((k * d, d), flat.dtype).at[i * d:(i + 1) * d].set(jnp.eye(d, dtype=flat.dtype))
                offset = flat.at[i * d:(i + 1) * d].set(0.0)
                out.append(gm.affine_substitute(joint, select, offset))
            return tuple(out)
        if isinstance(joint, cm.CategoricalMessage):
            num = joint.log_h.shape[-1]
            size = int(round(num ** (1.0 / k)))
            grid = joint.log_h.reshape((size,) * k)
            out = []
            for i in range(k):
                index = tuple(slice(None) if j == i else anchors[j] for j in range(k))
                out.append(cm.CategoricalMessage(grid[index], joint.log_norm))
            return tuple(out)
        raise TypeError(f"anchored_guide: unknown message type {type(joint).__name__}")

    return _guide


def joint_state(parts, num_states: int | None):
    """Joint parent state: concatenation (Gaussian, ``num_states=None``) or row-major index."""
    if num_states is None:
        return jnp.concatenate(parts, -1)
    out = jnp.zeros_like(parts[0])
    for p in parts:
        out = out * num_states + p
    return out
