"""Saving and loading flow priors with orbax-checkpoint.

A prior checkpoint is a directory::

    <dir>/config.json    {"model": "glow", "config": {GlowConfig fields}, "metadata": {...}}
    <dir>/params/        orbax StandardCheckpointer tree of the Flax parameters

The shipped default lives in ``checkpoints/glow_mri`` at the repository root (found relative
to this file for source checkouts and editable installs) or wherever the environment variable
``USPRIOR_CHECKPOINT`` points.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from usprior.glow import Glow, GlowConfig
from usprior.prior import FlowPrior

DEFAULT_CHECKPOINT_NAME = "glow_mri"


def default_checkpoint() -> Path:
    """Path of the shipped prior: ``$USPRIOR_CHECKPOINT`` or ``<repo>/checkpoints/glow_mri``."""
    env = os.environ.get("USPRIOR_CHECKPOINT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "checkpoints" / DEFAULT_CHECKPOINT_NAME


def save_prior(prior: FlowPrior, directory: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write ``prior`` to ``directory`` (created; must not already hold a checkpoint)."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory / "params", prior.params)
        ckptr.wait_until_finished()
    record = {"model": "glow", "config": dataclasses.asdict(prior.config), "metadata": metadata}
    (directory / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    return directory


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory (see :func:`load_prior` errors)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"prior checkpoint directory not found: {directory}")
    cfg_file = directory / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{directory} is not a usprior checkpoint: missing config.json")
    try:
        record = json.loads(cfg_file.read_text())
        GlowConfig(**record["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"corrupt checkpoint config {cfg_file}: {err}") from err
    if record.get("model") != "glow":
        raise ValueError(f"{cfg_file}: unknown model {record.get('model')!r}, expected 'glow'")
    return record


def load_prior(directory: str | os.PathLike | None = None) -> FlowPrior:
    """Load a prior saved by :func:`save_prior` (default: the shipped checkpoint).

    Raises ``FileNotFoundError`` for a missing directory / file and ``ValueError`` for a corrupt
    config or parameter tree (wrong shapes, unreadable orbax data).
    """
    directory = Path(directory) if directory is not None else default_checkpoint()
    config = GlowConfig(**read_metadata(directory)["config"])
    params_dir = directory.resolve() / "params"
    if not params_dir.is_dir():
        raise FileNotFoundError(f"{directory} is not a usprior checkpoint: missing params/")
    patch = jax.ShapeDtypeStruct((1, *config.event_shape), "float32")
    target = jax.eval_shape(lambda x: Glow(config).init(jax.random.PRNGKey(0), x), patch)
    try:
        with ocp.StandardCheckpointer() as ckptr:
            params = ckptr.restore(params_dir, target)
    except Exception as err:  # orbax raises many types for damaged data; report them uniformly
        raise ValueError(f"corrupt or incompatible checkpoint parameters in {params_dir}: {err}") from err
    shapes = lambda tree: jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), tree)
    if shapes(params) != shapes(target):
        raise ValueError(
            f"corrupt or incompatible checkpoint parameters in {params_dir}: "
            f"the parameter shapes do not match the architecture in config.json ({config})"
        )
    return FlowPrior(params=params, config=config)
