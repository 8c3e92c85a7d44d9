"""Shared tiny models: every test runs on CPU in seconds."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from usprior.denoisers import base as denoiser_base

from usprior.priors.flow import FlowPrior, init_prior, save_prior
from usprior.priors.glow import GlowConfig

TINY = GlowConfig(patch=8, levels=2, depth=2, hidden=8)


FIXED = ("p", "sign_s")  # the 1x1 conv's permutation and signs: constants, not trained


def perturbed(prior: FlowPrior, scale: float = 0.05, seed: int = 0) -> FlowPrior:
    """The prior with every trainable parameter jittered, so couplings are far from identity."""
    rng = np.random.default_rng(seed)

    def jitter(path, leaf):
        if path[-1].key in FIXED:
            return leaf
        return np.asarray(leaf) + scale * rng.standard_normal(leaf.shape).astype(np.float32)

    return FlowPrior(jax.tree_util.tree_map_with_path(jitter, prior.params), prior.config)


@pytest.fixture(scope="session")
def tiny_prior() -> FlowPrior:
    x = np.random.default_rng(0).uniform(0.1, 0.9, (64, *TINY.event_shape)).astype(np.float32)
    return perturbed(init_prior(TINY, jax.random.PRNGKey(0), x))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_prior, tmp_path_factory):
    return save_prior(tiny_prior, tmp_path_factory.mktemp("ckpt") / "tiny", {"purpose": "tests"})


@pytest.fixture
def smooth_image():
    """A smooth 40x52 test image in [0.1, 0.9] (odd-ish, non-square)."""
    yy, xx = np.mgrid[0:40, 0:52]
    return (0.5 + 0.4 * np.sin(yy / 7.0) * np.cos(xx / 9.0)).astype(np.float32)


@pytest.fixture
def registry():
    """Restore the denoiser registry after a test that registers its own denoisers."""
    saved = dict(denoiser_base._REGISTRY)
    yield
    denoiser_base._REGISTRY.clear()
    denoiser_base._REGISTRY.update(saved)
