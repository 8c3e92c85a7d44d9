"""orbax checkpoints: round trip and clear errors for missing / corrupt data."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from conftest import TINY
from usprior.checkpoint import load_prior, read_metadata


def test_round_trip_identical(tiny_prior, tiny_checkpoint):
    loaded = load_prior(tiny_checkpoint)
    assert loaded.config == TINY
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, *TINY.event_shape))
    np.testing.assert_array_equal(loaded.log_prob(x), tiny_prior.log_prob(x))
    assert read_metadata(tiny_checkpoint) == {"purpose": "tests"}


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_prior(tmp_path / "nope")


def test_missing_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_prior(tmp_path / "empty")


def copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_corrupt_config(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint config"):
        load_prior(ckpt)


def test_missing_params(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    shutil.rmtree(ckpt / "params")
    with pytest.raises(FileNotFoundError, match="params"):
        load_prior(ckpt)


def test_corrupt_params(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    for f in (ckpt / "params").rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt or incompatible"):
        load_prior(ckpt)


def test_config_does_not_match_params(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    record = json.loads((ckpt / "config.json").read_text())
    record["config"]["hidden"] = 16
    (ckpt / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="corrupt or incompatible"):
        load_prior(ckpt)
