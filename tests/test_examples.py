"""The example scripts run end to end (short schedule) and write what they promise."""

from scripts import run_script


def run_example(name, tmp_path):
    return run_script(f"examples/{name}", env={"MARKOVPPL_EXAMPLE_QUICK": "1", "MARKOVPPL_EXAMPLE_OUT": str(tmp_path)},
                      timeout=600)


def test_quickstart(tmp_path):
    out = run_example("quickstart.py", tmp_path)
    assert "rates[2]" in out and (tmp_path / "quickstart_states.png").stat().st_size > 0


def test_nile_smoothing_reproduces_durbin_koopman(tmp_path):
    out = run_example("nile_smoothing.py", tmp_path)
    line = next(l for l in out.splitlines() if l.startswith("MLE"))
    s_eps = float(line.split("s_eps = ")[1].split()[0])
    s_eta = float(line.split("s_eta = ")[1].split()[0])
    assert abs(s_eps / 15099 - 1) < 0.01 and abs(s_eta / 1469.1 - 1) < 0.01
    assert (tmp_path / "nile_smoothing.png").stat().st_size > 0


def test_model_comparison_lfo(tmp_path):
    out = run_example("model_comparison_lfo.py", tmp_path)
    assert "elpd_LFO" in out and "3 states - 2 states" in out
