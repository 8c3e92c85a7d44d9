"""Self-supervised adaptation (Neighbor2Neighbor with speckle-safe neighbours): ``usprior adapt``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import usprior
from usprior.amortized.adapt import adapt_ffdnet, neighbor_indices
from usprior.amortized.checkpoint import load_model, save_model
from usprior.amortized.ffdnet import FFDNetConfig, init_ffdnet
from usprior.cli import main
from usprior.physics import simulate

CFG = FFDNetConfig(features=8, depth=3)


def speckle_frames(n=4, shape=(48, 56)):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    clean = (0.5 + 0.25 * np.sin(yy / 6.0) * np.cos(xx / 7.0)).astype(np.float32)
    return [simulate.convolutional_speckle(clean, dynamic_range_db=50.0, seed=s).noisy for s in range(n)]


def test_neighbours_are_in_opposite_quadrants():
    first, second = neighbor_indices(jax.random.PRNGKey(0), 24, 30, 6)
    assert first.shape == second.shape == (4, 5)
    r1, c1 = np.divmod(np.asarray(first), 30)
    r2, c2 = np.divmod(np.asarray(second), 30)
    assert np.all(r1 % 6 < 3) and np.all(c1 % 6 < 3) and np.all(r2 % 6 >= 3) and np.all(c2 % 6 >= 3)
    assert np.all(r1 // 6 == r2 // 6) and np.all(c1 // 6 == c2 // 6)  # the same block
    assert np.all(np.maximum(abs(r1 - r2), abs(c1 - c2)) >= 1)


def test_adaptation_lowers_the_held_out_self_supervised_loss():
    frames = speckle_frames()
    variables = init_ffdnet(CFG, jax.random.key(0, impl="rbg"))
    result = adapt_ffdnet(variables, CFG, frames[:3], frames[3:], sigma=0.1, steps=25, batch=4, crop=32,
                          learning_rate=3e-3, cell=4)
    assert result.losses.shape == (25,) and np.all(np.isfinite(result.losses))
    # a residual FFDNet starts near the identity, close to the loss floor (the noise of g2):
    # measured 0.0134 -> 0.0124; no learning would leave it at 0.0134
    assert result.heldout_after < 0.95 * result.heldout_before
    assert jax.tree_util.tree_structure(result.variables) == jax.tree_util.tree_structure(variables)
    np.testing.assert_array_equal(result.variables["batch_stats"]["bn_0"]["mean"], variables["batch_stats"]["bn_0"]["mean"])
    with pytest.raises(ValueError, match="at least 64 px"):
        adapt_ffdnet(variables, CFG, frames, frames, sigma=0.1, crop=64)


def test_cli_adapt_writes_a_usable_checkpoint(tmp_path, capsys):
    start = save_model(CFG, init_ffdnet(CFG, jax.random.key(1, impl="rbg")), tmp_path / "start", {"sigma_median": 0.1})
    files = []
    for i, frame in enumerate(speckle_frames(3)):
        files.append(str(tmp_path / f"f{i}.npy"))
        np.save(files[-1], frame)
    out = tmp_path / "mine"
    assert main(["adapt", *files, "--from", str(start), "-o", str(out), "--steps", "10", "--batch", "2",
                 "--crop", "32", "--cell", "4"]) == 0
    assert "held-out frame(s)" in capsys.readouterr().out
    model = load_model(out, kind="ffdnet")
    assert model.metadata["adapt"]["steps"] == 10 and model.inference.sigma_median == 0.1
    assert usprior.denoise(speckle_frames(1)[0], method="ffdnet", checkpoint=out).shape == (48, 56)
    assert main(["adapt", *files, "--from", str(start), "-o", str(out)]) == 2  # never overwrites
    assert main(["adapt", files[0], "--from", str(start), "-o", str(tmp_path / "x"), "--crop", "32"]) == 2  # one frame
    assert jnp.isfinite(model.variables["params"]["conv_in"]["kernel"]).all()
