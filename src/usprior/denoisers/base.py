"""The one denoiser interface and the one registry of denoisers.

A **denoiser** is an object called as ``den(frames, *, sigma=None)`` on a cine stack or a single
frame as (T, H, W) float32 in [0, 1] (integers are rescaled, :mod:`usprior.validation`; a method
whose model allows other values says so in :attr:`Denoiser.input_bounds`), returning float32
(T, H, W) in [0, 1]. ``sigma`` is the noise level at call time: a number, a per-pixel
map of the frames' shape ((H, W) or (T, H, W)) for denoisers that take one (FFDNet), or None for
the denoiser's own default (an estimate, a checkpoint's training median, a fixed value).
Everything else is an *option*, given as keywords when the denoiser is built and validated then.

A **factory** builds a denoiser from its options, ``factory(**options) -> Denoiser``; its
keyword parameters are the valid options. The registry maps a name to a factory, preset options
(a preset such as ``map_log_speckle`` is a name for a configured denoiser) and the tuning grid
that ``usprior bench`` searches. :func:`register_denoiser` adds a user's denoiser once; it then
works in ``usprior.denoise(method=name)``, the CLI (``--method name --plugin module``) and
``usprior bench``. Built-in factories are named by import path and imported on first use, so
``import usprior`` stays light.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from usprior.validation import as_float_frames, check_positive

Factory = Callable[..., Any]


class Denoiser(abc.ABC):
    """Base class of every denoiser: validation, the ``sigma`` contract and the output checks.

    Subclasses set ``sigma_input`` (``"none"``: takes no noise level; ``"scalar"``: a number;
    ``"map"``: a number or a per-pixel map) and implement :meth:`denoise_frames`.
    """

    sigma_input: ClassVar[str] = "scalar"

    @property
    def min_size(self) -> int:
        """The smallest frame side the denoiser handles (the patch size for patch-based ones)."""
        return 1

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def input_bounds(self) -> tuple[tuple[float | None, float | None], str]:
        """The range float frames must lie in, and why (default [0, 1]); the output is always
        clipped to [0, 1]."""
        return (0.0, 1.0), ""

    def __call__(self, frames: object, *, sigma: object = None) -> np.ndarray:
        """Denoise ``frames`` (T, H, W); float32 (T, H, W) in [0, 1] (see the module docstring)."""
        arr = np.asarray(frames)
        if arr.ndim == 4 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim != 3:
            raise ValueError(
                f"a denoiser takes frames (T, H, W), got shape {arr.shape}: pass image[None] for one "
                "image, or call usprior.denoise"
            )
        bounds, why = self.input_bounds
        x = as_float_frames(arr, min_size=self.min_size, name="frames", bounds=bounds, why=why)
        out = np.asarray(self.denoise_frames(x, self._check_sigma(sigma, x.shape)), dtype=np.float32)
        if out.shape != x.shape:
            raise RuntimeError(f"{self.name} returned shape {out.shape} for frames of shape {x.shape}")
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"{self.name} produced non-finite values{self.nonfinite_hint()}")
        return np.clip(out, 0.0, 1.0)

    @abc.abstractmethod
    def denoise_frames(self, frames: np.ndarray, sigma: float | np.ndarray | None) -> np.ndarray:
        """Denoise validated frames (T, H, W) float32 in [0, 1] with a validated ``sigma``."""

    def nonfinite_hint(self) -> str:
        """What to tell the user when the output is not finite (appended to the error)."""
        return ""

    def _check_sigma(self, sigma: object, shape: tuple[int, int, int]) -> float | np.ndarray | None:
        if sigma is None:
            return None
        if self.sigma_input == "none":
            raise ValueError(f"{self.name} has no noise-level input: leave sigma at None")
        if np.ndim(sigma) == 0:
            return check_positive(sigma, "sigma")
        if self.sigma_input != "map":
            raise ValueError(f"{self.name} takes one noise level: sigma must be a number, got shape {np.shape(sigma)}")
        level = np.asarray(sigma, dtype=np.float32)
        if level.shape == shape[1:]:
            level = np.broadcast_to(level, shape)
        if level.shape != shape or not np.all(np.isfinite(level)) or np.any(level <= 0):
            raise ValueError(f"a sigma map must be finite, > 0 and of the frame shape {shape[1:]} or {shape}")
        return level


class FunctionDenoiser(Denoiser):
    """A per-frame function ``fn(image, **options[, sigma=s]) -> image`` as a :class:`Denoiser`.

    ``sigma`` is passed to ``fn`` only when given (else ``fn``'s default applies); a function
    without a ``sigma`` parameter takes no noise level. ``bounds``: the float input range ``fn``
    handles (default [0, 1]; ``(None, None)`` for additive-noise methods that take any value).
    """

    def __init__(
        self,
        fn: Callable[..., np.ndarray],
        options: Mapping[str, Any] | None = None,
        bounds: tuple[float | None, float | None] = (0.0, 1.0),
    ) -> None:
        self.fn = fn
        self.options = dict(options or {})
        self.bounds = bounds
        self.sigma_input = "scalar" if "sigma" in inspect.signature(fn).parameters else "none"

    @property
    def input_bounds(self) -> tuple[tuple[float | None, float | None], str]:
        return self.bounds, ""

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", type(self).__name__)

    def denoise_frames(self, frames: np.ndarray, sigma: float | None) -> np.ndarray:
        extra = {} if sigma is None else {"sigma": sigma}
        return np.stack([np.asarray(self.fn(f, **self.options, **extra), np.float32) for f in frames])


def function_factory(
    fn: Callable[..., np.ndarray], bounds: tuple[float | None, float | None] = (0.0, 1.0)
) -> Factory:
    """The factory of :class:`FunctionDenoiser` for ``fn`` (float inputs within ``bounds``): its
    options are ``fn``'s keyword parameters except the image and ``sigma``."""
    params = list(inspect.signature(fn).parameters.values())[1:]

    def factory(**options: Any) -> FunctionDenoiser:
        return FunctionDenoiser(fn, options, bounds)

    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params if p.name != "sigma"]
    )
    factory.__name__ = getattr(fn, "__name__", "function")
    factory.__doc__ = fn.__doc__
    return factory


