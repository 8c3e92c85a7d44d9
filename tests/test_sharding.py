"""The patch batch split over several devices gives the single-device result.

Runs in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (four CPU
devices; the flag must be set before JAX starts), against this process's single device."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np

import usprior
from usprior.solvers.engine import balanced_chunk_size, patch_sharding

SCRIPT = """
import sys, numpy as np, jax, usprior
assert jax.device_count() == 4, jax.devices()
y, prior, unrolled = np.load(sys.argv[1]), sys.argv[3], sys.argv[4]
np.savez(sys.argv[2], map=usprior.denoise(y, method="map_latent", steps=4, sigma=0.1, stride=8, chunk=40, checkpoint=prior),
         glob=usprior.denoise(y, method="map", sigma=0.1, global_steps=4, chunk=40, checkpoint=prior),
         unrolled=usprior.denoise(y, method="unrolled", stride=8, chunk=40, checkpoint=unrolled))
"""


def tiny_unrolled(tiny_checkpoint):
    """A tiny unrolled-MAP checkpoint next to the tiny prior, which it names."""
    from usprior.amortized import save_model
    from usprior.solvers.unrolled import UnrolledConfig, init_unrolled

    config = UnrolledConfig(steps=3, init_lr=0.01)
    meta = {"sigma_median": 0.08, "likelihood": "gaussian", "sigma_scale": 1.5, "prior": tiny_checkpoint.name}
    return save_model(config, {"params": init_unrolled(config)}, tiny_checkpoint.parent / "unrolled_sharding", meta)


def test_sharded_equals_unsharded(tmp_path, tiny_checkpoint):
    """Latent MAP, the global objective and unrolled MAP (tiny models: the work, not the weights, is tested)."""
    assert jax.device_count() == 1 and patch_sharding() is None
    unrolled = tiny_unrolled(tiny_checkpoint)
    yy, xx = np.mgrid[0:44, 0:50]
    noisy = np.clip(0.5 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
                    + 0.1 * np.random.default_rng(0).standard_normal((44, 50)), 0, 1).astype(np.float32)
    np.save(tmp_path / "y.npy", noisy)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "y.npy"), str(tmp_path / "out.npz"), str(tiny_checkpoint),
                    str(unrolled)], check=True, env=env, timeout=600)
    sharded = np.load(tmp_path / "out.npz")
    # latent MAP: each device solves a quarter of every chunk, a program of another batch shape. Bit-identical
    # on the CPU it was first tested on; a few float32 ulps (2.4e-7) on an AMD EPYC, whose codegen differs
    np.testing.assert_allclose(sharded["map"], usprior.denoise(noisy, method="map_latent", steps=4, sigma=0.1, stride=8,
                                                               chunk=40, checkpoint=tiny_checkpoint), rtol=0, atol=2e-6)
    # the global objective sums the patch scores over the devices: equal to float rounding
    np.testing.assert_allclose(sharded["glob"], usprior.denoise(noisy, method="map", sigma=0.1, global_steps=4, chunk=40,
                                                                checkpoint=tiny_checkpoint), atol=1e-4)
    # unrolled: chunks padded to a multiple of 4 compile to other shapes: equal to float rounding,
    # which 16 Adam steps (each divided by the root of the running mean square gradient) amplify to ~5e-5
    np.testing.assert_allclose(sharded["unrolled"], usprior.denoise(noisy, method="unrolled", stride=8, chunk=40,
                                                                    checkpoint=unrolled), atol=2e-4)


def test_chunks_are_padded_to_a_multiple_of_the_devices():
    assert balanced_chunk_size(289, 256) == (2, 145)
    assert balanced_chunk_size(289, 256, multiple=4) == (2, 148)
    assert balanced_chunk_size(3, 256, multiple=4) == (1, 4)
