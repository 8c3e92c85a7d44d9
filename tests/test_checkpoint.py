"""orbax checkpoints: round trip and clear errors for missing / corrupt data."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from pathlib import Path

import usprior
from conftest import TINY, perturbed
from usprior.io.checkpoints import MANIFEST, resolve, shipped, shipped_names, verify, write_manifest
from usprior.priors.flow import load_prior, read_metadata, save_prior


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
    with pytest.raises(ValueError, match=r"damaged checkpoint .*: params/.* is missing"):
        load_prior(ckpt)


def test_corrupt_params_fail_the_checksum_then_orbax_in_one_line(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    for f in (ckpt / "params").rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=r"params/.* does not match its sha256 in sha256.json"):
        load_prior(ckpt)
    write_manifest(ckpt)  # consistent checksums over garbage: orbax / TensorStore must refuse it
    with pytest.raises(ValueError, match="corrupt or incompatible") as err:
        load_prior(ckpt)
    message = str(err.value)
    assert "\n" not in message and len(message) < 400  # one readable line, not a TensorStore dump
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_config_does_not_match_params(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    record = json.loads((ckpt / "config.json").read_text())
    record["config"]["hidden"] = 16
    (ckpt / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="config.json does not match its sha256"):
        load_prior(ckpt)
    write_manifest(ckpt)
    with pytest.raises(ValueError, match="the shapes do not match the architecture"):
        load_prior(ckpt)


def _largest_data_file(ckpt):
    return max((f for f in (ckpt / "params").rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)


def test_four_flipped_bytes_are_caught_by_name(tiny_checkpoint, tmp_path):
    """Flipping bytes in the stored arrays used to load silently and change the outputs."""
    ckpt = copy(tiny_checkpoint, tmp_path)
    target = _largest_data_file(ckpt)
    data = bytearray(target.read_bytes())
    for i in (len(data) // 5, len(data) // 3, len(data) // 2, 3 * len(data) // 4):
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    name = target.relative_to(ckpt).as_posix()
    with pytest.raises(ValueError, match=f"damaged checkpoint .*: {name} does not match its sha256"):
        load_prior(ckpt)


def test_a_checkpoint_without_checksums_is_refused(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    (ckpt / MANIFEST).unlink()
    with pytest.raises(ValueError, match="has no sha256.json.*write_manifest"):
        load_prior(ckpt)


def test_saving_never_overwrites(tiny_prior, tiny_checkpoint):
    with pytest.raises(FileExistsError, match="already exists"):
        save_prior(tiny_prior, tiny_checkpoint, {})


def test_the_cache_reloads_replaced_files(tiny_prior, tmp_path):
    path = tmp_path / "prior"
    save_prior(tiny_prior, path, {"version": 1})
    first = load_prior(path)
    assert load_prior(path) is first  # cached while the files are unchanged
    shutil.rmtree(path)
    changed = perturbed(tiny_prior, scale=0.1, seed=7)
    save_prior(changed, path, {"version": 2})
    second = load_prior(path)
    assert second is not first and read_metadata(path) == {"version": 2}
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, *TINY.event_shape))
    np.testing.assert_array_equal(second.log_prob(x), changed.log_prob(x))


def test_resolver_names_and_paths(tiny_checkpoint, tmp_path, monkeypatch):
    names = shipped_names()
    assert {"glow_mri", "ffdnet_us", "pix2pix_us", "unrolled_us"} <= set(names)
    root = Path(usprior.__file__).parent / "checkpoints"
    assert resolve("glow_mri") == root / "glow_mri"  # package data of the installed package
    assert resolve(str(tiny_checkpoint)) == tiny_checkpoint.resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no directory and no shipped name"):
        resolve("glow_mrj")
    (tmp_path / "glow_mri").mkdir()  # a directory the user names wins over a shipped name
    assert resolve("glow_mri") == tmp_path / "glow_mri"
    assert shipped("glow_mri") == root / "glow_mri"


def test_every_shipped_checkpoint_passes_its_checksums():
    for name in shipped_names():
        verify(shipped(name))


def test_inference_metadata_is_typed_and_validated(tmp_path):
    from usprior.amortized.checkpoint import load_model, save_model
    from usprior.amortized.ffdnet import FFDNetConfig, init_ffdnet

    cfg = FFDNetConfig(features=4, depth=2)
    variables = init_ffdnet(cfg, jax.random.key(0, impl="rbg"))
    with pytest.raises(ValueError, match="sigma_median must be finite and > 0"):
        save_model(cfg, variables, tmp_path / "bad", {"sigma_median": -1.0})
    ckpt = save_model(cfg, variables, tmp_path / "ok", {"sigma_median": 0.1, "likelihood": "gaussian"})
    assert load_model(ckpt).inference.sigma_median == 0.1
    for bad, match in (({"sigma_median": 0.0}, "sigma_median must be finite and > 0"),
                       ({"likelihood": "poisson"}, "unknown likelihood 'poisson'"),
                       ({"sigma_scale": "two"}, "sigma_scale must be finite")):
        record = json.loads((ckpt / "config.json").read_text())
        record["metadata"].update(bad)
        (ckpt / "config.json").write_text(json.dumps(record))
        write_manifest(ckpt)
        with pytest.raises(ValueError, match=f"corrupt checkpoint metadata in .*config.json: {match}"):
            load_model(ckpt)
        record["metadata"] = {"sigma_median": 0.1}
        (ckpt / "config.json").write_text(json.dumps(record))
