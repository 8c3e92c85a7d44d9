"""Saving and loading amortised denoisers (orbax, checksummed; :mod:`usprior.io.checkpoints`).

A checkpoint is a directory laid out like the prior's::

    <dir>/config.json    {"model": kind, "config": {config fields}, "metadata": {...}}
    <dir>/variables/     orbax StandardCheckpointer tree of the Flax variables
    <dir>/sha256.json    checksums of the files above

with kind ``"ffdnet"`` (:class:`FFDNetConfig`; variables {"params", "batch_stats"}),
``"pix2pix"`` (the generator only, :class:`UNetConfig`; variables {"params"} — the
discriminator is needed for training, not for denoising) or ``"unrolled"``
(:class:`UnrolledConfig`; variables {"params": {"log_lr", "log_lam"}}; the flow prior it
unrolls is not part of it — its name is in the metadata).

The metadata keys that inference reads are typed and validated on load
(:class:`InferenceMetadata`); any other keys (training logs) are kept as they are.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax

from usprior.amortized.ffdnet import FFDNetConfig, init_ffdnet
from usprior.amortized.pix2pix import UNetConfig, init_unet
from usprior.io import checkpoints
from usprior.physics.likelihoods import LIKELIHOODS
from usprior.solvers.unrolled import UnrolledConfig, init_unrolled
from usprior.validation import check_positive

ModelConfig = FFDNetConfig | UNetConfig | UnrolledConfig

MODELS: dict[str, tuple[type, Callable[[Any, jax.Array], dict[str, Any]]]] = {
    "ffdnet": (FFDNetConfig, init_ffdnet),
    "pix2pix": (UNetConfig, init_unet),
    "unrolled": (UnrolledConfig, lambda config, key: {"params": init_unrolled(config, key)}),
}
"""Model kind -> (config dataclass, ``init(config, key) -> variables``)."""


@dataclasses.dataclass(frozen=True)
class InferenceMetadata:
    """The metadata entries inference uses, validated on load (absent entries are None).

    ``sigma_median`` (> 0): median noise std of the training pairs, FFDNet's default noise map
    and (times ``sigma_scale`` > 0) unrolled MAP's default likelihood sigma; ``likelihood``: the
    name of the likelihood unrolled MAP was trained with (a key of ``LIKELIHOODS``); ``prior``:
    the flow prior it unrolls, a sibling directory of the checkpoint or a shipped name.
    """

    sigma_median: float | None = None
    sigma_scale: float | None = None
    likelihood: str | None = None
    prior: str | None = None

    def __post_init__(self) -> None:
        for name in ("sigma_median", "sigma_scale"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_positive(getattr(self, name), name))
        if self.likelihood is not None and self.likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {self.likelihood!r}; valid names: {sorted(LIKELIHOODS)}")
        if self.prior is not None and not (isinstance(self.prior, str) and self.prior):
            raise ValueError(f"prior must be a checkpoint name, got {self.prior!r}")

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> InferenceMetadata:
        return cls(**{f.name: metadata.get(f.name) for f in dataclasses.fields(cls)})


class AmortizedCheckpoint(NamedTuple):
    """A loaded checkpoint: model kind, its config, the Flax variables, the saved metadata, its
    validated inference entries and the directory it was loaded from (None when built in memory)."""

    kind: str
    config: ModelConfig
    variables: dict[str, Any]
    metadata: dict[str, Any]
    directory: Path | None = None

    @property
    def inference(self) -> InferenceMetadata:
        return InferenceMetadata.from_metadata(self.metadata)


def _kind_of(config: ModelConfig) -> str:
    for kind, (config_type, _) in MODELS.items():
        if isinstance(config, config_type):
            return kind
    raise ValueError(f"no amortised model has a config of type {type(config).__name__}")


def _expected(kind: str, config: ModelConfig) -> Any:
    """The variables' tree of ShapeDtypeStructs for ``config``, computed without allocating."""
    return jax.eval_shape(lambda key: MODELS[kind][1](config, key), jax.random.PRNGKey(0))


def save_model(
    config: ModelConfig,
    variables: dict[str, Any],
    directory: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a model to ``directory`` (created; must not exist or be empty) with its checksums.

    Raises ``ValueError`` when ``variables`` do not fit the architecture of ``config`` or the
    inference metadata is invalid (:class:`InferenceMetadata`).
    """
    kind = _kind_of(config)
    variables = dict(variables)
    if checkpoints.tree_shapes(variables) != checkpoints.tree_shapes(_expected(kind, config)):
        raise ValueError(f"the variables do not match the {kind} architecture {config}")
    InferenceMetadata.from_metadata(metadata or {})
    return checkpoints.write_checkpoint(directory, kind, config, {"variables": variables}, metadata or {})


def _load(directory: Path) -> AmortizedCheckpoint:
    kind, config, metadata = checkpoints.read_record(directory, {k: cfg for k, (cfg, _) in MODELS.items()})
    try:
        InferenceMetadata.from_metadata(metadata)
    except ValueError as err:
        raise ValueError(f"corrupt checkpoint metadata in {directory / checkpoints.CONFIG}: {err}") from None
    checkpoints.verify(directory)
    variables = checkpoints.restore_tree(directory / "variables", _expected(kind, config), config)
    return AmortizedCheckpoint(kind, config, dict(variables), metadata, directory)


def load_model(checkpoint: str | os.PathLike, kind: str | None = None) -> AmortizedCheckpoint:
    """Load a model saved by :func:`save_model`: a directory or a shipped name; ``kind`` (if
    given) must match the saved one. Cached until its files change.

    Raises ``FileNotFoundError`` for a missing directory / file and ``ValueError`` for a wrong
    kind, a corrupt config or metadata, a file that fails its checksum or a variables tree that
    does not fit the architecture.
    """
    directory = checkpoints.resolve(checkpoint)
    model = checkpoints.load_cached(_load, directory)
    if kind is not None and kind != model.kind:
        raise ValueError(f"{directory} holds a {model.kind!r} model, expected {kind!r}")
    return model
