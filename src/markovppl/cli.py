"""The ``markovppl`` command line: ``demo``, ``fit`` and ``models``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]

FIT_EPILOG = """\
A model file is a Python file defining model(y=None, ...) (a NumPyro model) and load_data() (its
default data); optionally DATA_COLUMNS, TIME_COLUMN, VAR_NAMES, NUTS_OPTIONS and
plots(idata, data, out_dir).
It is executed with your rights, like any script you run: only fit model files you trust.
"""


def _nuts_options(parser, out_default: str, draws: int = 500) -> None:
    parser.add_argument("--num-warmup", type=int, default=draws, help=f"NUTS warm-up iterations (default {draws})")
    parser.add_argument("--num-samples", type=int, default=draws, help=f"draws per chain (default {draws})")
    parser.add_argument("--chains", type=int, default=2, help="number of chains (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=out_default, help=f"output folder (default: {out_default})")
    parser.add_argument("--x64", action="store_true", help="use float64")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _report(result, out_dir: str) -> None:
    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(result.summary.round(3).to_string())
    print(f"\nmax R-hat {float(result.summary['r_hat'].max()):.3f}; divergences {result.divergences}")
    print(f"results written to {out_dir}/:")
    for f in result.files:
        print(f"  {f}")


def _demo(args) -> int:
    from .demo import run_demo

    print("markovppl demo: 3-state Poisson HMM for the annual counts of major earthquakes, 1900-2006")
    print(f"NUTS: {args.chains} chains x ({args.num_warmup} warm-up + {args.num_samples} draws)\n")
    result = run_demo(args.out, num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.chains,
                      seed=args.seed, progress_bar=not args.no_progress)
    _report(result, args.out)
    return 0


def _fit(args) -> int:
    from pathlib import Path

    from .fit import fit_model
    from .modelfile import find_model_file, load_model_file, read_csv_columns

    spec = load_model_file(find_model_file(args.model_file))
    if args.data:
        columns = args.columns.split(",") if args.columns else spec.data_columns
        if not columns:
            raise ValueError(f"--columns is required: {spec.path.name} defines no DATA_COLUMNS")
        data = read_csv_columns(args.data, [c.strip() for c in columns], args.time_column or spec.time_column)
        source = f"{args.data} (columns {', '.join(data['columns'])})"
    else:
        data = spec.load_data()
        source = "bundled data"
    out = args.out or str(Path("results") / spec.path.stem)
    print(f"markovppl fit: {spec.path.name} — {spec.description}")
    print(f"data: {source}, {len(data['y'])} steps")
    print(f"NUTS: {args.chains} chains x ({args.num_warmup} warm-up + {args.num_samples} draws)\n")
    result = fit_model(spec.model, data, out, name=spec.path.stem, var_names=spec.var_names, plots=spec.plots,
                       nuts_options=spec.nuts_options, particle_gibbs=spec.particle_gibbs, pcn=spec.pcn,
                       num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.chains,
                       seed=args.seed, progress_bar=not args.no_progress)
    _report(result, out)
    return 0


def _models(args) -> int:
    from .modelfile import bundled_models, describe

    gallery = bundled_models()
    if not gallery:
        print("no bundled models found (set MARKOVPPL_MODELS to a folder of model files)")
        return 0
    width = max(map(len, gallery))
    for name, path in gallery.items():
        try:
            line = describe(path)  # the docstring is read, the file is not executed
        except ValueError as err:
            line = f"(cannot read: {err})"
        print(f"{name:<{width}}  {line}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``markovppl`` command: ``demo``, ``fit MODEL_FILE`` and ``models``.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0 on success).

    Examples:
        >>> main(["models"])
        ar_lgssm ...Latent AR(1) plus noise ...
        ...
        poisson_hmm ...Poisson HMM with 3 ordered states for the annual counts of major earthquakes (1900-2006).
        ...
        0
    """
    parser = argparse.ArgumentParser(prog="markovppl", description="Latent-Markov models for NumPyro.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit a 3-state Poisson HMM to the bundled earthquake counts")
    _nuts_options(demo, "results", draws=1000)
    fit = sub.add_parser("fit", help="fit a model file to its bundled data or a CSV file", epilog=FIT_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("model_file", help="path to a model file, or the name of a bundled model (see `markovppl models`)")
    fit.add_argument("--data", help="CSV file with a header row (empty cells are missing observations)")
    fit.add_argument("--columns", help="comma-separated CSV columns to observe (default: the model's DATA_COLUMNS)")
    fit.add_argument("--time-column", help="CSV column with the time of each row (default: the model's TIME_COLUMN)")
    _nuts_options(fit, "results/<model name>")
    fit.set_defaults(out=None)
    sub.add_parser("models", help="list the bundled model files")
    args = parser.parse_args(argv)
    if args.command == "models":
        return _models(args)
    if args.chains < 1 or args.num_samples < 1 or args.num_warmup < 0:
        parser.error("--chains and --num-samples must be >= 1 and --num-warmup >= 0")
    import numpyro

    numpyro.set_host_device_count(args.chains)
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    try:
        return _demo(args) if args.command == "demo" else _fit(args)
    except ValueError as err:  # bad model file, bad CSV, bad arguments: one clear line, no traceback
        print(f"markovppl {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
