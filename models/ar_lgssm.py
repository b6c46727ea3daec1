"""Latent AR(1) plus noise (a linear-Gaussian state-space model) for quarterly US inflation, 1959Q2-2009Q3.

Run it with ``markovppl fit ar_lgssm``; fit your own series with
``--data my.csv --columns inflation --time-column year``.

Model: $x_t = \\phi x_{t-1} + \\eta_t$, $\\eta_t \\sim N(0, \\sigma^2_\\eta)$, started from its stationary law
$x_0 \\sim N(0, \\sigma^2_\\eta / (1 - \\phi^2))$; $y_t = c + x_t + \\varepsilon_t$, $\\varepsilon_t \\sim N(0, \\sigma^2_\\varepsilon)$.
Priors: $\\phi = 2u - 1$ with $u \\sim \\mathrm{Beta}(2, 2)$ (a transformed prior on $(-1, 1)$, so the latent
process is stationary), $c \\sim N(0, 10^2)$, $\\sigma_\\varepsilon \\sim HN(2)$, and the stationary standard
deviation of the state $\\sigma_x \\sim HN(4)$ with $\\sigma_\\eta = \\sigma_x \\sqrt{1 - \\phi^2}$: sampling
$\\sigma_x$ rather than $\\sigma_\\eta$ removes most of the $\\phi$-$\\sigma_\\eta$ ridge.

Why this series: CPI inflation (``mp.datasets.load_us_inflation``, annualised percent, public domain) is
persistent but noisy from quarter to quarter: its lag-1 and lag-2 autocorrelations are 0.64 and 0.60,
whereas a pure AR(1) would give 0.64 and 0.41. An AR(1) observed with noise (an ARMA(1, 1)) explains
exactly that pattern, so $\\phi$ and the two variances are identified from the data, and the smoothed
state is the persistent ("core") part of inflation. The Nile flow or GNP growth would be weaker choices:
the first is a local level with a shift (and already has ``local_level``), the second shows
little persistence (lag-1 autocorrelation 0.34) and is the regime-switching example (``gaussian_hmm``).

The level $c$ is not a NUTS parameter: it is a second, constant state coordinate ($A = \\mathrm{diag}(\\phi, 1)$,
$Q = \\mathrm{diag}(\\sigma^2_\\eta, 0)$, $H = (1, 1)$, prior $N(0, 10^2)$), so the filter integrates it out
exactly and NUTS samples only $(\\phi, \\sigma_x, \\sigma_\\varepsilon)$. The
latent path $(x_t, c)$ is drawn afterwards, one exact posterior draw per parameter draw
(``latent_posterior``, variable ``y``, last axis ``(x_t, c)``): the posterior of $c$ is ``[..., 0, 1]``.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl import diagnostics
from markovppl.diagnostics.plots import plot_smoothing_band

DATA_COLUMNS = ["inflation"]
TIME_COLUMN = "year"
VAR_NAMES = ["phi", "sigma_x", "sigma_eta", "sigma_eps"]
C_PRIOR_MEAN, C_PRIOR_SD = 0.0, 10.0


def _ssm(phi, sigma_x, sigma_eps, num_steps=None):
    # state (x_t, c): the constant c rides along (A = diag(phi, 1), Q = diag(sigma_eta^2, 0)), so it is
    # integrated out exactly by the filter instead of being sampled by NUTS
    stationary_var = sigma_x**2
    sigma_eta = sigma_x * jnp.sqrt(1.0 - phi**2)
    zero = jnp.zeros_like(phi)
    return mp.LinearGaussianSSM(
        jnp.array([0.0, C_PRIOR_MEAN]), jnp.diag(jnp.stack([stationary_var, C_PRIOR_SD**2 + zero])),
        jnp.diag(jnp.stack([phi, 1.0 + zero])), jnp.diag(jnp.stack([sigma_eta**2, zero])),
        jnp.ones((1, 2)), jnp.reshape(sigma_eps**2, (1, 1)), num_steps=num_steps)


def model(y=None, num_steps=None):
    # sample u on (0, 1) and map it to phi = 2u - 1: the sample site's support is the unit interval, so NUTS
    # works on logit(u) (an AffineTransform of a Beta would declare a real support and let NUTS step outside)
    u = numpyro.sample("phi_unit", dist.Beta(2.0, 2.0))
    phi = numpyro.deterministic("phi", 2.0 * u - 1.0)
    sigma_x = numpyro.sample("sigma_x", dist.HalfNormal(4.0))  # stationary sd of the latent state
    numpyro.deterministic("sigma_eta", sigma_x * jnp.sqrt(1.0 - phi**2))
    sigma_eps = numpyro.sample("sigma_eps", dist.HalfNormal(2.0))
    obs = None if y is None else jnp.reshape(y, (-1, 1))  # the SSM observes (T, 1) vectors
    numpyro.sample("y", _ssm(phi, sigma_x, sigma_eps, num_steps if y is None else None), obs=obs)


def load_data():
    data = mp.datasets.load_us_inflation()
    return {"y": data.values, "time": data.time, "columns": DATA_COLUMNS}


def plots(idata, data, out_dir):
    # inflation with the posterior mean of c + x_t (smoothed means averaged over parameter draws) and a 90%
    # band from the exact posterior latent paths, one per draw, so the band includes parameter uncertainty
    post = diagnostics.get_group(idata, "posterior")
    y = jnp.asarray(data["y"])
    params = [jnp.asarray(np.asarray(post[k]).reshape(-1), y.dtype) for k in ("phi", "sigma_x", "sigma_eps")]
    obs = jnp.reshape(y, (-1, 1))
    smooth = jax.jit(jax.vmap(lambda *p: _ssm(*p).smooth(obs).smoothed_means.sum(-1)))
    mean = np.asarray(smooth(*params)).mean(0)
    latent = np.asarray(diagnostics.get_group(idata, "latent_posterior")["y"])  # (chain, draw, time, 2)
    draws = latent.reshape((-1,) + latent.shape[2:]).sum(-1)
    path = os.path.join(out_dir, "smoothed_state.png")
    plot_smoothing_band(data["time"], data["y"], draws, path, mean=mean, ylabel="inflation (% per year)",
                        label="c + x_t", title="US CPI inflation and its persistent component (latent AR(1) plus noise)")
    return [path]
