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
import functools
import json
import os
from collections.abc import Mapping
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


def write_checkpoint(
    directory: str | os.PathLike, kind: str, config: Any, trees: dict[str, Any], metadata: dict[str, Any]
) -> Path:
    """Write ``config.json`` (``{"model": kind, "config": asdict(config), "metadata"}``) and one
    orbax tree per ``trees`` entry (sub-directory name -> pytree) into ``directory`` (created)."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        for name, tree in trees.items():
            ckptr.save(directory / name, tree)
        ckptr.wait_until_finished()
    record = {"model": kind, "config": dataclasses.asdict(config), "metadata": metadata}
    (directory / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    return directory


def read_record(directory: str | os.PathLike, configs: Mapping[str, type]) -> tuple[str, Any, dict[str, Any]]:
    """Parse ``config.json`` of a checkpoint: (model kind, config object, metadata).

    ``configs`` maps the accepted model kinds to their config dataclasses. Raises
    ``FileNotFoundError`` for a missing directory or file and ``ValueError`` for unparsable
    JSON, an unknown kind or config fields the dataclass rejects.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    cfg_file = directory / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{directory} is not a usprior checkpoint: missing config.json")
    try:
        record = json.loads(cfg_file.read_text())
        kind = record["model"]
        if kind not in configs:
            raise ValueError(f"unknown model {kind!r}, expected one of {sorted(configs)}")
        config = configs[kind](**record["config"])
        metadata = dict(record.get("metadata", {}))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"corrupt checkpoint config {cfg_file}: {err}") from err
    return kind, config, metadata


def tree_shapes(tree: Any) -> Any:
    """(shape, dtype) of every leaf of ``tree``, to compare architectures."""
    return jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), tree)


def _leaf_table(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """{key path: (shape, dtype)} of every leaf: comparable across dict / FrozenDict / orbax
    metadata trees."""
    return {jax.tree_util.keystr(k): (tuple(a.shape), str(a.dtype)) for k, a in jax.tree_util.tree_leaves_with_path(tree)}


def restore_tree(path: Path, target: Any, config: Any) -> Any:
    """Restore the orbax tree at ``path`` into the structure of ``target`` (ShapeDtypeStructs).

    Raises ``FileNotFoundError`` if ``path`` is missing and ``ValueError`` for unreadable data
    or shapes that do not match the architecture of ``config``.
    """
    if not path.is_dir():
        raise FileNotFoundError(f"{path.parent} is not a usprior checkpoint: missing {path.name}/")
    try:
        with ocp.StandardCheckpointer() as ckptr:
            # compare the stored shapes first: a restore into the wrong shapes fails inside
            # orbax's asynchronous reads and leaves them unfinished
            stored = _leaf_table(dict(ckptr.metadata(path).item_metadata))
            tree = ckptr.restore(path, target) if stored == _leaf_table(target) else None
    except Exception as err:  # orbax raises many types for damaged data; report them uniformly
        raise ValueError(f"corrupt or incompatible checkpoint data in {path}: {err}") from err
    if tree is None or tree_shapes(tree) != tree_shapes(target):
        raise ValueError(
            f"corrupt or incompatible checkpoint data in {path}: "
            f"the shapes do not match the architecture in config.json ({config})"
        )
    return tree


def save_prior(prior: FlowPrior, directory: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write ``prior`` to ``directory`` (created; must not already hold a checkpoint)."""
    return write_checkpoint(directory, "glow", prior.config, {"params": prior.params}, metadata)


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The metadata saved with a prior checkpoint (see :func:`load_prior` for the errors)."""
    return read_record(directory, {"glow": GlowConfig})[2]


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path) -> FlowPrior:
    return load_prior(path)


def get_prior(checkpoint: str | os.PathLike | None = None) -> FlowPrior:
    """Load (and cache) the prior in ``checkpoint``; default: the shipped checkpoint."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    return _load_cached(path.resolve())


def load_prior(directory: str | os.PathLike | None = None) -> FlowPrior:
    """Load a prior saved by :func:`save_prior` (default: the shipped checkpoint).

    Raises ``FileNotFoundError`` for a missing directory / file and ``ValueError`` for a corrupt
    config or parameter tree (wrong shapes, unreadable orbax data).
    """
    directory = Path(directory) if directory is not None else default_checkpoint()
    _, config, _ = read_record(directory, {"glow": GlowConfig})
    patch = jax.ShapeDtypeStruct((1, *config.event_shape), "float32")
    target = jax.eval_shape(lambda x: Glow(config).init(jax.random.PRNGKey(0), x), patch)
    params = restore_tree(directory.resolve() / "params", target, config)
    return FlowPrior(params=params, config=config)
