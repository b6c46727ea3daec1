"""The models gallery (`models/*.py`): each bundled model fits its bundled data through `markovppl fit`
on a short schedule, writes an InferenceData file that reloads to the same values, and writes
non-empty PNG plots."""

import numpy as np
import pytest

import markovppl.fit
from markovppl import cli, datasets, diagnostics
from markovppl.modelfile import bundled_models, load_model_file
from scripts import run_script

SHORT = ["--num-warmup", "60", "--num-samples", "40", "--chains", "2", "--no-progress"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# model name -> (bundled data loader, the model's own plots, posterior variables it must report)
GALLERY = {
    "poisson_hmm": (datasets.load_earthquakes, ["hidden_states.png"], ["rates", "P"]),
    "local_level": (datasets.load_nile, ["smoothed_level.png"], ["sigma2_eps", "sigma2_eta"]),
    "gaussian_hmm": (datasets.load_gnp_growth, ["regimes.png"], ["mu", "sigma", "P"]),
    "ar_lgssm": (datasets.load_us_inflation, ["smoothed_state.png"], ["phi", "sigma_eta", "sigma_eps"]),
}


def test_gallery_lists_the_bundled_models():
    gallery = bundled_models()
    assert set(GALLERY) <= set(gallery)
    for name in GALLERY:
        spec = load_model_file(gallery[name])
        assert spec.description and spec.plots is not None and spec.var_names
        data = spec.load_data()
        assert np.asarray(data["y"]).shape == np.asarray(data["time"]).shape == GALLERY[name][0]().values.shape


def _assert_same_values(in_memory, reloaded):
    groups = diagnostics.group_names(in_memory)
    assert set(groups) <= set(diagnostics.group_names(reloaded))
    for group in groups:
        a, b = diagnostics.get_group(in_memory, group), diagnostics.get_group(reloaded, group)
        assert set(a.data_vars) == set(b.data_vars), group
        for var in a.data_vars:
            np.testing.assert_array_equal(np.asarray(a[var]), np.asarray(b[var]), err_msg=f"{group}/{var}")


@pytest.mark.parametrize("name", [pytest.param("local_level", marks=pytest.mark.smoke), "poisson_hmm",
                                  "gaussian_hmm", "ar_lgssm"])
def test_bundled_model_fits_through_cli(name, tmp_path, monkeypatch, capsys):
    results = []
    real_fit_model = markovppl.fit.fit_model

    def recording_fit_model(*args, **kwargs):  # keep the in-memory result of the CLI's own fit
        results.append(real_fit_model(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(markovppl.fit, "fit_model", recording_fit_model)
    out = tmp_path / name
    assert cli.main(["fit", name, *SHORT, "--out", str(out)]) == 0
    assert "max R-hat" in capsys.readouterr().out
    (result,) = results

    loader, own_plots, var_names = GALLERY[name]
    saved = out / f"{name}_idata.nc"
    assert str(saved) in result.files
    reloaded = diagnostics.from_netcdf(saved)
    _assert_same_values(result.idata, reloaded)
    posterior = diagnostics.get_group(reloaded, "posterior")
    for var in var_names:
        values = np.asarray(posterior[var])
        assert values.shape[:2] == (2, 40) and np.all(np.isfinite(values)), var
    latent = diagnostics.get_group(reloaded, "latent_posterior")["y"]
    assert latent.shape[:3] == (2, 40, loader().values.shape[0])

    pngs = [f for f in result.files if f.endswith(".png")]
    assert {p.rsplit("/", 1)[-1] for p in pngs} == {"trace.png", *own_plots}
    for png in pngs:
        with open(png, "rb") as f:
            head = f.read(8)
        assert head == PNG_SIGNATURE and (out / png.rsplit("/", 1)[-1]).stat().st_size > 1000, png


# models fitted by particle Gibbs (PARTICLE_GIBBS: NUTS on the parameters, conditional SMC on the path)
PARTICLE_GALLERY = {
    "lg_oracle": (["smoothed_states.png"], ["rho", "sigma_x", "sigma_y"]),
    "growth": (["smoothed_states.png"], ["sigma_v", "sigma_w"]),
    "stochastic_volatility": (["volatility.png"], ["mu", "phi", "sigma"]),
}


@pytest.mark.parametrize("name", ["lg_oracle", pytest.param("growth", marks=pytest.mark.slow),
                                  pytest.param("stochastic_volatility", marks=pytest.mark.slow)])
def test_particle_gibbs_model_fits_through_cli(name, tmp_path, capsys):
    spec = load_model_file(bundled_models()[name])
    assert spec.particle_gibbs and spec.particle_gibbs["site"] == "x"
    out = tmp_path / name
    assert cli.main(["fit", name, "--num-warmup", "30", "--num-samples", "20", "--chains", "1", "--no-progress",
                     "--out", str(out)]) == 0
    assert "max R-hat" in capsys.readouterr().out
    idata = diagnostics.from_netcdf(out / f"{name}_idata.nc")
    own_plots, var_names = PARTICLE_GALLERY[name]
    posterior = diagnostics.get_group(idata, "posterior")
    assert "x" not in posterior.data_vars
    for var in var_names:
        assert np.asarray(posterior[var]).shape[:2] == (1, 20) and np.all(np.isfinite(np.asarray(posterior[var])))
    num_steps = np.asarray(spec.load_data()["y"]).shape[0]
    latent = diagnostics.get_group(idata, "latent_posterior")["x"]
    assert latent.dims == ("chain", "draw", "time") and latent.shape == (1, 20, num_steps)
    stats = diagnostics.get_group(idata, "sample_stats")
    assert stats["particle_ess"].shape == (1, 20, num_steps)
    assert 0 < float(stats["renewal_rate"].mean()) <= 1
    for png in ["trace.png", *own_plots]:
        with open(out / png, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE


def test_ion_channel_jump_process_model_fits_through_cli(tmp_path, capsys):
    # continuous-time jump process (#4): the observation times are the first data column; a short
    # recording written as CSV keeps the run fast and exercises --data with two columns
    spec = load_model_file(bundled_models()["ion_channel"])
    data = spec.load_data()
    assert np.asarray(data["y"]).shape == (np.asarray(data["time"]).shape[0], 2) and np.all(np.diff(data["time"]) >= 0)
    csv = tmp_path / "recording.csv"
    rows = np.asarray(data["y"])[:80]
    csv.write_text("time,current\n" + "".join(f"{float(t)!r},{float(c)!r}\n" for t, c in rows))
    out = tmp_path / "ion_channel"
    assert cli.main(["fit", "ion_channel", "--data", str(csv), "--columns", "time,current", "--time-column", "time",
                     "--num-warmup", "30", "--num-samples", "20", "--chains", "1", "--no-progress", "--out", str(out)]) == 0
    assert "max R-hat" in capsys.readouterr().out
    idata = diagnostics.from_netcdf(out / "ion_channel_idata.nc")
    posterior = diagnostics.get_group(idata, "posterior")
    for var in ["rates", "i_open", "sigma"]:
        assert np.all(np.isfinite(np.asarray(posterior[var])))
    latent = diagnostics.get_group(idata, "latent_posterior")["y"]
    assert latent.shape == (1, 20, 80) and set(np.unique(np.asarray(latent))) <= {0, 1, 2}
    with open(out / "posterior_paths.png", "rb") as f:
        assert f.read(8) == PNG_SIGNATURE


@pytest.mark.parametrize("name,plot", [("mk_tree", "tree_state_probs.png"),
                                       pytest.param("ou_tree", "tree_node_means.png", marks=pytest.mark.slow)])
def test_tree_model_fits_through_cli(name, plot, tmp_path, capsys):
    # tree families (#4): latent node draws in ArviZ with the node names as coordinates
    spec = load_model_file(bundled_models()[name])
    out = tmp_path / name
    assert cli.main(["fit", name, "--num-warmup", "30", "--num-samples", "20", "--chains", "1", "--no-progress",
                     "--out", str(out)]) == 0
    assert "max R-hat" in capsys.readouterr().out
    idata = diagnostics.from_netcdf(out / f"{name}_idata.nc")
    tree = spec.module.TREE
    latent = diagnostics.get_group(idata, "latent_posterior")["y"]
    assert latent.dims[:3] == ("chain", "draw", "node") and latent.shape[:3] == (1, 20, tree.num_nodes)
    assert list(latent.coords["node"].values) == list(tree.names)
    data = np.asarray(spec.load_data()["y"])
    loglik = diagnostics.get_group(idata, "log_likelihood")["y"]
    assert loglik.dims == ("chain", "draw", "observed_node") and loglik.shape == (1, 20, len(data))
    assert np.all(np.isfinite(np.asarray(loglik)))
    with open(out / plot, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE


def test_branching_diffusion_model_file_target():
    # the non-centred target of models/branching_diffusion.py: finite log density and gradients at the truth
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    spec = load_model_file(bundled_models()["branching_diffusion"])
    assert spec.pcn and spec.pcn["sites"] == ["z_root", "z_edges"]
    mod = spec.module
    y = jnp.asarray(spec.load_data()["y"])
    assert y.shape == (len(mod.TREE.leaves), 2) and bool(jnp.all(jnp.isfinite(y)))
    shape = mod._tree_model(jnp.asarray(mod.TRUE["theta1"]), jnp.asarray(mod.TRUE["theta2"])).noise_shape
    params = {"theta1": jnp.asarray(mod.TRUE["theta1"]), "theta2": jnp.asarray(mod.TRUE["theta2"]),
              "z_root": jnp.zeros(2), "z_edges": jnp.zeros(shape)}
    f = lambda p: log_density(mod.model, (y,), {}, p)[0]
    val, grad = jax.jit(jax.value_and_grad(f))(params)
    assert np.isfinite(float(val))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grad))


@pytest.mark.slow
def test_branching_diffusion_model_fits_through_cli(tmp_path, capsys):
    out = tmp_path / "branching_diffusion"
    assert cli.main(["fit", "branching_diffusion", "--num-warmup", "20", "--num-samples", "10", "--chains", "1",
                     "--no-progress", "--out", str(out)]) == 0
    assert "max R-hat" in capsys.readouterr().out
    idata = diagnostics.from_netcdf(out / "branching_diffusion_idata.nc")
    assert "z_edges" in diagnostics.get_group(idata, "latent_posterior").data_vars
    assert "pcn_accept_prob" in diagnostics.get_group(idata, "sample_stats").data_vars
    with open(out / "guided_tree_paths.png", "rb") as f:
        assert f.read(8) == PNG_SIGNATURE


@pytest.mark.slow
def test_sir_contact_script_runs(tmp_path):
    out = run_script("models/sir_contact.py", "--iterations", 20, "--ess-samples", 0, "--out", tmp_path, cwd=tmp_path)
    means = [float(line.split("posterior mean")[1].split()[0]) for line in out.splitlines() if "posterior mean" in line]
    assert len(means) == 3 and all(np.isfinite(means) & (np.array(means) > 0)), out
    for png in ("sir_paths.png", "sir_trace.png"):
        with open(tmp_path / png, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE


@pytest.mark.slow
def test_gamma_bridge_script_runs(tmp_path):
    out = run_script("models/gamma_bridge.py", "--num-paths", 20, "--plot", tmp_path / "paths.png", cwd=tmp_path)
    rows = [line for line in out.splitlines() if "log p =" in line]
    assert len(rows) == 2 and all(np.isfinite(float(r.split("log p =")[1].split()[0])) for r in rows), out
    with open(tmp_path / "paths.png", "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
