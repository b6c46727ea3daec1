"""Discrete-trait (Mk) model on an 80-species tree: a binary character with asymmetric rates (simulated data).

Run it with ``markovppl fit mk_tree``. A binary trait (0/1, e.g. absence/presence of a character)
evolves along every branch as a continuous-time Markov chain with generator
$Q = \\begin{pmatrix} -q_{01} & q_{01} \\\\ q_{10} & -q_{10} \\end{pmatrix}$ (the Mk model with "all rates
different", Lewis 2001; Pagel 1994), the transition over a branch of length $\\ell$ being $e^{\\ell Q}$
(``mp.kernels.JumpProcess``). The root state follows the stationary law
$\\pi = (q_{10}, q_{01}) / (q_{01} + q_{10})$. The leaves' states are observed exactly; unknown states
(``-1`` or an empty CSV cell) are marginalised. ``log_prob`` is Felsenstein's pruning algorithm
(``mp.DiscreteTree``), differentiable in the rates, so NUTS runs on $\\log q_{01}, \\log q_{10}$
(priors $N(\\log 0.5, 1)$). The plot shows the tree with the posterior probability of state 1 at every
node (ancestral state reconstruction, averaged over the parameter draws).

**Data.** No discrete-character data set with a compatible licence ships with markovppl, so
``load_data`` *simulates* one with a fixed seed: a random 80-leaf tree
(``markovppl.graph.random_tree(80, seed=7, mean_length=0.4)``), rates $q_{01} = 0.4$, $q_{10} = 0.8$,
six leaves unknown. For your own data set ``TREE_NEWICK`` and pass ``--data states.csv --columns
state`` with one row per leaf in Newick order.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl import diagnostics
from markovppl.graph.plot import plot_tree

DATA_COLUMNS = ["state"]
VAR_NAMES = ["q01", "q10"]
TREE_NEWICK = None  # None: the simulated 80-leaf tree; or a Newick string with one leaf per data row
TRUE = {"q01": 0.4, "q10": 0.8}


def _tree():
    return mp.graph.random_tree(80, seed=7, mean_length=0.4) if TREE_NEWICK is None else mp.graph.from_newick(TREE_NEWICK)


TREE = _tree()


def _tree_model(q01, q10):
    q = jnp.stack([jnp.stack([-q01, q01]), jnp.stack([q10, -q10])])
    root = jnp.stack([q10, q01]) / (q01 + q10)
    return mp.DiscreteTree(TREE, mp.kernels.JumpProcess(q, None), root)  # duration None: the branch lengths


def _states(y):
    y = jnp.asarray(y)
    if jnp.issubdtype(y.dtype, jnp.floating):  # CSV input: empty cells are NaN
        y = jnp.where(jnp.isnan(y), -1, y)
    return y.astype(jnp.int32)


def model(y=None):
    q01 = numpyro.sample("q01", dist.LogNormal(np.log(0.5), 1.0))
    q10 = numpyro.sample("q10", dist.LogNormal(np.log(0.5), 1.0))
    numpyro.sample("y", _tree_model(q01, q10), obs=None if y is None else _states(y))


def load_data():
    if TREE_NEWICK is not None:
        raise ValueError("TREE_NEWICK is set: pass your states with --data/--columns")
    truth = _tree_model(jnp.asarray(TRUE["q01"]), jnp.asarray(TRUE["q10"]))
    y = np.array(truth.sample(jax.random.PRNGKey(7)))
    y[np.random.default_rng(7).choice(len(y), 6, replace=False)] = -1
    return {"y": y, "time": np.arange(len(y)), "columns": DATA_COLUMNS}


def posterior_state_probs(idata, y, max_draws=200):
    """Posterior P(state 1) of every node (preorder), averaged over parameter draws."""
    post = diagnostics.get_group(idata, "posterior")
    q01, q10 = (np.asarray(post[k]).reshape(-1) for k in ("q01", "q10"))
    keep = np.linspace(0, len(q01) - 1, min(max_draws, len(q01))).astype(int)
    obs = _states(y)
    smooth = jax.jit(jax.vmap(lambda a, b: _tree_model(a, b).smooth(obs).probs[:, 1]))
    return np.asarray(smooth(jnp.asarray(q01[keep]), jnp.asarray(q10[keep]))).mean(0)


def plots(idata, data, out_dir):
    probs = posterior_state_probs(idata, data["y"])
    path = os.path.join(out_dir, "tree_state_probs.png")
    observed = [int(i) for i, s in zip(TREE.leaves, np.asarray(data["y"])) if np.isfinite(s) and s >= 0]
    plot_tree(TREE, probs, path, observed=observed, label="posterior P(state 1)", cmap="coolwarm",
              title="Mk model: ancestral states (squares: observed species)")
    return [path]