@dataclasses.dataclass(frozen=True)
class DenoiserEntry:
    """A registered denoiser.

    Attributes:
        factory: ``factory(**options) -> Denoiser``, or ``"module:attribute"`` naming one
            (imported on first use).
        presets: options always passed (a user's options override them).
        grid: tuning grid of ``usprior bench``: option name (or ``"sigma"``) -> candidate values.
        noise_scaled: names in ``grid`` whose values are multiples of the noise std.
        description: one line for listings.
    """

    factory: Factory | str
    presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    noise_scaled: tuple[str, ...] = ()
    description: str = ""

    def load(self) -> Factory:
        """The factory itself (importing a named one)."""
        if not isinstance(self.factory, str):
            return self.factory
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, DenoiserEntry] = {}


def _option_names(factory: Factory) -> tuple[str, ...] | None:
    """Keyword parameters of ``factory`` (None when it takes ``**kwargs``: anything goes)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def register_denoiser(
    name: str,
    factory: Factory | str,
    *,
    presets: Mapping[str, Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    noise_scaled: Sequence[str] = (),
    description: str = "",
    replace: bool = False,
) -> DenoiserEntry:
    """Register ``factory`` under ``name`` (see the module docstring and :class:`DenoiserEntry`).

    Raises ``ValueError`` for an empty name, a name already registered (unless ``replace``), a
    grid entry that is empty or no option of the factory, and ``noise_scaled`` names outside the
    grid; ``TypeError`` for a factory that is neither callable nor an import path.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"denoiser name must be a non-empty string without surrounding spaces, got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a denoiser named {name!r} is already registered; pass replace=True to replace it")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise TypeError(f"factory must be callable or 'module:attribute', got {factory!r}")
    grid = dict(grid or {})
    for key, values in grid.items():
        if isinstance(values, str) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty sequence of values, got {values!r}")
    unknown = set(noise_scaled) - set(grid)
    if unknown:
        raise ValueError(f"noise_scaled names {sorted(unknown)} are not in the grid {sorted(grid)}")
    entry = DenoiserEntry(factory, dict(presets or {}), grid, tuple(noise_scaled), description)
    if callable(factory):
        valid = _option_names(factory)
        bad = sorted(set(grid) - {"sigma"} - set(valid)) if valid is not None else []
        if bad:
            raise ValueError(f"grid names {bad} are not options of {name!r}; valid: {sorted(valid)}")
    _REGISTRY[name] = entry
    return entry


def unregister_denoiser(name: str) -> None:
    """Remove a registered denoiser (``KeyError``-free: a ``ValueError`` for an unknown name)."""
    denoiser_entry(name)
    del _REGISTRY[name]


def denoiser_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def denoiser_entry(name: str) -> DenoiserEntry:
    """The :class:`DenoiserEntry` of ``name``; ``ValueError`` listing the names if unknown."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; registered: {denoiser_names()}")
    return _REGISTRY[name]


def denoiser_options(name: str) -> tuple[str, ...] | None:
    """The option names ``make_denoiser(name, ...)`` accepts (None: any keyword)."""
    return _option_names(denoiser_entry(name).load())


def make_denoiser(name: str, **options: Any) -> Denoiser:
    """Build the denoiser ``name`` with ``options`` (on top of its presets).

    Raises ``ValueError`` for an unknown name and for options the denoiser does not take (the
    message lists the valid ones); the factory validates the values. A factory that returns a
    plain callable ``fn(frames, *, sigma=None)`` gets it wrapped as a :class:`Denoiser`, so its
    input and output are checked like every other.
    """
    entry = denoiser_entry(name)
    factory = entry.load()
    valid = _option_names(factory)
    if valid is not None:
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"{name!r} takes no option {', '.join(unknown)}; valid options: {', '.join(valid) or 'none'}")
    den = factory(**{**entry.presets, **options})
    if isinstance(den, Denoiser):
        return den
    if callable(den):
        return CallableDenoiser(den, name)
    raise TypeError(f"the factory of {name!r} returned {type(den).__name__}, not a denoiser")


class CallableDenoiser(Denoiser):
    """A user's ``fn(frames, *, sigma=None) -> frames`` behind the :class:`Denoiser` checks."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def denoise_frames(self, frames: np.ndarray, sigma: float | None) -> np.ndarray:
        return np.asarray(self.fn(frames, sigma=sigma), np.float32)


def import_plugins(modules: Sequence[str]) -> None:
    """Import modules that register denoisers (the CLI's ``--plugin MODULE``).

    Raises ``ModuleNotFoundError`` naming a module that cannot be found.
    """
    for module in modules:
        importlib.import_module(module)
