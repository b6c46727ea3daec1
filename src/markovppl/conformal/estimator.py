r"""``BlockConformalHMM``: conformal prediction sets for the hidden states of an HMM.

Full (transductive) conformal prediction with exchangeable blocks (Nettasinghe, Chatterjee,
Tipireddy & Halappanavar, ICML 2023), in the corrected construction of the project's research notes:
the observed final window and the permuted final windows both end at the reference element, ties
are broken at random, and blocks are cut at returns of the hidden state alone by default.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validation as v
from ..kernels.finite import Emission
from . import _core
from .estimation import EmissionFamily, categorical_emission, normal_emission, poisson_emission
from .scores import filter_score, smoother_score

__all__ = ["BlockConformalHMM"]

_SCORES = {"filter": filter_score, "smoother": smoother_score}
_MAX_CANDIDATES = 4096
_MAX_ENUMERATION = 1 << 16
_PARAM_NAMES = (
    "n_states",
    "confidence_level",
    "score",
    "blocks",
    "emission",
    "n_symbols",
    "estimator",
    "pseudo_count",
    "n_permutations",
    "smoothing",
    "horizon",
    "random_state",
)


@functools.lru_cache(maxsize=32)
def _family(name: str, n_symbols: int | None, pseudo_count: float) -> EmissionFamily:
    if name == "categorical":
        return categorical_emission(n_symbols, pseudo_count)
    if name == "normal":
        return normal_emission(pseudo_count)
    return poisson_emission(pseudo_count)


def _capacity(n: int) -> int:
    """Padded length: the next power of two (at least 16), so online updates rarely recompile."""
    return max(16, 1 << (int(n) - 1).bit_length())


class BlockConformalHMM:
    r"""Prediction sets for the next $H$ hidden states of an HMM with finite-sample coverage.

    Given a **fully observed** calibration sequence, hidden states *and* observations
    $(x_{0:T-1}, y_{0:T-1})$, and the next observations $y_{T:T+H-1}$, the set $C$ of candidate state
    sequences $c \in \mathcal X^H$ with conformal p-value $p(c) > \alpha = 1 -$ ``confidence_level``
    satisfies

    $$\Pr\bigl(x_{T:T+H-1} \in C\bigr) \ge 1 - \alpha$$

    for every law of the data that is a mixture of time-homogeneous HMMs on $K$ states (any prior
    over the transition matrix, the emission law and the initial law), with equality when
    ``smoothing=True``. The probability is over the parameters, the calibration sequence, the new
    observations and the method's randomness: the coverage is **marginal**, not conditional on the
    parameters or on $y_{T:T+H-1}$.

    For each candidate $c$: the augmented sequence $z = (x \oplus c, y)$ of length $n = T + H$ is cut
    at returns of the reference element (the last hidden state $c_{H}$ for ``blocks="state"``, the
    last pair $(c_H, y_{n-1})$ for ``blocks="pair"``); the complete blocks between returns are
    exchangeable (Diaconis–Freedman); the score of the last $H + 1$ elements is ranked among the
    scores of the last $H + 1$ elements of block-permuted sequences (the same window position, ending
    at the reference element). Parameters are estimated from transition counts and per-state
    sufficient statistics of $z$, which every permutation keeps.

    Args:
        n_states: $K$, number of hidden states; states are ``0..K-1``.
        confidence_level: $1 - \alpha \in (0, 1)$.
        score: ``"filter"`` (default), ``"smoother"`` (the two built-in scores of
            [`markovppl.conformal.scores`][markovppl.conformal.scores]), or a callable
            ``score(window_states, window_obs, transition_matrix, emission) -> scalar``
            (larger = less conforming) that uses nothing but its arguments.
        blocks: ``"state"`` (returns of the hidden state; default, smaller sets, any observation type)
            or ``"pair"`` (returns of the state–observation pair, as in the paper; symbols only).
        emission: ``"categorical"`` (symbols ``0..V-1``), ``"normal"``, ``"poisson"``, or an
            [`EmissionFamily`][markovppl.conformal.estimation.EmissionFamily].
        n_symbols: $V$ for ``"categorical"``; by default ``max(Y) + 1`` of the calibration data.
        estimator: ``"counts"`` (default): parameters estimated from the augmented sequence by
            counts / per-state sufficient statistics. Or fixed parameters
            ``(transition_matrix (K, K), emission distribution batched over K)`` that do not depend
            on the calibration data (e.g. known, or fitted on other data). Estimators that are not
            permutation-invariant void the guarantee and are not offered.
        pseudo_count: pseudo-count of the transition estimate (and the emission prior weight).
        n_permutations: number $M$ of uniform random block permutations, or ``"exact"`` to enumerate
            every distinct final window (every ordered choice of the last $\min(H, m-1)$ blocks;
            cost grows as $N^H$).
        smoothing: randomised tie-breaking (default, exact coverage). ``False`` gives the
            conservative p-value $(1 + \#\{S_\pi \ge S\})/(M+1)$: deterministic given the
            permutations, but windows tie often, so sets are much larger (often all of
            $\mathcal X^H$).
        horizon: $H \in \{1, \dots, 4\}$, the number of future states predicted jointly;
            $K^H \le 4096$ candidates.
        random_state: seed (int) of the permutations and tie-breaking; ``None`` draws one.

    Attributes:
        candidates_: ``(K**H, H)`` the candidate sequences, row-major; ``predict_p`` columns follow it.
        n_symbols_: alphabet size used (categorical emission).

    Inputs may be one problem (``X (T,)``, ``Y (T, *event)``) or a batch of independent problems
    (``X (B, T)``, ``Y (B, T, *event)``), each with its own calibration sequence; ``lengths`` gives
    the valid length of each row when they differ. ``partial_fit`` appends revealed states and
    observations (online use).

    Examples:
        >>> import numpy as np
        >>> import markovppl as mp
        >>> x = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1])       # hidden states, recorded
        >>> y = np.array([0, 0, 1, 1, 0, 0, 0, 1, 1])       # observations
        >>> cp = mp.conformal.BlockConformalHMM(2, confidence_level=0.8, n_permutations=20, random_state=0)
        >>> cp = cp.fit(x[:8], y[:8])
        >>> point, mask = cp.predict_set(y[8:])              # next state, given the next observation
        >>> point.shape, mask.shape, cp.candidates_.tolist()
        ((1,), (2,), [[0], [1]])
    """

    def __init__(
        self,
        n_states: int,
        *,
        confidence_level: float = 0.9,
        score="filter",
        blocks: str = "state",
        emission="categorical",
        n_symbols: int | None = None,
        estimator="counts",
        pseudo_count: float = 1.0,
        n_permutations=200,
        smoothing: bool = True,
        horizon: int = 1,
        random_state: int | None = None,
    ):
        self.n_states = n_states
        self.confidence_level = confidence_level
        self.score = score
        self.blocks = blocks
        self.emission = emission
        self.n_symbols = n_symbols
        self.estimator = estimator
        self.pseudo_count = pseudo_count
        self.n_permutations = n_permutations
        self.smoothing = smoothing
        self.horizon = horizon
        self.random_state = random_state
        self._check_params()

    # ----------------------------------------------------------------- sklearn protocol
    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters as a dict (scikit-learn convention).

        Examples:
            >>> BlockConformalHMM(3, horizon=2).get_params()["horizon"]
            2
        """
        return {name: getattr(self, name) for name in _PARAM_NAMES}

    def set_params(self, **params) -> "BlockConformalHMM":
        """Set constructor parameters (validated); returns ``self``. Refit afterwards.

        Examples:
            >>> BlockConformalHMM(2).set_params(confidence_level=0.8).confidence_level
            0.8
        """
        unknown = sorted(set(params) - set(_PARAM_NAMES))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; valid: {list(_PARAM_NAMES)}")
        old = self.get_params()
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._check_params()
        except (ValueError, TypeError):
            for name, value in old.items():
                setattr(self, name, value)
            raise
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "estimator" or isinstance(v, str))
        return f"BlockConformalHMM({args})"

    # ----------------------------------------------------------------- validation
    def _check_params(self) -> None:
        if not isinstance(self.n_states, numbers.Integral) or self.n_states < 1:
            raise ValueError(f"n_states must be a positive integer, got {self.n_states!r}")
        c = self.confidence_level
        if not isinstance(c, numbers.Real) or not 0.0 < float(c) < 1.0:
            raise ValueError(f"confidence_level must lie in (0, 1), got {c!r}")
        if not (callable(self.score) or self.score in _SCORES):
            raise ValueError(f"score must be 'filter', 'smoother' or a callable, got {self.score!r}")
        if self.blocks not in ("state", "pair"):
            raise ValueError(f"blocks must be 'state' or 'pair', got {self.blocks!r}")
        if not (isinstance(self.emission, EmissionFamily) or self.emission in ("categorical", "normal", "poisson")):
            raise ValueError(f"emission must be 'categorical', 'normal', 'poisson' or an EmissionFamily, got {self.emission!r}")
        if self.n_symbols is not None and (not isinstance(self.n_symbols, numbers.Integral) or self.n_symbols < 1):
            raise ValueError(f"n_symbols must be a positive integer, got {self.n_symbols!r}")
        if not (isinstance(self.horizon, numbers.Integral) and 1 <= self.horizon <= 4):
            raise ValueError(f"horizon must be an integer in 1..4 (joint prediction enumerates K**H candidates), got {self.horizon!r}")
        if self.n_states**self.horizon > _MAX_CANDIDATES:
            raise ValueError(
                f"horizon too large for enumeration: {self.n_states}**{self.horizon} = "
                f"{self.n_states ** self.horizon} candidate sequences (at most {_MAX_CANDIDATES})"
            )
        m = self.n_permutations
        if not (m == "exact" or (isinstance(m, numbers.Integral) and m >= 1)):
            raise ValueError(f"n_permutations must be a positive integer or 'exact', got {m!r}")
        if not self.pseudo_count > 0:
            raise ValueError(f"pseudo_count must be > 0, got {self.pseudo_count!r}")
        if self.blocks == "pair" and not self._family_is_discrete():
            raise ValueError("blocks='pair' needs discrete observations (pairs of a continuous y never recur); use blocks='state'")
        if not isinstance(self.estimator, str):
            self._check_fixed_params(self.estimator)
        elif self.estimator != "counts":
            raise ValueError(f"estimator must be 'counts' or fixed parameters (transition_matrix, emission), got {self.estimator!r}")

    def _family_is_discrete(self) -> bool:
        if isinstance(self.emission, EmissionFamily):
            return self.emission.discrete
        return self.emission in ("categorical", "poisson")

    def _check_fixed_params(self, params) -> None:
        if not (isinstance(params, tuple) and len(params) == 2):
            raise ValueError("fixed estimator must be a tuple (transition_matrix, emission distribution)")
        p, emission = params
        p = jnp.asarray(p)
        if p.shape != (self.n_states, self.n_states):
            raise ValueError(f"fixed transition_matrix must have shape {(self.n_states, self.n_states)}, got {p.shape}")
        v.check_stochastic("transition_matrix", p)
        Emission(emission).validate(self.n_states)
        if len(emission.batch_shape) != 1:
            raise ValueError(f"fixed emission must have batch shape ({self.n_states},), got {emission.batch_shape}")

    def _emission_family(self, y_cal) -> EmissionFamily:
        if isinstance(self.emission, EmissionFamily):
            return self.emission
        n_symbols = self.n_symbols
        if self.emission == "categorical" and n_symbols is None:
            y = np.asarray(y_cal)
            if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
                raise ValueError("Y must hold integer symbols for the categorical emission")
            n_symbols = int(y.max()) + 1 if y.size else 1
        return _family(self.emission, n_symbols, float(self.pseudo_count))

    # ----------------------------------------------------------------- data handling
    def _event_ndim(self) -> int:
        if isinstance(self.emission, EmissionFamily):
            return self.emission.event_ndim
        if not isinstance(self.estimator, str):
            return len(self.estimator[1].event_shape)
        return 0

    def _as_batch(self, x, y, name_x: str, name_y: str):
        x, y = np.asarray(x), np.asarray(y)
        ev = self._event_ndim()
        if x.ndim not in (1, 2):
            raise ValueError(f"{name_x} must have shape (T,) or (B, T), got {x.shape}")
        if y.shape[: y.ndim - ev] != x.shape:
            raise ValueError(f"{name_y} must have shape {x.shape + ('*event',) if ev else x.shape}, got {y.shape} ({name_x} has shape {x.shape})")
        if x.size and (not np.all(np.mod(x, 1) == 0) or x.min() < 0 or x.max() >= self.n_states):
            raise ValueError(f"{name_x} must hold integer states in 0..{self.n_states - 1}")
        single = x.ndim == 1
        if single:
            x, y = x[None], y[None]
        return x.astype(np.int32), y, single

    def _check_obs(self, y, name: str) -> None:
        if self._family is not None:
            self._family.check(y, name)
            return
        y = np.asarray(y)
        if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
            raise ValueError(f"{name} contains NaN or infinite values")
        emission = self.estimator[1]
        inside = emission.support.check(jnp.expand_dims(jnp.asarray(y), -1 - self._event_ndim()))
        if not bool(jnp.all(inside)):
            raise ValueError(f"{name} has values outside the support of the fixed emission (unknown symbols?)")

    def fit(self, X, Y, lengths=None) -> "BlockConformalHMM":
        r"""Store the calibration data: hidden states **and** observations, both recorded.

        Args:
            X: hidden states ``(T,)`` or ``(B, T)``, integers in ``0..K-1``.
            Y: observations ``(T, *event)`` or ``(B, T, *event)``, aligned with ``X``.
            lengths: optional ``(B,)`` valid length of each row (default ``T``); entries beyond are ignored.

        Returns:
            ``self``.

        Examples:
            >>> import numpy as np
            >>> cp = BlockConformalHMM(2).fit(np.array([0, 1, 1, 0]), np.array([0, 1, 1, 1]))
            >>> cp.n_symbols_
            2
        """
        self._check_params()
        x, y, single = self._as_batch(X, Y, "X", "Y")
        t = x.shape[1]
        if t < 1:
            raise ValueError("X is an empty sequence (T = 0); calibration needs at least one step")
        if lengths is None:
            lengths = np.full(x.shape[0], t)
        lengths = np.asarray(lengths)
        if lengths.shape != (x.shape[0],) or not np.all(np.mod(lengths, 1) == 0) or lengths.min() < 1 or lengths.max() > t:
            raise ValueError(f"lengths must be {x.shape[0]} integers in 1..{t}, got {lengths!r}")
        y_valid = np.concatenate([y[i, : lengths[i]] for i in range(len(lengths))])
        self._family = self._emission_family(y_valid) if isinstance(self.estimator, str) else None
        self._check_obs(y_valid, "Y")
        self.n_symbols_ = None if self._family is None else self._family.num_symbols
        self.candidates_ = np.asarray(_core.candidates(self.n_states, self.horizon))
        self._x, self._y, self._lengths = x, y, lengths.astype(np.int32)
        if self.random_state is None:
            seed = int(np.random.default_rng().integers(2**31))
        else:
            seed = int(self.random_state)
        self._key = jax.random.PRNGKey(seed)
        return self

    def partial_fit(self, X, Y) -> "BlockConformalHMM":
        r"""Append newly revealed states and observations to every calibration sequence (online mode).

        ``X`` ``(t,)`` or ``(B, t)`` and ``Y`` alike are appended after each row's current length (a
        one-dimensional ``X`` is appended to every row). The
        guarantee holds at every step for the data seen so far (the next prediction is a new
        conformal problem on the longer sequence). Fits from scratch if not fitted yet.

        Examples:
            >>> import numpy as np
            >>> cp = BlockConformalHMM(2).fit(np.array([0, 1]), np.array([0, 1]))
            >>> cp.partial_fit(np.array([1]), np.array([1]))._lengths.tolist()
            [3]
        """
        if not hasattr(self, "_x"):
            return self.fit(X, Y)
        x_new, y_new, single = self._as_batch(X, Y, "X", "Y")
        if single and x_new.shape[0] != self._x.shape[0]:
            x_new = np.broadcast_to(x_new, (self._x.shape[0],) + x_new.shape[1:])
            y_new = np.broadcast_to(y_new, (self._x.shape[0],) + y_new.shape[1:])
        if x_new.shape[0] != self._x.shape[0]:
            raise ValueError(f"partial_fit got {x_new.shape[0]} rows but the model holds {self._x.shape[0]} sequences")
        self._check_obs(y_new, "Y")
        step = x_new.shape[1]
        b, t = self._x.shape
        need = int(self._lengths.max()) + step
        if need > t:
            x = np.zeros((b, need), self._x.dtype)
            y = np.zeros((b, need) + self._y.shape[2:], self._y.dtype)
            x[:, :t], y[:, :t] = self._x, self._y
            self._x, self._y = x, y
        for i in range(b):
            li = self._lengths[i]
            self._x[i, li : li + step] = x_new[i]
            self._y[i, li : li + step] = y_new[i]
        self._lengths = self._lengths + step
        return self

    def _config(self, shift: int = 0) -> _core.CoreConfig:
        score = _SCORES.get(self.score) if isinstance(self.score, str) else self.score
        m = None if self.n_permutations == "exact" else int(self.n_permutations)
        return _core.CoreConfig(
            num_states=int(self.n_states),
            horizon=int(self.horizon),
            blocks=self.blocks,
            score=score,
            emission=self._family,
            pseudo_count=float(self.pseudo_count),
            n_permutations=m,
            smoothing=bool(self.smoothing),
            shift=shift,
            event_ndim=self._event_ndim(),
        )

    def _p_values(self, Y_new, rng_key, shift: int = 0) -> np.ndarray:
        if not hasattr(self, "_x"):
            raise ValueError("call fit(X, Y) before predicting")
        self._check_params()
        h = self.horizon
        y_new = np.asarray(Y_new)
        ev = self._event_ndim()
        single = y_new.ndim == 1 + ev
        if single:
            y_new = y_new[None]
        if y_new.ndim != 2 + ev:
            raise ValueError(f"Y_new must have shape (H{', *event' if ev else ''}) or (B, H{', *event' if ev else ''}), got {np.shape(Y_new)}")
        if y_new.shape[1] != h:
            what = "shorter than" if y_new.shape[1] < h else "longer than"
            raise ValueError(f"Y_new has {y_new.shape[1]} steps, {what} the horizon {h}: pass exactly the next {h} observations")
        b = self._x.shape[0]
        if y_new.shape[0] != b:
            raise ValueError(f"Y_new holds {y_new.shape[0]} problems but the model was fitted on {b} sequences")
        if ev and y_new.shape[2:] != self._y.shape[2:]:
            raise ValueError(f"Y_new has event shape {y_new.shape[2:]}, the calibration data {self._y.shape[2:]}")
        self._check_obs(y_new, "Y_new")
        min_len = 1 + shift
        if int(self._lengths.min()) < min_len:
            raise ValueError(f"calibration sequences need at least {min_len} steps")
        cap = _capacity(int(self._lengths.max()) + h)
        if self.n_permutations == "exact" and cap**h > _MAX_ENUMERATION:
            raise ValueError(
                f"n_permutations='exact' would enumerate {cap}**{h} final-block tuples (capacity {cap}, horizon {h}); "
                "use a number of random permutations instead"
            )
        xs = np.zeros((b, cap), np.int32)
        ys = np.zeros((b, cap) + self._y.shape[2:], np.result_type(self._y.dtype, y_new.dtype))
        xs[:, : self._x.shape[1]], ys[:, : self._y.shape[1]] = self._x, self._y
        if rng_key is None:
            self._key, rng_key = jax.random.split(self._key)
        keys = jax.random.split(rng_key, b)
        cfg = self._config(shift)
        params = None if isinstance(self.estimator, str) else self.estimator
        p = _core.p_values_in_chunks(cfg, keys, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(self._lengths),
                                     jnp.asarray(y_new.astype(ys.dtype)), params)
        p = np.asarray(p)
        return p[0] if (single and b == 1) else p

    # ----------------------------------------------------------------- prediction
    def predict_p(self, Y_new, rng_key=None):
        r"""Conformal p-value of every candidate sequence.

        Args:
            Y_new: the next $H$ observations ``(H, *event)``, or ``(B, H, *event)`` for a batch.
            rng_key: optional JAX key (default: drawn from ``random_state``).

        Returns:
            ``(candidates (K**H, H), p_values (K**H,) or (B, K**H))``. Under the data law, the
            p-value of the true sequence is uniform on (0, 1) (``smoothing=True``) or stochastically
            larger (``smoothing=False``).

        Examples:
            >>> import numpy as np
            >>> cp = BlockConformalHMM(2, n_permutations=20, random_state=0)
            >>> cp = cp.fit(np.array([0, 0, 1, 1, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 0, 0, 1, 1]))
            >>> cands, p = cp.predict_p(np.array([1]))
            >>> cands.shape, p.shape, bool(((p >= 0) & (p <= 1)).all())
            ((2, 1), (2,), True)
        """
        p = self._p_values(Y_new, rng_key)
        return self.candidates_, p

    def predict_set(self, Y_new, rng_key=None):
        r"""Point prediction and prediction set.

        Returns:
            ``(point, mask)``: ``point`` ``(H,)`` / ``(B, H)`` the candidate with the largest p-value
            (first on ties); ``mask`` ``(K**H,)`` / ``(B, K**H)`` bool, candidate $c$ is in the set iff
            $p(c) > 1 -$ ``confidence_level`` (rows of ``candidates_``).

        Examples:
            >>> import numpy as np
            >>> cp = BlockConformalHMM(2, confidence_level=0.5, n_permutations=20, random_state=0)
            >>> cp = cp.fit(np.array([0, 0, 1, 1, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 0, 0, 1, 1]))
            >>> point, mask = cp.predict_set(np.array([1]))
            >>> point.shape, mask.shape, mask.dtype
            ((1,), (2,), dtype('bool'))
        """
        p = self._p_values(Y_new, rng_key)
        mask = p > 1.0 - float(self.confidence_level)
        point = self.candidates_[np.argmax(p, -1)]
        return point, mask

    def evaluate(self, X_true, Y_new, rng_key=None) -> dict:
        r"""Coverage, mean set size and empty-set rate on problems whose future states are known.

        Args:
            X_true: the true next states ``(H,)`` or ``(B, H)``.
            Y_new: the next observations, as for ``predict_set``.

        Returns:
            dict with ``"coverage"`` (fraction of problems whose set holds ``X_true``), ``"set_size"``
            (mean number of candidate sequences in the set) and ``"empty_rate"``.

        Examples:
            >>> import numpy as np
            >>> cp = BlockConformalHMM(2, n_permutations=20, random_state=0)
            >>> cp = cp.fit(np.array([0, 0, 1, 1, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 0, 0, 1, 1]))
            >>> sorted(cp.evaluate(np.array([1]), np.array([1])))
            ['coverage', 'empty_rate', 'set_size']
        """
        if not hasattr(self, "_x"):
            raise ValueError("call fit(X, Y) before evaluate")
        x_true = np.atleast_2d(np.asarray(X_true))
        h, b = self.horizon, self._x.shape[0]
        if x_true.shape != (b, h):
            raise ValueError(f"X_true must have shape {(h,) if b == 1 else (b, h)}, got {np.shape(X_true)}")
        if not np.all(np.mod(x_true, 1) == 0) or x_true.min() < 0 or x_true.max() >= self.n_states:
            raise ValueError(f"X_true must hold states in 0..{self.n_states - 1}")
        _, mask = self.predict_set(Y_new, rng_key)
        mask = np.atleast_2d(mask)
        index = np.ravel_multi_index(tuple(x_true.T.astype(np.int64)), (self.n_states,) * h)
        covered = mask[np.arange(mask.shape[0]), index]
        sizes = mask.sum(-1)
        return {"coverage": float(covered.mean()), "set_size": float(sizes.mean()), "empty_rate": float((sizes == 0).mean())}
