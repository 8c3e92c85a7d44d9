"""Saving and loading amortised denoisers with orbax-checkpoint.

A checkpoint is a directory, laid out like the prior's (:mod:`usprior.checkpoint`)::

    <dir>/config.json    {"model": kind, "config": {config fields}, "metadata": {...}}
    <dir>/variables/     orbax StandardCheckpointer tree of the Flax variables

with kind ``"ffdnet"`` (:class:`FFDNetConfig`; variables {"params", "batch_stats"}),
``"pix2pix"`` (the generator only, :class:`UNetConfig`; variables {"params"} — the
discriminator is needed for training, not for denoising) or ``"unrolled"``
(:class:`UnrolledConfig`; variables {"params": {"log_lr", "log_lam"}}; the flow prior it
unrolls is not part of it — record which one in the metadata).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax

from usprior.amortized.ffdnet import FFDNetConfig, init_ffdnet
from usprior.amortized.pix2pix import UNetConfig, init_unet
from usprior.amortized.unrolled import UnrolledConfig, init_unrolled
from usprior.checkpoint import read_record, restore_tree, tree_shapes, write_checkpoint

ModelConfig = FFDNetConfig | UNetConfig | UnrolledConfig

MODELS: dict[str, tuple[type, Callable[[Any, jax.Array], dict[str, Any]]]] = {
    "ffdnet": (FFDNetConfig, init_ffdnet),
    "pix2pix": (UNetConfig, init_unet),
    "unrolled": (UnrolledConfig, lambda config, key: {"params": init_unrolled(config, key)}),
}


class AmortizedCheckpoint(NamedTuple):
    """A loaded checkpoint: model kind, its config, the Flax variables, the saved metadata and
    the directory it was loaded from (None when built in memory)."""

    kind: str
    config: ModelConfig
    variables: dict[str, Any]
    metadata: dict[str, Any]
    directory: Path | None = None


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
    """Write a model to ``directory`` (created; must not already hold a checkpoint).

    Raises ``ValueError`` when ``variables`` do not fit the architecture of ``config``.
    """
    kind = _kind_of(config)
    variables = dict(variables)
    if tree_shapes(variables) != tree_shapes(_expected(kind, config)):
        raise ValueError(f"the variables do not match the {kind} architecture {config}")
    return write_checkpoint(directory, kind, config, {"variables": variables}, metadata or {})


def load_model(directory: str | os.PathLike, kind: str | None = None) -> AmortizedCheckpoint:
    """Load a model saved by :func:`save_model`; ``kind`` (if given) must match the saved one.

    Raises ``FileNotFoundError`` for a missing directory / file and ``ValueError`` for a wrong
    kind, a corrupt config or a corrupt variables tree (wrong shapes, unreadable orbax data).
    """
    directory = Path(directory).resolve()
    saved_kind, config, metadata = read_record(directory, {k: cfg for k, (cfg, _) in MODELS.items()})
    if kind is not None and kind != saved_kind:
        raise ValueError(f"{directory} holds a {saved_kind!r} model, expected {kind!r}")
    variables = restore_tree(directory / "variables", _expected(saved_kind, config), config)
    return AmortizedCheckpoint(saved_kind, config, dict(variables), metadata, directory)
