"""Figures of docs/trees.md: run ``python docs/figures/tree_figures.py`` from the repository root.

tree_ou_node_means.png: the simulated data of models/ou_tree.py, posterior node means and sds under
the true parameters (``GaussianTree.smooth``), checked against 2000 exact joint posterior draws.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models"))

import ou_tree  # noqa: E402

from markovppl.graph.plot import plot_tree  # noqa: E402


def main():
    data = ou_tree.load_data()
    model = ou_tree._tree_model(*(jnp.asarray(ou_tree.TRUE[k]) for k in ("alpha", "theta", "sigma", "tau")))
    y = jnp.asarray(data["y"])[:, None]
    post = model.smooth(y)
    draws = model.posterior_sample(jax.random.PRNGKey(0), y, (2000,))[..., 0]
    assert np.allclose(np.asarray(draws.mean(0)), np.asarray(post.means[:, 0]), atol=5 * float(jnp.sqrt(post.covs.max() / 2000)))
    observed = [int(i) for i, v in zip(ou_tree.TREE.leaves, data["y"]) if np.isfinite(v)]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tree_ou_node_means.png")
    plot_tree(ou_tree.TREE, np.asarray(post.means[:, 0]), out, observed=observed, label="posterior mean E[x_v | y]",
              title="OU trait (alpha=1.5, theta=1, sigma=0.8, tau=0.15): posterior node means")
    print(out, "log p(y) =", float(post.log_evidence))


if __name__ == "__main__":
    main()
