r"""SIR-type contact process: n individuals on a static graph, each in state S, I or R.

In one step of length $\tau$ every individual moves independently given the current joint state $x$:

$$P_i(x)[S, I] = 1 - \xi e^{-\lambda\tau N_i(x)},\qquad P_i(x)[I, R] = 1 - e^{-\mu\tau},\qquad
  P_i(x)[R, S] = 1 - e^{-\nu\tau},$$

with $N_i(x)$ the number of infected neighbours of $i$ and the remaining mass on staying put
($\xi < 1$ allows spontaneous infection). The joint kernel is $\kappa(x, y) = \prod_i P_i(x)[x_i, y_i]$:
it factorises over individuals **given** the current state, but the individuals are coupled through
$N_i(x)$.

States are coded ``S = 0``, ``I = 1``, ``R = 2``. The graph is compiled once to padded neighbour index
arrays, so counting infected neighbours is one gather and one sum (no loop over individuals).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validation as v

__all__ = [
    "S", "I", "R", "NUM_STATES", "ContactGraph", "ContactProcess", "contact_graph", "contact_process",
    "infected_neighbours", "transition_matrices", "simulate", "simulate_from_noise", "categorical_from_uniform",
]

S, I, R = 0, 1, 2
NUM_STATES = 3


class ContactGraph(NamedTuple):
    r"""Static neighbourhoods compiled to index arrays.

    Attributes:
        neighbours: ``(n, D)`` int32, row ``i`` lists the neighbours of individual ``i`` (padded with 0).
        mask: ``(n, D)`` bool, ``False`` on padding.

    Individual ``i`` is the ``i``-th node of ``list(graph.nodes)`` of the graph it was built from.

    Examples:
        >>> import networkx as nx
        >>> g = contact_graph(nx.path_graph(3))
        >>> g.neighbours.tolist(), g.mask.tolist()
        ([[1, 0], [0, 2], [1, 0]], [[True, False], [True, True], [True, False]])
    """

    neighbours: jax.Array
    mask: jax.Array

    @property
    def num_individuals(self) -> int:
        return self.neighbours.shape[0]


def contact_graph(graph) -> ContactGraph:
    r"""Compile a ``networkx.Graph`` (or ``DiGraph``) to a [`ContactGraph`][markovppl.ips.model.ContactGraph].

    For an undirected graph the neighbours of $i$ are its adjacent nodes; for a directed graph they are
    its predecessors (an edge $j \to i$ means "an infected $j$ can infect $i$").

    Raises:
        ValueError: not a networkx graph, a multigraph, no nodes, or a self-loop (an individual would
            count itself among its infected neighbours).

    Examples:
        >>> import networkx as nx
        >>> contact_graph(nx.empty_graph(2)).neighbours.shape       # no edges: zero-width index arrays
        (2, 0)
    """
    import networkx as nx

    if not isinstance(graph, nx.Graph):
        raise ValueError(f"graph must be a networkx Graph or DiGraph, got {type(graph).__name__}")
    if graph.is_multigraph():
        raise ValueError("graph must not be a multigraph (parallel edges have no meaning in a contact process)")
    nodes = list(graph.nodes)
    if not nodes:
        raise ValueError("graph has no nodes")
    loops = [u for u, w in nx.selfloop_edges(graph)]
    if loops:
        raise ValueError(f"graph has self-loops at {loops[:5]}: an individual cannot be its own neighbour")
    index = {u: k for k, u in enumerate(nodes)}
    nbr = graph.predecessors if graph.is_directed() else graph.neighbors
    lists = [[index[w] for w in nbr(u)] for u in nodes]
    width = max((len(x) for x in lists), default=0)
    neighbours = np.zeros((len(nodes), width), np.int32)
    mask = np.zeros((len(nodes), width), bool)
    for k, x in enumerate(lists):
        neighbours[k, : len(x)] = x
        mask[k, : len(x)] = True
    return ContactGraph(jnp.asarray(neighbours), jnp.asarray(mask))


class ContactProcess(NamedTuple):
    r"""The SIR contact process; every field is an array leaf (parameters can be NumPyro sample sites).

    Attributes:
        graph: [`ContactGraph`][markovppl.ips.model.ContactGraph].
        infection: $\lambda \ge 0$, infection rate per infected neighbour.
        recovery: $\mu \ge 0$, rate of I → R.
        waning: $\nu \ge 0$, rate of R → S.
        initial_probs: ``(n, 3)`` law of each individual's state at time 0 (individuals independent).
        step: $\tau > 0$.
        xi: $\xi \in (0, 1]$, probability of staying susceptible with no infected neighbour.

    Build with [`contact_process`][markovppl.ips.model.contact_process], which validates.

    Examples:
        >>> import networkx as nx
        >>> m = contact_process(nx.path_graph(4), 2.5, 0.6, 0.1, initial_probs=[0.9, 0.1, 0.0])
        >>> m.num_individuals, m.initial_probs.shape
        (4, (4, 3))
    """

    graph: ContactGraph
    infection: jax.Array
    recovery: jax.Array
    waning: jax.Array
    initial_probs: jax.Array
    step: jax.Array
    xi: jax.Array

    @property
    def num_individuals(self) -> int:
        return self.graph.num_individuals

    def validate(self) -> "ContactProcess":
        """Eager checks (skipped under tracing); returns ``self``."""
        for name in ("infection", "recovery", "waning"):
            x = getattr(self, name)
            if jnp.ndim(x) != 0:
                raise ValueError(f"{name} must be a scalar rate, got shape {jnp.shape(x)}")
            v.check_finite(name, x)
            if v.is_concrete(x) and float(x) < 0:
                raise ValueError(f"{name} must be a non-negative rate, got {float(x)}")
        if v.is_concrete(self.step) and not (np.isfinite(float(self.step)) and float(self.step) > 0):
            raise ValueError(f"step must be positive and finite, got {float(self.step)}")
        if v.is_concrete(self.xi) and not (0.0 < float(self.xi) <= 1.0):
            raise ValueError(f"xi must lie in (0, 1], got {float(self.xi)}")
        p = self.initial_probs
        if jnp.shape(p) != (self.num_individuals, NUM_STATES):
            raise ValueError(f"initial_probs must have shape ({self.num_individuals}, 3), got {jnp.shape(p)}")
        v.check_stochastic("initial_probs", p)
        return self


def contact_process(graph, infection, recovery, waning, *, initial_probs, step=0.1, xi=0.999) -> ContactProcess:
    r"""Build and validate a [`ContactProcess`][markovppl.ips.model.ContactProcess].

    Args:
        graph: a ``networkx`` graph or an already compiled [`ContactGraph`][markovppl.ips.model.ContactGraph].
        infection: $\lambda \ge 0$, infection rate per infected neighbour (scalar).
        recovery: $\mu \ge 0$, rate of I → R.
        waning: $\nu \ge 0$, rate of R → S.
        initial_probs: ``(3,)`` (the same law for everyone) or ``(n, 3)``.
        step: $\tau$.
        xi: $\xi$.

    Raises:
        ValueError: negative or non-finite rates, ``step <= 0``, ``xi`` outside (0, 1], initial laws that
            are not probability vectors, or an invalid graph (see [`contact_graph`][markovppl.ips.model.contact_graph]).

    Examples:
        >>> import networkx as nx
        >>> try:
        ...     contact_process(nx.path_graph(3), -1.0, 0.6, 0.1, initial_probs=[1.0, 0.0, 0.0])
        ... except ValueError as err:
        ...     print(err)
        infection must be a non-negative rate, got -1.0
    """
    g = graph if isinstance(graph, ContactGraph) else contact_graph(graph)
    rates = [jnp.asarray(x) for x in (infection, recovery, waning)]
    dtype = jnp.result_type(*rates, float)
    p = jnp.asarray(initial_probs, dtype)
    if p.ndim == 1:
        p = jnp.broadcast_to(p, (g.num_individuals,) + p.shape)
    model = ContactProcess(g, *(r.astype(dtype) for r in rates), p, jnp.asarray(step, dtype), jnp.asarray(xi, dtype))
    return model.validate()


def infected_neighbours(graph: ContactGraph, x) -> jax.Array:
    r"""$N_i(x)$ for joint states ``x`` ``(..., n)``; returns ``(..., n)`` int32 counts.

    Examples:
        >>> import jax.numpy as jnp, networkx as nx
        >>> infected_neighbours(contact_graph(nx.path_graph(4)), jnp.array([1, 0, 1, 1])).tolist()
        [0, 2, 1, 1]
    """
    x = jnp.asarray(x)
    infected = (x[..., graph.neighbours] == I) & graph.mask
    return jnp.sum(infected, axis=-1, dtype=jnp.int32)


def transition_matrices(model: ContactProcess, counts) -> jax.Array:
    r"""Per-individual $3 \times 3$ matrices $P_i$ for (possibly fractional) infected-neighbour counts ``(..., n)``.

    Returns ``(..., n, 3, 3)``. Used with the true counts $N_i(x)$ for the true kernel and with frozen
    counts $\tilde N_i$ for the factorised auxiliary.

    Examples:
        >>> import jax.numpy as jnp, networkx as nx
        >>> m = contact_process(nx.path_graph(2), 2.5, 0.6, 0.1, initial_probs=[1.0, 0.0, 0.0], step=0.1, xi=1.0)
        >>> P = transition_matrices(m, jnp.array([0.0, 1.0]))
        >>> P.shape, P[0, 0].tolist(), round(float(P[1, 0, 1]), 6)     # 1 - exp(-0.25)
        ((2, 3, 3), [1.0, 0.0, 0.0], 0.221199)
    """
    counts = jnp.asarray(counts)
    dtype = jnp.result_type(model.infection, counts, float)
    a = jnp.log(model.xi) - model.infection * model.step * counts.astype(dtype)
    stay_s, leave_s = jnp.exp(a), -jnp.expm1(a)
    stay_i, leave_i = jnp.exp(-model.recovery * model.step), -jnp.expm1(-model.recovery * model.step)
    stay_r, leave_r = jnp.exp(-model.waning * model.step), -jnp.expm1(-model.waning * model.step)
    zero = jnp.zeros_like(stay_s)
    stay_i, leave_i, stay_r, leave_r = (jnp.broadcast_to(u, stay_s.shape) for u in (stay_i, leave_i, stay_r, leave_r))
    rows = [
        jnp.stack([stay_s, leave_s, zero], -1),
        jnp.stack([zero, stay_i, leave_i], -1),
        jnp.stack([leave_r, zero, stay_r], -1),
    ]
    return jnp.stack(rows, -2)


def categorical_from_uniform(weights, u) -> jax.Array:
    r"""Inverse-CDF draw from unnormalised non-negative ``weights`` ``(..., K)`` with uniforms ``u`` ``(...)``.

    Returns $\min\{k : u \sum_j w_j \le \sum_{j \le k} w_j\}$, so a state of zero weight is never drawn
    (``u`` is clipped to the smallest positive float away from 0).

    Examples:
        >>> import jax.numpy as jnp
        >>> categorical_from_uniform(jnp.array([[1.0, 0.0, 3.0]] * 3), jnp.array([0.2, 0.3, 0.9])).tolist()
        [0, 2, 2]
    """
    cum = jnp.cumsum(weights, axis=-1)
    u = jnp.clip(u, jnp.finfo(cum.dtype).tiny, 1.0)
    threshold = (u * cum[..., -1])[..., None]
    return jnp.sum(threshold > cum[..., :-1], axis=-1, dtype=jnp.int32)


def simulate_from_noise(model: ContactProcess, noise) -> jax.Array:
    r"""Forward (unguided) path $x_{0:T}$ ``(T+1, n)`` from standard-normal ``noise`` ``(T+1, n)``.

    The draw of individual $i$ at time $t$ is the inverse CDF of its law at the uniform $\Phi(z_{t,i})$;
    the same noise law as the guided sampler, so both are deterministic maps of the same innovations.

    Examples:
        >>> import jax, networkx as nx
        >>> m = contact_process(nx.cycle_graph(5), 2.5, 0.6, 0.1, initial_probs=[0.8, 0.2, 0.0])
        >>> simulate_from_noise(m, jax.random.normal(jax.random.PRNGKey(0), (11, 5))).shape
        (11, 5)
    """
    noise = jnp.asarray(noise)
    u = jax.scipy.special.ndtr(noise)
    x0 = categorical_from_uniform(model.initial_probs, u[0])

    def step(x, u_t):
        P = transition_matrices(model, infected_neighbours(model.graph, x))
        row = jnp.take_along_axis(P, x[:, None, None], axis=-2)[:, 0, :]
        y = categorical_from_uniform(row, u_t)
        return y, y

    _, xs = jax.lax.scan(step, x0, u[1:])
    return jnp.concatenate([x0[None], xs], axis=0)


def simulate(rng_key, model: ContactProcess, num_steps: int, num_samples: int | None = None) -> jax.Array:
    r"""Forward simulation: ``(T+1, n)`` paths with ``T = num_steps`` (``(num_samples, T+1, n)`` if given).

    Examples:
        >>> import jax, networkx as nx
        >>> m = contact_process(nx.cycle_graph(5), 2.5, 0.6, 0.1, initial_probs=[0.8, 0.2, 0.0])
        >>> simulate(jax.random.PRNGKey(0), m, 10, num_samples=4).shape
        (4, 11, 5)
    """
    if num_steps < 0:
        raise ValueError(f"num_steps must be non-negative, got {num_steps}")
    dtype = jnp.result_type(model.infection, float)
    shape = (num_steps + 1, model.num_individuals)
    if num_samples is None:
        return simulate_from_noise(model, jax.random.normal(rng_key, shape, dtype))
    z = jax.random.normal(rng_key, (num_samples,) + shape, dtype)
    return jax.vmap(simulate_from_noise, (None, 0))(model, z)
