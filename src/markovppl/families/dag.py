r"""Guided models on DAGs: trees joined at nodes with several parents, each with a user guiding function.

With join nodes $v$ (parents $p_1, \dots, p_k$, joint kernel $\kappa_v$) guided by
$\tilde h_{v\to p_1} \cdots \tilde h_{v\to p_k}$ (see [`markovppl.graph.dag`][markovppl.graph.dag]),
the backward filter gives exact tree messages inside every component and a root message
$\tilde h_\text{root}$; forward guiding draws every tree edge exactly from its tilted kernel and each
join node from $\kappa_v(x_{\mathrm{pa}(v)}, dx_v)\,h_v(x_v) / (\kappa_v h_v)(x_{\mathrm{pa}(v)})$. The
guided law $P^\circ$ and the posterior differ by the weight

$$\frac{dP^*}{dP^\circ}(x) = \frac{\tilde Z}{p(y)} \prod_{v\ \text{join}}
  \frac{(\kappa_v h_v)(x_{\mathrm{pa}(v)})}{\prod_i \tilde h_{v\to p_i}(x_{p_i})},\qquad
  \tilde Z = \int \tilde h_\text{root}\, d\pi ,$$

(the tree factors telescope), so $p(y) = \tilde Z\, E^\circ[\prod_v w_v]$: guided importance sampling
is unbiased for the evidence whatever the guiding functions, and exact (constant weights) when they
factorise $\kappa_v h_v$ exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from .. import _linalg as la
from .. import _validation as v
from ..backward.rules import leaf, marginalize, pullback
from ..backward.tree import _evaluate, _finish, tree_backward_filter
from ..graph.dag import Component, DAGGraph, JoinNode, joint_state
from ..guided.rules import guide, guide_initial
from ..guided.tree import tree_forward_guide
from ..kernels.finite import Categorical
from ..kernels.gaussian import LinearGaussian
from ..kernels.initial import CategoricalLaw, GaussianLaw
from ..messages import categorical as cm
from ..messages import gaussian as gm
from .tree import _discrete_edges, _gaussian_edges

__all__ = ["GuidedDAG", "DAGMessages", "ImportanceEstimate"]


class DAGMessages(NamedTuple):
    r"""Backward-filter output on a DAG.

    Attributes:
        messages: per component, the fused messages of its nodes (leading axis: its nodes, preorder).
        guiding: per join node, the tuple of its per-parent messages $\tilde h_{v\to p_i}$.
        joint: per join node, the pulled-back joint message $(\kappa_v h_v)$ on its parents.
        log_evidence: $\log \tilde Z$, the guided-filter root evidence (exact when every guiding
            function is exact).

    Examples:
        >>> DAGMessages._fields
        ('messages', 'guiding', 'joint', 'log_evidence')
    """

    messages: tuple
    guiding: tuple
    joint: tuple
    log_evidence: jax.Array


class ImportanceEstimate(NamedTuple):
    r"""A guided importance-sampling evidence estimate.

    Attributes:
        log_evidence: $\log\big(\tilde Z \cdot \tfrac1S\sum_s w_s\big)$.
        std_error: its Monte Carlo standard error (delta method: sd of the weights over $\sqrt S$
            times their mean).
        ess: Kish effective sample size $(\sum w)^2 / \sum w^2$.

    Examples:
        >>> ImportanceEstimate._fields
        ('log_evidence', 'std_error', 'ess')
    """

    log_evidence: jax.Array
    std_error: jax.Array
    ess: jax.Array


def importance_estimate(log_scale, log_weights) -> ImportanceEstimate:
    r"""Evidence estimate $\log \tilde Z + \log \bar w$ with its standard error and ESS from ``(S,)`` log-weights.

    Examples:
        >>> import jax.numpy as jnp
        >>> est = importance_estimate(jnp.array(-1.0), jnp.zeros(100))      # constant weights: exact
        >>> float(est.log_evidence), float(est.std_error), float(est.ess)
        (-1.0, 0.0, 100.0)
    """
    s = log_weights.shape[0]
    lse = logsumexp(log_weights)
    w = jnp.exp(log_weights - jnp.max(log_weights))
    rel = w / jnp.mean(w)
    ess = jnp.sum(w) ** 2 / jnp.sum(w**2)
    return ImportanceEstimate(log_scale + lse - jnp.log(s), jnp.std(rel) / jnp.sqrt(s), ess)


def _none_like(message):
    return jax.tree.map(jnp.zeros_like, message)


def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


@jax.tree_util.register_pytree_node_class
class GuidedDAG:
    r"""A Gaussian or finite-state model on a DAG with guided join nodes.

    Args:
        dag: a compiled [`DAGGraph`][markovppl.graph.dag.DAGGraph]
            ([`dag_from_networkx`][markovppl.graph.dag.dag_from_networkx]).
        root_mean: mean $\mu$ of a Gaussian root law (Gaussian states: edge kernels linear-Gaussian,
            Brownian motion or Ornstein–Uhlenbeck; join kernels ``LinearGaussian`` ``(d, k d)`` on the
            concatenated parents; ``obs`` kernels ``LinearGaussian``), with
        root_cov: its covariance $\Sigma$; or
        root_probs: $\pi$ ``(K,)`` (finite states: edge kernels ``Categorical`` or continuous-time chains,
            join kernels ``Categorical`` ``(K^k, K)`` on the row-major joint parent index, ``obs`` kernels
            ``Categorical`` emission matrices ``(K, M)``).

    Values: Gaussian ``(num_observed, m)`` (NaN = missing coordinate); finite ``(num_observed,)``
    integers (negative = missing). Rows follow ``dag.observed``; latent outputs follow ``dag.names``.

    Examples:
        >>> import networkx as nx, jax, jax.numpy as jnp
        >>> from markovppl.graph.dag import anchored_guide, dag_from_networkx
        >>> from markovppl.kernels import LinearGaussian
        >>> from markovppl.kernels.continuous import BrownianMotion
        >>> g = nx.DiGraph()
        >>> g.add_edge("r", "a", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
        >>> g.add_edge("r", "b", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
        >>> g.add_edges_from([("a", "c"), ("b", "c")])
        >>> g.nodes["c"].update(kernel=LinearGaussian(jnp.array([[0.5, 0.5]]), jnp.zeros(1), jnp.eye(1)),
        ...                     guide=anchored_guide(jnp.zeros((2, 1))), obs=LinearGaussian(jnp.eye(1), jnp.zeros(1), jnp.eye(1)))
        >>> model = GuidedDAG(dag_from_networkx(g), root_mean=jnp.zeros(1), root_cov=jnp.eye(1))
        >>> est = model.log_evidence(jax.random.PRNGKey(0), jnp.array([[1.0]]), 4000)
        >>> exact = jax.scipy.stats.norm.logpdf(1.0, 0.0, jnp.sqrt(1.0 + 0.5 + 1.0 + 1.0))   # Var(c) = 1 + 1/2 + 1, + noise
        >>> bool(abs(est.log_evidence - exact) < 3 * est.std_error + 1e-3)
        True
    """

    def __init__(self, dag: DAGGraph, *, root_mean=None, root_cov=None, root_probs=None):
        if not isinstance(dag, DAGGraph):
            raise TypeError(f"dag must be a DAGGraph (see markovppl.graph.dag.dag_from_networkx), got {type(dag).__name__}")
        if not dag.observed:
            raise ValueError("no node of the DAG has an 'obs' kernel")
        if (root_probs is None) == (root_mean is None):
            raise ValueError("give either root_mean and root_cov (Gaussian states) or root_probs (finite states)")
        self.dag = dag
        if root_probs is not None:
            root_probs = jnp.asarray(root_probs)
            v.check_ndim("root_probs", root_probs, 1, "(K,)")
            v.check_stochastic("root_probs", root_probs)
            self.root = (root_probs,)
        else:
            root_mean, root_cov = jnp.asarray(root_mean), jnp.asarray(root_cov)
            v.check_ndim("root_mean", root_mean, 1, "(d,)")
            d = root_mean.shape[-1]
            if root_cov.shape != (d, d):
                raise ValueError(f"root_cov must have shape ({d}, {d}) to match root_mean, got {root_cov.shape}")
            v.check_covariance("root_cov", root_cov, definite=False)
            self.root = (root_mean, root_cov)
        self._check_kernels()

    # ------------------------------------------------------------------ pytree
    def tree_flatten(self):
        comps = tuple(c.graph.edges if c.graph is not None else None for c in self.dag.components)
        obs = tuple(tuple(c.obs[n] for n in c.names if n in c.obs) for c in self.dag.components)
        joins = tuple(j.kernel for j in self.dag.joins)
        return (comps, obs, joins, self.root), self.dag

    @classmethod
    def tree_unflatten(cls, dag, children):
        comps, obs, joins, root = children
        new_components = []
        for c, edges, o in zip(dag.components, comps, obs):
            graph = None if c.graph is None else c.graph._replace(edges=edges)
            names = [n for n in c.names if n in c.obs]
            new_components.append(Component(c.names, graph, dict(zip(names, o))))
        new_joins = tuple(j._replace(kernel=k) for j, k in zip(dag.joins, joins))
        obj = cls.__new__(cls)
        obj.dag = dag._replace(components=tuple(new_components), joins=new_joins)
        obj.root = root
        return obj

    # ------------------------------------------------------------------ pieces
    @property
    def is_discrete(self) -> bool:
        return len(self.root) == 1

    @property
    def state_size(self) -> int:
        """$K$ (finite states) or $d$ (Gaussian)."""
        return self.root[0].shape[-1]

    @property
    def noise_shape(self) -> tuple:
        """Shape of one draw's noise: ``(num_nodes, K)`` Gumbel or ``(num_nodes, d)`` standard normal."""
        return (len(self.dag.names), self.state_size)

    def _law(self):
        if self.is_discrete:
            return CategoricalLaw(jnp.log(self.root[0]))
        return GaussianLaw(self.root[0], la.psd_sqrt(self.root[1]))

    def _edges(self, comp: Component):
        return self._edge_kernels(comp.graph.tree, comp.graph.edges)

    def _edge_kernels(self, tree, edges):
        return _discrete_edges(tree, edges) if self.is_discrete else _gaussian_edges(tree, edges)

    def _check_kernels(self):
        size = self.state_size
        for j in self.dag.joins:
            k = len(j.parents)
            if self.is_discrete:
                if not isinstance(j.kernel, Categorical):
                    raise ValueError(f"join node {j.name!r}: finite states need a Categorical joint kernel")
                want = (size**k, size)
                v.check_stochastic(f"joint kernel of {j.name!r}", j.kernel.transition_matrix)
                got = j.kernel.transition_matrix.shape
            else:
                if not isinstance(j.kernel, LinearGaussian):
                    raise ValueError(f"join node {j.name!r}: Gaussian states need a LinearGaussian joint kernel")
                want = (size, k * size)
                got = jnp.shape(j.kernel.A)
            if tuple(got) != want:
                raise ValueError(f"join node {j.name!r} with {k} parents: joint kernel must map {want[0] if self.is_discrete else want[1]}"
                                 f" joint parent states (shape {want}), got {tuple(got)}")
        for c in self.dag.components:
            for name, o in c.obs.items():
                if self.is_discrete and isinstance(o, Categorical):
                    v.check_stochastic(f"emission matrix of {name!r}", o.transition_matrix)
                if not isinstance(o, Categorical if self.is_discrete else LinearGaussian):
                    raise ValueError(f"node {name!r}: 'obs' must be a {'Categorical emission matrix' if self.is_discrete else 'LinearGaussian'} kernel")
            if c.graph is not None:
                probe = jax.eval_shape(lambda e, t=c.graph.tree: self._edge_kernels(t, e), c.graph.edges)
                out = probe.transition_matrix.shape[-1] if self.is_discrete else probe.A.shape[-2]
                if out != size:
                    raise ValueError(f"edge kernels below {c.names[0]!r} produce {out}-dimensional states, the root {size}")

    def _obs_message(self, kernel, y):
        if self.is_discrete:
            miss = y < 0
            log_g = jnp.log(kernel.transition_matrix[:, jnp.where(miss, 0, y)])
            return cm.CategoricalMessage(jnp.where(miss, 0.0, log_g), jnp.zeros((), log_g.dtype))
        return leaf(kernel, y, jnp.isnan(y))

    def _empty(self, num: int):
        dtype = self.root[0].dtype
        if self.is_discrete:
            return cm.CategoricalMessage(jnp.zeros((num, self.state_size), dtype), jnp.zeros(num, dtype))
        d = self.state_size
        return gm.GaussianMessage(jnp.zeros(num, dtype), jnp.zeros((num, d), dtype), jnp.zeros((num, d, d), dtype))

    def _check(self, value):
        value = jnp.asarray(value)
        k = len(self.dag.observed)
        if self.is_discrete:
            if value.shape != (k,):
                raise ValueError(f"value must have shape ({k},) (one entry per observed node {self.dag.observed}), got {value.shape}")
            if v.is_concrete(value):
                x = np.asarray(value)
                if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
                    raise ValueError("observed values must be integers (negative = missing)")
            return value.astype(jnp.int32)
        if value.ndim != 2 or value.shape[0] != k:
            raise ValueError(f"value must have shape ({k}, m) (one row per observed node {self.dag.observed}), got {value.shape}")
        if v.is_concrete(value) and np.any(np.isinf(np.asarray(value))):
            raise ValueError("value contains infinite entries (use NaN for missing coordinates)")
        return value.astype(self.root[0].dtype)

    # ------------------------------------------------------------------ algorithms
    def backward(self, value) -> DAGMessages:
        r"""Backward filter: tree messages in every component (leaves to root, join components first),
        the join nodes' joint and per-parent guiding messages, and $\log\tilde Z$.

        Examples:
            >>> import networkx as nx, jax.numpy as jnp
            >>> from markovppl.graph.dag import anchored_guide, dag_from_networkx
            >>> from markovppl.kernels import Categorical
            >>> g = nx.DiGraph([("r", "a"), ("r", "b"), ("a", "c"), ("b", "c")])
            >>> P = Categorical(jnp.array([[0.9, 0.1], [0.2, 0.8]]))
            >>> g.edges["r", "a"]["kernel"] = g.edges["r", "b"]["kernel"] = P
            >>> OR = Categorical(jnp.array([[0.99, 0.01], [0.01, 0.99], [0.01, 0.99], [0.01, 0.99]]))   # c = a or b
            >>> g.nodes["c"].update(kernel=OR, guide=anchored_guide(jnp.array([0, 0])), obs=Categorical(jnp.eye(2)))
            >>> m = GuidedDAG(dag_from_networkx(g), root_probs=jnp.array([0.5, 0.5]))
            >>> len(m.backward(jnp.array([1])).guiding[0])      # one message per parent of c
            2
        """
        value = self._check(value)
        index = {name: i for i, name in enumerate(self.dag.observed)}
        comps, joins = self.dag.components, self.dag.joins
        extra = {}                      # messages pushed to parents by join nodes
        messages, guiding, joint = [None] * len(comps), [None] * len(joins), [None] * len(joins)
        for c in range(len(comps) - 1, -1, -1):
            comp = comps[c]
            node_msgs = self._empty(len(comp.names))
            for r, name in enumerate(comp.names):
                parts = ([self._obs_message(comp.obs[name], value[index[name]])] if name in comp.obs else []) + extra.get(name, [])
                for part in parts:
                    node_msgs = jax.tree.map(lambda a, p: a.at[r].add(p), node_msgs, part)
            if comp.graph is None:
                messages[c] = _finish(node_msgs)
            else:
                dummy = jnp.zeros(() if self.is_discrete else (self.state_size,), jnp.int32 if self.is_discrete else self.root[0].dtype)
                out = tree_backward_filter(comp.graph.tree, self._edges(comp), node_msgs,
                                           self._law() if c == 0 else None, None if c == 0 else dummy)
                messages[c] = out.messages
                if c == 0:
                    log_z = out.log_evidence
            if c > 0:
                j = joins[c - 1]
                h_v = jax.tree.map(lambda a: a[0], messages[c])
                joint[c - 1] = pullback(j.kernel, h_v)
                parts = tuple(j.guide(joint[c - 1]))
                if len(parts) != len(j.parents):
                    raise ValueError(f"the guide of {j.name!r} returned {len(parts)} messages for {len(j.parents)} parents")
                guiding[c - 1] = parts
                for p, part in zip(j.parents, parts):
                    extra.setdefault(p, []).append(part)
        if comps[0].graph is None:
            log_z = marginalize(self._law(), jax.tree.map(lambda a: a[0], messages[0]))
        return DAGMessages(tuple(messages), tuple(guiding), tuple(joint), log_z)

    def forward_guide(self, back: DAGMessages, noise):
        r"""One guided draw of all node states and its total log-weight $\sum_v \log w_v$.

        Args:
            back: [`DAGMessages`][markovppl.families.dag.DAGMessages] (uninformative messages give prior draws).
            noise: ``noise_shape``: Gumbel (finite states) or standard normal (Gaussian), rows in ``dag.names``.

        Returns:
            ``(states, log_weight)``: ``(num_nodes[, d])`` in the order of ``dag.names``, and a scalar.
        """
        comps, joins = self.dag.components, self.dag.joins
        states, offset = {}, 0
        log_w = jnp.zeros((), noise.dtype)
        num = self.state_size if self.is_discrete else None
        blocks = []
        for c, comp in enumerate(comps):
            z = noise[offset: offset + len(comp.names)]
            offset += len(comp.names)
            msgs = back.messages[c]
            h0 = jax.tree.map(lambda a: a[0], msgs)
            if c == 0:
                x0, _ = guide_initial(self._law(), h0, z[0])
            else:
                j: JoinNode = joins[c - 1]
                x_pa = joint_state([states[p] for p in j.parents], num)
                x0, _ = guide(j.kernel, h0, x_pa, z[0])
                if back.joint[c - 1] is not None:        # None: unguided simulation, no weights
                    log_w = log_w + _evaluate(back.joint[c - 1], x_pa)
                    for p, part in zip(j.parents, back.guiding[c - 1]):
                        log_w = log_w - _evaluate(part, states[p])
            if comp.graph is None:
                xs = x0[None]
            else:
                xs, _ = tree_forward_guide(comp.graph.tree, self._edges(comp), msgs, z, root_value=x0)
            blocks.append(xs)
            states.update({name: xs[r] for r, name in enumerate(comp.names)})
        return jnp.concatenate(blocks, 0), log_w

    def _noise(self, rng_key, num: int):
        shape = (num,) + self.noise_shape
        if self.is_discrete:
            return jax.random.gumbel(rng_key, shape, self.root[0].dtype)
        return jax.random.normal(rng_key, shape, self.root[0].dtype)

    def guided_sample(self, rng_key, value, num_samples: int):
        r"""``num_samples`` guided draws: states ``(S, num_nodes[, d])`` and log-weights ``(S,)``.

        Self-normalised weights turn them into posterior draws; with exact guiding functions the
        weights are constant and the draws exact.
        """
        back = self.backward(value)
        return jax.vmap(lambda z: self.forward_guide(back, z))(self._noise(rng_key, num_samples))

    def log_evidence(self, rng_key, value, num_samples: int = 1000) -> ImportanceEstimate:
        r"""Guided importance-sampling estimate of $\log p(y)$ with its Monte Carlo error
        ([`ImportanceEstimate`][markovppl.families.dag.ImportanceEstimate]).
        """
        back = self.backward(value)
        _, lw = jax.vmap(lambda z: self.forward_guide(back, z))(self._noise(rng_key, num_samples))
        return importance_estimate(back.log_evidence, lw)

    def guided_log_likelihood(self, value, noise):
        r"""$\log\tilde Z + \sum_v \log w_v(x(z))$ at fixed noise $z$ (``noise_shape``): the factor of the
        non-centred target for NumPyro (innovations as sites, pCN moves on them); differentiable in the
        kernel parameters (Gaussian states).
        """
        back = self.backward(value)
        return back.log_evidence + self.forward_guide(back, noise)[1]

    def sample_with_states(self, rng_key, num_samples: int):
        r"""Forward simulation: states ``(S, num_nodes[, d])`` and values ``(S, num_observed[, m])``.

        Examples:
            >>> import networkx as nx, jax, jax.numpy as jnp
            >>> from markovppl.graph.dag import anchored_guide, dag_from_networkx
            >>> from markovppl.kernels import Categorical
            >>> g = nx.DiGraph([("r", "a"), ("r", "b"), ("a", "c"), ("b", "c")])
            >>> g.edges["r", "a"]["kernel"] = g.edges["r", "b"]["kernel"] = Categorical(jnp.eye(2))
            >>> AND = Categorical(jnp.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
            >>> g.nodes["c"].update(kernel=AND, guide=anchored_guide(jnp.array([1, 1])), obs=Categorical(jnp.eye(2)))
            >>> m = GuidedDAG(dag_from_networkx(g), root_probs=jnp.array([0.5, 0.5]))
            >>> x, y = m.sample_with_states(jax.random.PRNGKey(0), 6)
            >>> bool((x[:, 3] == x[:, 0]).all()), bool((y[:, 0] == x[:, 3]).all())   # a = b = r and c = a and b
            (True, True)
        """
        k_x, k_y = jax.random.split(rng_key)
        none = DAGMessages(
            tuple(self._empty(len(c.names)) for c in self.dag.components),
            tuple(tuple(_none_like(self._empty(1))) for _ in self.dag.joins),
            tuple(None for _ in self.dag.joins), jnp.zeros(()))
        noise = self._noise(k_x, num_samples)
        states = jax.vmap(lambda z: self.forward_guide(none, z)[0])(noise)
        rows = np.asarray([self.dag.index[n] for n in self.dag.observed])
        kernels = [c.obs[n] for n in self.dag.observed for c in self.dag.components if n in c.obs]
        keys = jax.random.split(k_y, len(rows))
        ys = []
        for key, r, kern in zip(keys, rows, kernels):
            x = states[:, r]
            if self.is_discrete:
                ys.append(jax.random.categorical(key, jnp.log(kern.transition_matrix[x]), -1))
            else:
                eps = jax.random.normal(key, (num_samples, jnp.shape(kern.Q)[-1]), x.dtype)
                ys.append(la.matvec(kern.A, x) + kern.b + la.matvec(la.psd_sqrt(kern.Q), eps))
        return states, jnp.stack(ys, 1)
