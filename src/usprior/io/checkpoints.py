"""Checkpoint directories: one resolver, one cache, checksums, readable errors.

A checkpoint is a directory::

    <dir>/config.json    {"model": kind, "config": {config fields}, "metadata": {...}}
    <dir>/<tree>/        one orbax StandardCheckpointer tree per entry (``params/``, ``variables/``)
    <dir>/sha256.json    {relative file path: sha256 hex digest} of every other file

written by :func:`write_checkpoint` and read back by the loaders of each model family
(:func:`usprior.priors.flow.load_prior`, :func:`usprior.amortized.checkpoint.load_model`),
which go through :func:`read_record`, :func:`verify` and :func:`restore_tree`.

**Names and paths.** The shipped checkpoints (``glow_mri``, ``ffdnet_us``, ...) are package data
of the installed ``usprior`` package (``usprior/checkpoints/<name>``), so a regular
``pip install .`` or a wheel finds them from any directory. :func:`resolve` turns a user's
``checkpoint`` argument into a directory: an existing directory path wins, otherwise a shipped
name; :func:`shipped` names a shipped checkpoint only (the built-in defaults).

**Cache.** :func:`load_cached` loads a directory once per *fingerprint*, the (path, size,
modification time) of every file in it, so a model whose files were replaced is loaded again.

**Integrity.** :func:`verify` recomputes the sha256 of every file listed in ``sha256.json`` and
raises ``ValueError`` naming the first damaged or missing file: a flipped byte cannot load silently.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np

MANIFEST = "sha256.json"
CONFIG = "config.json"
T = TypeVar("T")


def shipped_root() -> Path:
    """The folder of the shipped checkpoints inside the installed package."""
    return Path(str(importlib.resources.files("usprior") / "checkpoints"))


def shipped_names() -> list[str]:
    """Names of the shipped checkpoints (sub-directories of :func:`shipped_root` with a config)."""
    root = shipped_root()
    return sorted(p.name for p in root.iterdir() if (p / CONFIG).is_file()) if root.is_dir() else []


def shipped(name: str) -> Path:
    """The directory of the shipped checkpoint ``name``; ``FileNotFoundError`` if there is none."""
    path = shipped_root() / name
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"no shipped checkpoint {name!r}; shipped: {shipped_names()}")
    return path


def resolve(checkpoint: str | os.PathLike) -> Path:
    """A checkpoint argument as an absolute directory: an existing directory, else a shipped name.

    Raises ``FileNotFoundError`` naming both possibilities when neither exists.
    """
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a shipped name or a directory path, got {type(checkpoint).__name__}")
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return path.resolve()
    if isinstance(checkpoint, str) and (shipped_root() / checkpoint / CONFIG).is_file():
        return shipped_root() / checkpoint
    raise FileNotFoundError(f"checkpoint not found: {checkpoint!s} is no directory and no shipped name {shipped_names()}")


def _files(directory: Path) -> list[Path]:
    """Every regular file below ``directory`` except the manifest, sorted."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: str | os.PathLike) -> Path:
    """Write ``sha256.json``: the sha256 of every file of the checkpoint ``directory``."""
    directory = Path(directory)
    sums = {p.relative_to(directory).as_posix(): _sha256(p) for p in _files(directory)}
    path = directory / MANIFEST
    path.write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")
    return path


def verify(directory: Path) -> None:
    """Check every file listed in ``sha256.json`` against its digest.

    Raises ``ValueError`` for a missing or unreadable manifest, a listed file that is missing and
    a file whose content changed, naming the file.
    """
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise ValueError(
            f"{directory} has no {MANIFEST}, so damage cannot be detected: re-save it with this version "
            "of usprior, or add checksums with usprior.io.checkpoints.write_manifest(directory)"
        )
    try:
        sums = json.loads(manifest.read_text())
        items = sorted(sums.items())
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as err:
        raise ValueError(f"damaged checkpoint {directory}: unreadable {MANIFEST} ({err})") from None
    for name, digest in items:
        path = directory / name
        if not path.is_file():
            raise ValueError(f"damaged checkpoint {directory}: {name} is missing")
        if _sha256(path) != digest:
            raise ValueError(f"damaged checkpoint {directory}: {name} does not match its sha256 in {MANIFEST}")


