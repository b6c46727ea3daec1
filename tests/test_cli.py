"""The README's main job, `markovppl demo`, on a short schedule."""

import os

import numpy as np
import pytest

from markovppl import cli, diagnostics


@pytest.mark.smoke
def test_demo_writes_reloadable_results_and_plots(tmp_path, capsys):
    out = tmp_path / "results"
    rc = cli.main(["demo", "--num-warmup", "60", "--num-samples", "40", "--chains", "2", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "r_hat" in printed and "rates[2]" in printed
    for name in ["earthquakes_idata.nc", "summary.csv", "trace.png", "hidden_states.png"]:
        assert (out / name).stat().st_size > 0
    with open(out / "trace.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    idata = diagnostics.from_netcdf(out / "earthquakes_idata.nc")
    assert {"posterior", "latent_posterior", "log_likelihood"} <= set(diagnostics.group_names(idata))
    rates = diagnostics.get_group(idata, "posterior")["rates"].values
    assert rates.shape == (2, 40, 3) and np.all(np.diff(rates, axis=-1) > 0)  # ordered rates
    assert diagnostics.get_group(idata, "latent_posterior")["y"].shape == (2, 40, 107)


def test_cli_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        cli.main(["demo", "--chains", "0"])
    with pytest.raises(SystemExit):
        cli.main([])
