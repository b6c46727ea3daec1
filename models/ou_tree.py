"""Phylogenetic Ornstein-Uhlenbeck trait model on a 60-species tree (simulated data, exact tree likelihood).

Run it with ``markovppl fit ou_tree``. The trait $x$ evolves along every branch of the tree as an
Ornstein-Uhlenbeck process pulled towards an optimum $\\theta$,
$dx = -\\alpha (x - \\theta)\\,dt + \\sigma\\,dW$ (the Hansen model of adaptive evolution), starting at the
root from its stationary law $N(\\theta, \\sigma^2 / (2\\alpha))$. Each species (leaf) is measured once
with noise, $y = x + N(0, \\tau^2)$; some species are unmeasured (NaN) and are predicted.

Priors: $\\log\\alpha \\sim N(0, 1)$, $\\theta \\sim N(0, 2^2)$, $\\sigma \\sim HN(1)$, $\\tau \\sim HN(0.5)$.
The latent node values are marginalised exactly by the level-ordered backward filter
(``mp.GaussianTree``), so NUTS runs on the four parameters only; the plot shows the tree with the
posterior mean of every node (averaged over the parameter draws).

**Data.** No phylogenetic trait data set with a compatible licence ships with markovppl, so
``load_data`` *simulates* one with a fixed seed: a random 60-leaf binary tree (coalescent topology,
exponential branch lengths, mean 0.3; ``markovppl.graph.random_tree(60, seed=2026)``) and a trait
from the model itself with $\\alpha = 1.5$, $\\theta = 1$, $\\sigma = 0.8$, $\\tau = 0.15$, five species
unmeasured. To fit your own data, set ``TREE_NEWICK`` to your tree and pass ``--data traits.csv
--columns trait`` with one row per leaf, in the order of ``mp.graph.from_newick(TREE_NEWICK)`` leaves
(left to right in the Newick string).
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

DATA_COLUMNS = ["trait"]
VAR_NAMES = ["alpha", "theta", "sigma", "tau"]
TREE_NEWICK = None  # None: the simulated 60-leaf tree; or a Newick string with one leaf per data row
TRUE = {"alpha": 1.5, "theta": 1.0, "sigma": 0.8, "tau": 0.15}


def _tree():
    return mp.graph.random_tree(60, seed=2026, mean_length=0.3) if TREE_NEWICK is None else mp.graph.from_newick(TREE_NEWICK)


TREE = _tree()


def _tree_model(alpha, theta, sigma, tau):
    ou = mp.kernels.OrnsteinUhlenbeck(jnp.reshape(alpha, (1, 1)), jnp.reshape(theta, (1,)), jnp.reshape(sigma**2, (1, 1)))
    root_var = sigma**2 / (2 * alpha)
    return mp.GaussianTree(TREE, ou, jnp.reshape(theta, (1,)), jnp.reshape(root_var, (1, 1)), jnp.reshape(tau**2, (1, 1)))


def model(y=None):
    log_alpha = numpyro.sample("log_alpha", dist.Normal(0.0, 1.0))
    alpha = numpyro.deterministic("alpha", jnp.exp(log_alpha))
    theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    tau = numpyro.sample("tau", dist.HalfNormal(0.5))
    obs = None if y is None else jnp.reshape(y, (-1, 1))  # one row per leaf, trait dimension 1
    numpyro.sample("y", _tree_model(alpha, theta, sigma, tau), obs=obs)


def load_data():
    if TREE_NEWICK is not None:
        raise ValueError("TREE_NEWICK is set: pass your trait data with --data/--columns")
    truth = _tree_model(*(jnp.asarray(TRUE[k]) for k in ("alpha", "theta", "sigma", "tau")))
    y = np.array(truth.sample(jax.random.PRNGKey(2026)))[:, 0]
    y[np.random.default_rng(2026).choice(len(y), 5, replace=False)] = np.nan
    return {"y": y, "time": np.arange(len(y)), "columns": DATA_COLUMNS}


def posterior_node_means(idata, y, max_draws=200):
    """Posterior mean of every node (preorder), averaged over (up to ``max_draws``) parameter draws."""
    post = diagnostics.get_group(idata, "posterior")
    draws = {k: np.asarray(post[k]).reshape(-1) for k in ("alpha", "theta", "sigma", "tau")}
    keep = np.linspace(0, len(draws["alpha"]) - 1, min(max_draws, len(draws["alpha"]))).astype(int)
    obs = jnp.reshape(jnp.asarray(y, float), (-1, 1))
    smooth = jax.jit(jax.vmap(lambda a, t, s, u: _tree_model(a, t, s, u).smooth(obs).means[:, 0]))
    return np.asarray(smooth(*(jnp.asarray(draws[k][keep]) for k in ("alpha", "theta", "sigma", "tau")))).mean(0)


def plots(idata, data, out_dir):
    means = posterior_node_means(idata, data["y"])
    path = os.path.join(out_dir, "tree_node_means.png")
    observed = [int(i) for i, yy in zip(TREE.leaves, data["y"]) if np.isfinite(yy)]
    plot_tree(TREE, means, path, observed=observed, label="posterior mean of the trait",
              title="OU trait on the tree: posterior node means (squares: measured species)")
    return [path]
