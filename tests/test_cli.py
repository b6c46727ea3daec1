"""The command line: `markovppl demo` (the README's main job), `fit` and `models`, and their errors."""

import numpy as np
import pytest

from markovppl import cli, diagnostics
from markovppl.modelfile import DataError, ModelFileError, read_csv_columns

SHORT = ["--num-warmup", "60", "--num-samples", "40", "--chains", "2", "--no-progress"]


@pytest.mark.smoke
def test_demo_writes_reloadable_results_and_plots(tmp_path, capsys):
    out = tmp_path / "results"
    assert cli.main(["demo", *SHORT, "--out", str(out)]) == 0
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


def test_fit_with_csv_columns_and_missing_cells(tmp_path, capsys):
    csv = tmp_path / "counts.csv"
    rows = ["year,count,other"] + [f"{1950 + i},{c},{i}" for i, c in enumerate([13, 14, 8, 10, 16, 26, 32, 27, 18, 32])]
    rows[4] = "1953,,3"  # an empty cell is a missing observation
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "fit"
    assert cli.main(["fit", "poisson_hmm", "--data", str(csv), "--columns", "count", *SHORT, "--out", str(out)]) == 0
    idata = diagnostics.from_netcdf(out / "poisson_hmm_idata.nc")
    ll = diagnostics.get_group(idata, "log_likelihood")["y"]
    assert ll.shape == (2, 40, 9) and 1953 not in ll["time"].values
    assert (out / "hidden_states.png").stat().st_size > 0


def test_models_lists_the_gallery(capsys):
    assert cli.main(["models"]) == 0
    assert "poisson_hmm" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, match",
    [
        ("year,flow\n1871,1120\n1872,abc\n", r"line 3, column 'flow': cannot parse 'abc'"),
        ("year,level\n1871,1120\n", r"column\(s\) 'flow' not in .* \(columns: year, level\)"),
        ("year,flow\n1871,1120\n1872\n", "line 3: expected 2 fields, found 1"),
        ("year,flow\n", "has a header but no data rows"),
        ("year,flow\n1872,1\n1871,2\n", "time column 'year' is not strictly increasing"),
    ],
)
def test_bad_csv_gives_clear_errors(tmp_path, content, match):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_csv_columns(path, ["flow"], "year")


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    bad_model = tmp_path / "bad_model.py"
    bad_model.write_text('"""A model file without load_data."""\ndef model(y=None):\n    pass\n')
    assert cli.main(["fit", str(bad_model), *SHORT]) == 2
    err = capsys.readouterr().err
    assert "does not define load_data" in err and "Traceback" not in err
    csv = tmp_path / "d.csv"
    csv.write_text("year,count\n1900,3\n")
    assert cli.main(["fit", "poisson_hmm", "--data", str(csv), "--columns", "counts", *SHORT]) == 2
    assert "column(s) 'counts' not in" in capsys.readouterr().err
    assert cli.main(["fit", "no_such_model", *SHORT]) == 2
    assert "no model file 'no_such_model'" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("import does_not_exist\n")
    with pytest.raises(ModelFileError, match="failed to import: ModuleNotFoundError"):
        from markovppl.modelfile import load_model_file

        load_model_file(broken)


def test_model_file_optional_names(tmp_path):
    from markovppl.modelfile import load_model_file

    path = tmp_path / "m.py"
    path.write_text('"""Tiny model."""\nNUTS_OPTIONS = {"target_accept_prob": 0.9}\n'
                    'def model(y=None):\n    pass\ndef load_data():\n    return {}\n')
    spec = load_model_file(path)
    assert spec.description == "Tiny model." and spec.nuts_options == {"target_accept_prob": 0.9}
    assert spec.plots is None and spec.data_columns is None


def test_cli_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        cli.main(["demo", "--chains", "0"])
    with pytest.raises(SystemExit):
        cli.main([])
