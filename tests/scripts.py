"""Run the repository's scripts (examples/, models/) in a subprocess, as a user would."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(path, *args, cwd=ROOT, env=None, timeout=900):
    """Run ``ROOT / path`` with this interpreter and ``args``; assert it exits 0 and return its stdout.

    ``env`` adds variables to the current environment (matplotlib always draws off-screen)."""
    full_env = dict(os.environ, MPLBACKEND="Agg", **(env or {}))
    done = subprocess.run([sys.executable, str(ROOT / path), *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