def write_checkpoint(
    directory: str | os.PathLike, kind: str, config: Any, trees: dict[str, Any], metadata: dict[str, Any]
) -> Path:
    """Write ``config.json`` (``{"model": kind, "config": asdict(config), "metadata"}``), one orbax
    tree per ``trees`` entry (sub-directory name -> pytree) and ``sha256.json`` into ``directory``.

    ``directory`` is created; one that exists and is not empty raises ``FileExistsError`` (nothing
    the user had is overwritten).
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).resolve()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} already exists and is not an empty directory: choose a new checkpoint path")
    directory.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        for name, tree in trees.items():
            ckptr.save(directory / name, tree)
        ckptr.wait_until_finished()
    record = {"model": kind, "config": dataclasses.asdict(config), "metadata": metadata}
    (directory / CONFIG).write_text(json.dumps(record, indent=2) + "\n")
    write_manifest(directory)
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
    cfg_file = directory / CONFIG
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{directory} is not a usprior checkpoint: missing {CONFIG}")
    try:
        record = json.loads(cfg_file.read_text())
        kind = record["model"]
        if kind not in configs:
            raise ValueError(f"unknown model {kind!r}, expected one of {sorted(configs)}")
        config = configs[kind](**record["config"])
        metadata = dict(record.get("metadata", {}))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"corrupt checkpoint config {cfg_file}: {err}") from None
    return kind, config, metadata


def tree_shapes(tree: Any) -> Any:
    """(shape, dtype) of every leaf of ``tree``, to compare architectures."""
    return jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), tree)


def _leaf_table(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """{key path: (shape, dtype)} of every leaf: comparable across dict / FrozenDict / orbax
    metadata trees."""
    return {jax.tree_util.keystr(k): (tuple(a.shape), str(a.dtype)) for k, a in jax.tree_util.tree_leaves_with_path(tree)}


def _first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception message, at most ``limit`` characters (TensorStore errors
    run to dozens of lines)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def restore_tree(path: Path, target: Any, config: Any) -> Any:
    """Restore the orbax tree at ``path`` into the structure of ``target`` (ShapeDtypeStructs).

    The stored shapes are compared with ``target`` (orbax metadata) before anything is read.
    Raises ``FileNotFoundError`` if ``path`` is missing and ``ValueError`` (one line) for
    unreadable data, shapes that do not match the architecture of ``config`` and non-finite values.
    """
    import orbax.checkpoint as ocp

    if not path.is_dir():
        raise FileNotFoundError(f"{path.parent} is not a usprior checkpoint: missing {path.name}/")
    try:
        with ocp.StandardCheckpointer() as ckptr:
            stored = _leaf_table(dict(ckptr.metadata(path).item_metadata))
            tree = ckptr.restore(path, target) if stored == _leaf_table(target) else None
    except Exception as err:  # orbax / TensorStore raise many types for damaged data; report them uniformly
        raise ValueError(f"corrupt or incompatible checkpoint data in {path}: {_first_line(err)}") from None
    if tree is None or tree_shapes(tree) != tree_shapes(target):
        raise ValueError(
            f"corrupt or incompatible checkpoint data in {path}: "
            f"the shapes do not match the architecture in {CONFIG} ({config})"
        )
    bad = [jax.tree_util.keystr(k) for k, a in jax.tree_util.tree_leaves_with_path(tree) if not np.all(np.isfinite(a))]
    if bad:
        raise ValueError(f"damaged model in {path}: non-finite values in {len(bad)} parameter array(s), e.g. {bad[0]}")
    return tree


def _fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime in ns) of every file: changes when any file is replaced."""
    out = []
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append((p.relative_to(directory).as_posix(), st.st_size, st.st_mtime_ns))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _cached(loader: Callable[[Path], Any], directory: Path, fingerprint: tuple) -> Any:
    del fingerprint  # part of the cache key only
    return loader(directory)


def load_cached(loader: Callable[[Path], T], directory: Path) -> T:
    """``loader(directory)``, cached until a file of ``directory`` changes (see module docstring)."""
    return _cached(loader, directory, _fingerprint(directory))
