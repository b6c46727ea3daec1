"""Shared plumbing of the sequence distributions: time-axis layout and missing steps."""

from __future__ import annotations

import copy
import functools
import inspect

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from ..kernels.time import num_time_steps

__all__ = ["time_first", "time_last", "missing_steps", "check_value", "MarkovSequence", "compiled"]


def compiled(*static_argnames: str):
    """Decorate a method so that calls go through one cached ``jax.jit`` of it.

    The distribution itself is a pytree argument, so new parameter values reuse the compiled code
    (no retracing) and eager calls do not recompile their scans every time. Inside an outer ``jit``
    (e.g. NUTS) the inner ``jit`` is simply inlined.
    """

    def decorate(method):
        jitted = jax.jit(method, static_argnames=static_argnames)
        signature = inspect.signature(method)

        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            for name in static_argnames:
                if name in bound.arguments and isinstance(bound.arguments[name], list):
                    bound.arguments[name] = tuple(bound.arguments[name])
            return jitted(*bound.args, **bound.kwargs)

        return wrapper

    return decorate


def time_first(x, event_ndim: int):
    """Move the time axis of ``(*batch, T, *event)`` to the front."""
    return jnp.moveaxis(x, x.ndim - 1 - event_ndim, 0)


def time_last(x, event_ndim: int):
    """Inverse of :func:`time_first`."""
    return jnp.moveaxis(x, 0, x.ndim - 1 - event_ndim)


def missing_steps(value, missing, event_ndim: int):
    """Boolean ``(*batch, T)`` of missing steps: NaN anywhere in the step's event, or ``missing``."""
    value = jnp.asarray(value)
    flags = jnp.zeros(value.shape[: value.ndim - event_ndim], bool)
    if jnp.issubdtype(value.dtype, jnp.floating):
        nan = jnp.isnan(value)
        flags = nan.any(axis=tuple(range(-event_ndim, 0))) if event_ndim else nan
    if missing is not None:
        flags = flags | jnp.asarray(missing, bool)
    return flags


def check_value(value, event_ndim: int, name: str = "obs") -> int:
    """Number of steps of an observation array; empty sequences are an error."""
    value = jnp.asarray(value)
    if value.ndim < 1 + event_ndim:
        raise ValueError(f"{name} must have shape (..., T{', event' if event_ndim else ''}), got {value.shape}")
    num_steps = value.shape[value.ndim - 1 - event_ndim]
    if num_steps == 0:
        raise ValueError(f"{name} is an empty sequence (T = 0)")
    return num_steps


class MarkovSequence(dist.Distribution):
    """Base class of the chain families: a distribution over ``(*batch, T, *obs_event)``."""

    def _resolve_num_steps(self, num_steps, transition) -> int | None:
        tv_steps = num_time_steps(transition)
        if tv_steps is None:
            return num_steps
        if num_steps is not None and num_steps != tv_steps + 1:
            raise ValueError(f"num_steps={num_steps} but time-varying transitions have {tv_steps} steps (need num_steps - 1)")
        return tv_steps + 1

    def _steps_of(self, value) -> int:
        t = check_value(value, self._obs_event_ndim)
        if self.num_steps is not None and t != self.num_steps:
            raise ValueError(f"obs has {t} steps but the distribution was built with num_steps={self.num_steps}")
        return t

    def with_num_steps(self, num_steps: int) -> "MarkovSequence":
        """A copy whose time axis has ``num_steps`` steps (e.g. to simulate replicates of an observed
        sequence from a distribution built without ``num_steps``)."""
        if self.num_steps is not None and self.num_steps != num_steps:
            raise ValueError(f"this distribution has num_steps={self.num_steps}, not {num_steps}")
        new = copy.copy(self)
        new.num_steps = num_steps
        new._event_shape = (num_steps,) + tuple(self.event_shape[1:])
        return new

    def _require_num_steps(self) -> int:
        if self.num_steps is None:
            raise ValueError(f"{type(self).__name__}.sample needs num_steps (pass num_steps=T to the constructor)")
        return self.num_steps

