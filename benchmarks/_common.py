"""Shared helpers for the markovppl benchmarks (timing, versions, machine)."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time


def setup_jax(x64: bool) -> None:
    """Must run before anything touches jax arrays."""
    import jax

    jax.config.update("jax_enable_x64", bool(x64))


def block(x):
    import jax

    return jax.block_until_ready(x)


def time_fn(fn, *args, repeats: int = 20, slow_s: float = 0.5):
    """Return ``(first_call_s, median_s, result)`` for an already-jitted ``fn``.

    The first call includes tracing and XLA compilation; the median is taken over
    ``repeats`` further calls (at most 5 if one call takes over ``slow_s``), each synchronised with
    ``block_until_ready``.
    """
    t0 = time.perf_counter()
    out = block(fn(*args))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    block(fn(*args))
    times = [time.perf_counter() - t0]
    if times[0] > slow_s:  # very slow variant: a few calls are enough for a stable median
        repeats = min(repeats, 5)
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        block(fn(*args))
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), out


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for mod in ("jax", "jaxlib", "numpyro", "dynamax", "funsor", "arviz", "numpy", "markovppl"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:  # pragma: no cover - optional deps
            if mod == "dynamax":
                try:
                    from importlib.metadata import version

                    out[mod] = version("dynamax")
                    continue
                except Exception:
                    pass
            out[mod] = "not installed"
    return out


def machine() -> dict:
    info = {"platform": platform.platform(), "nproc": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except FileNotFoundError:  # pragma: no cover
        info["cpu"] = platform.processor()
    try:
        import jax

        info["jax_backend"] = jax.default_backend()
        info["devices"] = str(jax.devices())
    except Exception:  # pragma: no cover
        pass
    return info


def print_header(title: str, x64: bool) -> None:
    print(f"# {title}  ({'float64' if x64 else 'float32'})")
    v = versions()
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    m = machine()
    print("machine:  " + ", ".join(f"{k}={val}" for k, val in m.items()))
    print()


def fmt_s(s: float) -> str:
    if s >= 1.0:
        return f"{s:.2f} s"
    return f"{s * 1e3:.2f} ms"


def print_table(rows, headers) -> None:
    """Markdown table, so the output can be pasted into docs/benchmarks.md."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()
