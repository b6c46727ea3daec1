"""The ``markovppl`` command line."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _demo(args) -> int:
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    import pandas as pd

    from . import diagnostics
    from .demo import run_demo

    print("markovppl demo: 3-state Poisson HMM for the annual counts of major earthquakes, 1900-2006")
    print(f"NUTS: {args.chains} chains x ({args.num_warmup} warm-up + {args.num_samples} draws)\n")
    result = run_demo(args.out, num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.chains,
                      seed=args.seed, progress_bar=not args.no_progress)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(result.summary.round(3).to_string())
    rhat = float(result.summary["r_hat"].max())
    print(f"\nmax R-hat {rhat:.3f}; divergences {diagnostics.divergences(result.idata)}")
    print(f"results written to {result.out_dir}/:")
    for f in result.files:
        print(f"  {f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="markovppl", description="Latent-Markov models for NumPyro.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit a 3-state Poisson HMM to the bundled earthquake counts")
    demo.add_argument("--num-warmup", type=int, default=500)
    demo.add_argument("--num-samples", type=int, default=500)
    demo.add_argument("--chains", type=int, default=2)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="results", help="output folder (default: results)")
    demo.add_argument("--x64", action="store_true", help="use float64")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.chains < 1:
            parser.error("--chains must be >= 1")
        import numpyro

        numpyro.set_host_device_count(max(args.chains, 1))
        return _demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
