r"""Branching diffusions: an SDE along every edge of a tree, observed with noise at some nodes.

Along each edge $v$ of length $\ell_v$ the trait follows $dX = b(t, X)\,dt + \sigma(t, X)\,dW$ started from
the parent's value; children evolve independently given their parent. The backward filter pulls every
child's message back through the **linear auxiliary** $d\tilde X = (\tilde BX + \tilde\beta)dt + \tilde\sigma dW$
on the edge's time grid ([`backward_diffusion`][markovppl.backward.diffusion.backward_diffusion]) and fuses
the results at branch points, level by level as for [`GaussianTree`][markovppl.families.tree.GaussianTree].
Forward guiding runs the guided SDE $dX^\circ = [b + a(F - HX^\circ)]dt + \sigma dW$ down every edge from its
parent's guided value, with the Girsanov log-weight $\log\Psi_v$ of the edge
([`guided_diffusion`][markovppl.guided.diffusion.guided_diffusion]). The tree factors telescope, so

$$p(y) = \tilde Z\; E^\circ\Big[\prod_v \Psi_v\Big],\qquad \tilde Z = \int \tilde h_\text{root}\, d\pi ,$$

and with an exact auxiliary (a linear SDE equal to the true one) all weights vanish and $\tilde Z = p(y)$.

Noise is an input: a draw is a deterministic function of the root noise ``(d,)`` and the edge noise
``(num_nodes, N, w)`` (row ``v`` drives the edge into node ``v``; row 0 is unused), so
[`guided_log_likelihood`][markovppl.families.diffusion_tree.DiffusionTree.guided_log_likelihood] is the
factor of the non-centred target for pCN moves on the innovations.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _linalg as la
from .. import _validation as v
from ..backward.diffusion import DiffusionMessages, backward_diffusion
from ..backward.rules import leaf
from ..backward.tree import tree_backward_filter
from ..graph.topology import Tree
from ..guided.diffusion import guided_diffusion
from ..guided.rules import guide, guide_initial
from ..guided.tree import tree_forward_guide
from ..kernels.diffusion import Diffusion, time_grid
from ..kernels.gaussian import LinearGaussian
from ..kernels.initial import GaussianLaw
from ..messages import gaussian as gm
from ._sequence import compiled
from .dag import ImportanceEstimate, importance_estimate
from .tree import _check_tree, _observed

__all__ = ["DiffusionTree", "TreeDiffusionPaths"]


class _GridEdge(NamedTuple):
    """A diffusion edge with its auxiliary messages on the grid, computed once after the backward filter."""

    kernel: Diffusion
    grid: DiffusionMessages

    one_edge_rules = True  # the tree sweeps vmap its guiding rule over a chunk of edges


@guide.register
def _(edge: _GridEdge, message, x, noise):
    return guided_diffusion(edge.kernel, edge.grid, x, noise, store_path=False)


class TreeDiffusionPaths(NamedTuple):
    r"""Guided (or simulated) draws of a branching diffusion.

    Attributes:
        states: node values ``(..., num_nodes, d)`` (preorder).
        edge_paths: the path along each edge ``(..., num_nodes, N + 1, d)`` (row ``v``: the edge into
            node $v$, from the parent's value to $x_v$; row 0 holds the root value).
        edge_times: absolute times of the grid points ``(num_nodes, N + 1)`` (depth below the root).
        log_weights: $\sum_v \log\Psi_v$ per draw ``(...)`` (zero for forward simulation).

    Examples:
        >>> TreeDiffusionPaths._fields
        ('states', 'edge_paths', 'edge_times', 'log_weights')
    """

    states: jax.Array
    edge_paths: jax.Array
    edge_times: jax.Array
    log_weights: jax.Array


@jax.tree_util.register_pytree_node_class
class DiffusionTree:
    r"""A diffusion on the edges of a rooted tree, with Gaussian observations at some nodes.

    Args:
        tree: a [`Tree`][markovppl.graph.topology.Tree] (branch lengths used where ``kernel.duration`` is ``None``).
        kernel: the [`Diffusion`][markovppl.kernels.diffusion.Diffusion] of every edge (drift, diffusion,
            auxiliary, ``num_steps`` per edge); its ``duration`` is ``None`` (the tree's branch lengths) or
            ``(num_nodes - 1,)`` (edge $e$ enters node $e + 1$; learnable).
        root_mean: mean of the Gaussian law of the root value.
        root_cov: its covariance (zero: a fixed root).
        obs_cov: $R$ ``(m, m)``: $y_v = L x_v + N(0, R)$ at the observed nodes.
        obs_matrix: $L$ ``(m, d)`` (default identity).
        observed: observed nodes (names or indices; default: the leaves in preorder).

    Values: ``(num_observed, m)``, NaN coordinates missing.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from markovppl.graph import from_newick
        >>> from markovppl.kernels.diffusion import Diffusion, LinearSDE
        >>> ou = LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1))
        >>> k = Diffusion(lambda t, x: -x, jnp.eye(1), None, ou, num_steps=20)   # the auxiliary is exact here
        >>> m = DiffusionTree(from_newick("((A:1,B:1):0.5,C:1.5);"), k, jnp.zeros(1), jnp.eye(1), 0.1 * jnp.eye(1))
        >>> y = jnp.array([[0.3], [0.5], [-0.2]])
        >>> est = m.log_evidence(jax.random.PRNGKey(0), y, 100)
        >>> float(est.std_error)                                   # exact auxiliary: constant weights
        0.0
    """

    def __init__(self, tree: Tree, kernel: Diffusion, root_mean, root_cov, obs_cov, *, obs_matrix=None, observed=None):
        self.tree = _check_tree(tree)
        self.observed = _observed(tree, observed)
        if not isinstance(kernel, Diffusion):
            raise TypeError(f"kernel must be a markovppl.kernels.diffusion.Diffusion, got {type(kernel).__name__}")
        num_edges = tree.num_edges
        if kernel.duration is None:
            kernel = kernel.replace(duration=jnp.asarray(tree.branch_lengths))
        duration = jnp.asarray(kernel.duration)
        if duration.shape != (num_edges,):
            raise ValueError(f"kernel.duration must be None (the branch lengths) or ({num_edges},), got shape {duration.shape}")
        kernel.replace(duration=duration[0]).validate()
        if v.is_concrete(duration) and np.any(np.asarray(duration) < 0):
            raise ValueError("durations (branch lengths) must be non-negative")
        root_mean, root_cov = jnp.asarray(root_mean), jnp.asarray(root_cov)
        d = kernel.dim
        if root_mean.shape != (d,) or root_cov.shape != (d, d):
            raise ValueError(f"root_mean must be ({d},) and root_cov ({d}, {d}) for a {d}-dimensional diffusion, "
                             f"got {root_mean.shape} and {root_cov.shape}")
        v.check_covariance("root_cov", root_cov, definite=False)
        obs_cov = jnp.asarray(obs_cov, root_mean.dtype)
        obs_matrix = jnp.eye(d, dtype=root_mean.dtype) if obs_matrix is None else jnp.asarray(obs_matrix)
        if obs_matrix.shape != (obs_cov.shape[-1], d):
            raise ValueError(f"obs_matrix must be ({obs_cov.shape[-1]}, {d}) to match obs_cov and the state, got {obs_matrix.shape}")
        LinearGaussian(obs_matrix, jnp.zeros(obs_cov.shape[-1], root_mean.dtype), obs_cov).validate(("obs_matrix", "obs_offset", "obs_cov"), definite=True)
        self.kernel = kernel.replace(duration=duration)
        self.root_mean, self.root_cov, self.obs_matrix, self.obs_cov = root_mean, root_cov, obs_matrix, obs_cov

    # ------------------------------------------------------------------ pytree
    def tree_flatten(self):
        return (self.kernel, self.root_mean, self.root_cov, self.obs_matrix, self.obs_cov), (self.tree, self.observed)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = cls.__new__(cls)
        obj.tree, obj.observed = aux
        obj.kernel, obj.root_mean, obj.root_cov, obj.obs_matrix, obj.obs_cov = children
        return obj

    # ------------------------------------------------------------------ pieces
    @property
    def dim(self) -> int:
        return self.kernel.dim

    @property
    def noise_shape(self) -> tuple:
        """Edge-noise shape ``(num_nodes, N, w)``; the root noise is ``(d,)``."""
        return (self.tree.num_nodes, self.kernel.num_steps, self.kernel.noise_dim)

    def _edges(self) -> Diffusion:
        """The kernel with every leaf stacked along the edge axis (the tree sweeps index edges)."""
        e = self.tree.num_edges
        k = self.kernel
        stacked = jax.tree.map(lambda a: jnp.broadcast_to(a, (e,) + jnp.shape(a)), k.replace(duration=jnp.zeros(())))
        return stacked.replace(duration=k.duration)

    def _law(self) -> GaussianLaw:
        return GaussianLaw(self.root_mean, la.psd_sqrt(self.root_cov))

    def _check_value(self, value):
        value = jnp.asarray(value, self.root_mean.dtype)
        k, m = len(self.observed), self.obs_cov.shape[-1]
        if value.shape != (k, m):
            raise ValueError(f"value must have shape ({k}, {m}) (observed nodes, obs dim), got {value.shape}")
        if v.is_concrete(value) and np.any(np.isinf(np.asarray(value))):
            raise ValueError("value contains infinite entries (use NaN for missing coordinates)")
        return value

    def _node_messages(self, value):
        value = self._check_value(value)
        m = self.obs_cov.shape[-1]
        g = leaf(LinearGaussian(self.obs_matrix, jnp.zeros(m, value.dtype), self.obs_cov), value, jnp.isnan(value))
        n, d = self.tree.num_nodes, self.dim
        idx = np.asarray(self.observed)
        return gm.GaussianMessage(jnp.zeros(n, value.dtype).at[idx].set(g.c),
                                  jnp.zeros((n, d), value.dtype).at[idx].set(g.F),
                                  jnp.zeros((n, d, d), value.dtype).at[idx].set(g.H))

    def _noise(self, rng_key, num_samples: int):
        k_root, k_edge = jax.random.split(rng_key)
        dtype = self.root_mean.dtype
        return (jax.random.normal(k_root, (num_samples, self.dim), dtype),
                jax.random.normal(k_edge, (num_samples,) + self.noise_shape, dtype))

    def _check_noise(self, root_noise, edge_noise):
        if jnp.shape(root_noise)[-1:] != (self.dim,) or jnp.shape(edge_noise)[-3:] != self.noise_shape:
            raise ValueError(f"noise must be root ({self.dim},) and edges {self.noise_shape}, got "
                             f"{jnp.shape(root_noise)} and {jnp.shape(edge_noise)}")

    def _edge_times(self):
        depth_parent = self._depths()[np.maximum(self.tree.parent, 0)]
        offsets = time_grid(jnp.concatenate([jnp.zeros(1, self.kernel.duration.dtype), self.kernel.duration]),
                            self.kernel.num_steps, self.kernel.time_change)
        return depth_parent[:, None] + offsets

    def _depths(self):
        """Depth of every node (sum of the edge lengths above it) by pointer jumping: O(n log height)."""
        acc = jnp.concatenate([jnp.zeros(1, self.kernel.duration.dtype), self.kernel.duration])
        anc = np.where(self.tree.parent < 0, 0, self.tree.parent)
        for _ in range(int(np.ceil(np.log2(self.tree.height + 1)))):
            acc, anc = acc + acc[anc], anc[anc]
        return acc

    # ------------------------------------------------------------------ algorithms
    def backward(self, value):
        r"""Backward filter through the auxiliary: fused node messages and $\log\tilde Z$
        ([`TreeMessages`][markovppl.backward.tree.TreeMessages])."""
        return self._backward(self._check_value(value))

    @compiled()
    def _backward(self, value):
        return tree_backward_filter(self.tree, self._edges(), self._node_messages(value), self._law())

    def _grid_edges(self, messages) -> _GridEdge:
        """Every edge's auxiliary messages on its grid, from the fused message of its child (one vmap)."""
        edges = self._edges()
        child = jax.tree.map(lambda a: a[1:], messages)
        return _GridEdge(edges, jax.vmap(backward_diffusion)(edges, child))

    def _forward(self, grid_edges: _GridEdge, messages, root_noise, edge_noise, with_paths: bool):
        root = jax.tree.map(lambda a: a[0], messages)
        x0, _ = guide_initial(self._law(), root, root_noise)
        states, lw = tree_forward_guide(self.tree, grid_edges, messages, edge_noise, root_value=x0)
        if not with_paths:
            return states, jnp.sum(lw)
        paths = jax.vmap(lambda k, g, x, z: guided_diffusion(k, g, x, z)[0])(
            grid_edges.kernel, grid_edges.grid, states[self.tree.parent[1:]], edge_noise[1:])
        paths = jnp.concatenate([jnp.broadcast_to(x0, (1,) + paths.shape[1:]), paths], 0)
        return states, paths, jnp.sum(lw)

    @compiled("num_samples", "with_paths")
    def guided_sample(self, rng_key, value, num_samples: int, with_paths: bool = True) -> TreeDiffusionPaths:
        r"""``num_samples`` guided draws with their log-weights (self-normalise them for posterior draws).

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.diffusion import Diffusion, LinearSDE
            >>> k = Diffusion(lambda t, x: jnp.tanh(x), jnp.eye(1), None, LinearSDE(jnp.eye(1), jnp.zeros(1), jnp.eye(1)), num_steps=10)
            >>> m = DiffusionTree(from_newick("(A:1,B:1);"), k, jnp.zeros(1), jnp.eye(1), 0.01 * jnp.eye(1))
            >>> out = m.guided_sample(jax.random.PRNGKey(0), jnp.array([[1.0], [2.0]]), 4)
            >>> out.states.shape, out.edge_paths.shape, out.edge_times.shape, out.log_weights.shape
            ((4, 3, 1), (4, 3, 11, 1), (3, 11), (4,))
        """
        back = self.backward(value)
        grid = self._grid_edges(back.messages)
        zr, ze = self._noise(rng_key, num_samples)
        dtype = self.root_mean.dtype
        if with_paths:
            states, paths, lw = jax.vmap(lambda a, b: self._forward(grid, back.messages, a, b, True))(zr, ze)
        else:
            states, lw = jax.vmap(lambda a, b: self._forward(grid, back.messages, a, b, False))(zr, ze)
            paths = jnp.zeros(states.shape[:2] + (0, self.dim), dtype)
        return TreeDiffusionPaths(states, paths, self._edge_times(), lw)

    @compiled("num_samples")
    def log_evidence(self, rng_key, value, num_samples: int = 1000) -> ImportanceEstimate:
        r"""Guided importance-sampling estimate of $\log p(y)$ with its Monte Carlo standard error and ESS."""
        back = self.backward(value)
        grid = self._grid_edges(back.messages)
        zr, ze = self._noise(rng_key, num_samples)
        _, lw = jax.vmap(lambda a, b: self._forward(grid, back.messages, a, b, False))(zr, ze)
        return importance_estimate(back.log_evidence, lw)

    def guided_log_likelihood(self, value, root_noise, edge_noise):
        r"""$\log\tilde Z + \sum_v \log\Psi_v$ at fixed noise: the non-centred factor for NumPyro (innovations
        as standard-normal sites, NUTS on the parameters and pCN on the innovations). Differentiable in
        every kernel parameter and branch length.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.diffusion import Diffusion, LinearSDE
            >>> k = Diffusion(lambda t, x, p: -p * x, jnp.eye(1), None, LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1)),
            ...               num_steps=10, params=jnp.array(1.0))
            >>> m = DiffusionTree(from_newick("(A:1,B:1);"), k, jnp.zeros(1), jnp.eye(1), 0.1 * jnp.eye(1))
            >>> y, zr, ze = jnp.array([[1.0], [2.0]]), jnp.zeros(1), jnp.zeros(m.noise_shape)
            >>> ll = lambda p: DiffusionTree(m.tree, k.replace(params=p), jnp.zeros(1), jnp.eye(1), 0.1 * jnp.eye(1)).guided_log_likelihood(y, zr, ze)
            >>> bool(jnp.isfinite(jax.jit(jax.grad(ll))(1.3)))
            True
        """
        self._check_noise(root_noise, edge_noise)
        back = self.backward(value)
        return back.log_evidence + self._forward(self._grid_edges(back.messages), back.messages, root_noise, edge_noise, False)[1]

    @compiled("num_samples")
    def sample(self, rng_key, num_samples: int):
        r"""Forward simulation (Euler–Maruyama on the edges' grids): ``(paths, values)`` with
        [`TreeDiffusionPaths`][markovppl.families.diffusion_tree.TreeDiffusionPaths] and values
        ``(num_samples, num_observed, m)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> from markovppl.graph import from_newick
            >>> from markovppl.kernels.diffusion import Diffusion, LinearSDE
            >>> k = Diffusion(lambda t, x: -x, jnp.eye(2), None, LinearSDE(-jnp.eye(2), jnp.zeros(2), jnp.eye(2)), num_steps=10)
            >>> m = DiffusionTree(from_newick("((A:1,B:1):1,C:2);"), k, jnp.zeros(2), jnp.eye(2), 0.1 * jnp.eye(2))
            >>> paths, y = m.sample(jax.random.PRNGKey(0), 5)
            >>> paths.states.shape, y.shape
            ((5, 5, 2), (5, 3, 2))
        """
        n, d = self.tree.num_nodes, self.dim
        dtype = self.root_mean.dtype
        none = gm.GaussianMessage(jnp.zeros(n, dtype), jnp.zeros((n, d), dtype), jnp.zeros((n, d, d), dtype))
        k_noise, k_obs = jax.random.split(rng_key)
        zr, ze = self._noise(k_noise, num_samples)
        grid = self._grid_edges(none)
        states, paths, _ = jax.vmap(lambda a, b: self._forward(grid, none, a, b, True))(zr, ze)
        xs = states[:, np.asarray(self.observed)]
        eps = jax.random.normal(k_obs, xs.shape[:-1] + (self.obs_cov.shape[-1],), dtype)
        y = la.matvec(self.obs_matrix, xs) + la.matvec(la.psd_sqrt(self.obs_cov), eps)
        return TreeDiffusionPaths(states, paths, self._edge_times(), jnp.zeros(num_samples, dtype)), y
