"""Smoke tests for the ArviZ 0.x / 1.x compatibility layer."""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS

from markovppl.diagnostics import _arviz_compat as azc

pytestmark = pytest.mark.smoke

N_CHAINS, N_DRAWS, N_OBS, N_TIME = 2, 100, 20, 7


def _model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


@pytest.fixture(scope="module")
def mcmc():
    y = np.random.default_rng(0).normal(1.0, 1.0, size=N_OBS)
    m = MCMC(
        NUTS(_model),
        num_warmup=100,
        num_samples=N_DRAWS,
        num_chains=N_CHAINS,
        chain_method="sequential",
        progress_bar=False,
    )
    m.run(jax.random.PRNGKey(0), y)
    return m


@pytest.fixture()
def idata(mcmc):
    return azc.from_numpyro(mcmc, log_likelihood=True, dims={"y": ["time"]})


def _latent(seed=1):
    return np.random.default_rng(seed).normal(size=(N_CHAINS, N_DRAWS, N_TIME))


def test_generation_flag():
    assert azc.ARVIZ_GENERATION in (0, 1)


def test_from_numpyro_groups(mcmc, idata):
    names = azc.group_names(idata)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(names)
    assert "log_likelihood" not in azc.group_names(azc.from_numpyro(mcmc))
    post = azc.get_group(idata, "posterior")
    assert post["mu"].shape == (N_CHAINS, N_DRAWS)
    assert azc.get_group(idata, "log_likelihood")["y"].dims == ("chain", "draw", "time")
    with pytest.raises(KeyError):
        azc.get_group(idata, "no_such_group")


def test_summary(idata):
    df = azc.summary(idata, var_names=["mu"])
    assert {"mean", "sd", "ess_bulk", "ess_tail", "r_hat"} <= set(df.columns)
    row = df.loc["mu"]
    assert np.isfinite(row["r_hat"]) and row["r_hat"] < 1.2
    assert np.isfinite(row["mean"]) and row["sd"] > 0 and row["ess_bulk"] > 0


def test_add_group_and_replace(idata):
    z = _latent()
    out = azc.add_group(
        idata,
        "latent_posterior",
        {"z": (("chain", "draw", "time"), z)},
        coords={"time": np.arange(N_TIME)},
    )
    assert "latent_posterior" in azc.group_names(out)
    np.testing.assert_array_equal(azc.get_group(out, "latent_posterior")["z"].values, z)
    z2 = _latent(seed=2)
    out = azc.add_group(out, "latent_posterior", {"z": (("chain", "draw", "time"), z2)})
    assert azc.group_names(out).count("latent_posterior") == 1
    np.testing.assert_array_equal(azc.get_group(out, "latent_posterior")["z"].values, z2)


def test_netcdf_round_trip(idata, tmp_path):
    z = _latent()
    idata = azc.add_group(
        idata,
        "latent_posterior",
        {"z": (("chain", "draw", "time"), z)},
        coords={"time": np.arange(N_TIME)},
    )
    path = azc.to_netcdf(idata, tmp_path / "fit.nc")
    back = azc.from_netcdf(path)
    assert set(azc.group_names(back)) == set(azc.group_names(idata))
    for name in azc.group_names(idata):
        orig, new = azc.get_group(idata, name), azc.get_group(back, name)
        assert set(orig.data_vars) == set(new.data_vars), name
        for var in orig.data_vars:
            np.testing.assert_array_equal(new[var].values, orig[var].values)
    np.testing.assert_array_equal(azc.get_group(back, "latent_posterior")["z"].values, z)
    assert azc.get_group(back, "latent_posterior")["z"].dims == ("chain", "draw", "time")


def test_plot_trace(idata, tmp_path):
    path = tmp_path / "trace.png"
    azc.plot_trace(idata, ["mu"], path)
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_loo(idata):
    res = azc.loo(idata)
    assert isinstance(res, azc.LooResult)
    ll = azc.get_group(idata, "log_likelihood")["y"].values
    lppd_approx = float(ll.mean(axis=(0, 1)).sum())
    assert np.isfinite(res.elpd) and np.isfinite(res.se) and res.se > 0
    assert abs(res.elpd - lppd_approx) < 5.0
    assert res.pareto_k.shape == (N_OBS,)
    assert 0 < res.p_loo < 5
    assert azc.loo(idata, var_name="y").elpd == pytest.approx(res.elpd)


def test_loo_after_add_group(mcmc):
    """A log_likelihood group written by add_group (time dim) works with loo."""
    idata = azc.from_numpyro(mcmc)
    full = azc.from_numpyro(mcmc, log_likelihood=True)
    ll = np.asarray(azc.get_group(full, "log_likelihood")["y"])
    idata = azc.add_group(idata, "log_likelihood", {"y": (("chain", "draw", "time"), ll)})
    res = azc.loo(idata)
    assert np.isfinite(res.elpd) and res.pareto_k.shape == (N_OBS,)


def test_divergences(idata):
    n = azc.divergences(idata)
    assert isinstance(n, int) and n >= 0


def test_from_dict_builds_groups_that_every_helper_reads(tmp_path):
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(2, 100)) * 0.3
    y = np.array([0.1, -0.3, 0.4])
    pointwise = -0.5 * (y - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    diverging = np.zeros((2, 100), bool)
    diverging[0, 5] = True
    idata = azc.from_dict({"posterior": {"mu": mu}, "log_likelihood": {"y": pointwise},
                              "sample_stats": {"diverging": diverging}})
    assert set(azc.group_names(idata)) == {"posterior", "log_likelihood", "sample_stats"}
    np.testing.assert_array_equal(azc.get_group(idata, "posterior")["mu"].values, mu)
    assert azc.divergences(idata) == 1
    res = azc.loo(idata)
    # PSIS-LOO is close to the sum of log mean predictive densities for a nearly flat posterior
    lppd = np.sum(np.log(np.mean(np.exp(pointwise.reshape(-1, 3)), 0)))
    assert abs(res.elpd - lppd) < 0.5 and res.pareto_k.shape == (3,)
    back = azc.from_netcdf(azc.to_netcdf(idata, tmp_path / "d.nc"))
    np.testing.assert_array_equal(azc.get_group(back, "log_likelihood")["y"].values, pointwise)
