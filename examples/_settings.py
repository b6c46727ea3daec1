"""Shared settings of the example scripts: set MARKOVPPL_EXAMPLE_QUICK=1 for a short schedule (tests)."""

import os

QUICK = os.environ.get("MARKOVPPL_EXAMPLE_QUICK") == "1"
NUM_WARMUP, NUM_SAMPLES = (60, 40) if QUICK else (500, 500)
OUT_DIR = os.environ.get("MARKOVPPL_EXAMPLE_OUT", "results")
