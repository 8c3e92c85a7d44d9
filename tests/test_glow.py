"""Glow flow: invertibility, exact log-determinant, actnorm init, distrax views."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY
from usprior.priors.glow import ActNorm, AffineCoupling, GlowConfig, squeeze, unsqueeze
from usprior.priors.flow import FlowPrior


def patches(n: int, seed: int = 1) -> jnp.ndarray:
    return jax.random.uniform(jax.random.PRNGKey(seed), (n, *TINY.event_shape), minval=0.02, maxval=0.98)


def test_squeeze_roundtrip():
    x = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
    assert squeeze(x).shape == (2, 4, 4, 12)
    np.testing.assert_array_equal(unsqueeze(squeeze(x)), x)


def test_inverse_of_forward(tiny_prior):
    x = patches(16)
    z, log_det = tiny_prior.encode_and_log_det(x)
    x_rec, log_det_inv = tiny_prior.decode_and_log_det(z)
    assert z.shape == x.shape and log_det.shape == (16,)
    np.testing.assert_allclose(x_rec, x, atol=1e-4)
    np.testing.assert_allclose(log_det_inv, -log_det, rtol=1e-4, atol=1e-3)


def test_log_det_matches_autodiff_jacobian(tiny_prior):
    with jax.enable_x64(True):
        prior = FlowPrior(jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float64), tiny_prior.params), TINY)
        x = jnp.asarray(patches(2), jnp.float64)
        _, log_det = prior.encode_and_log_det(x)
        for i in range(2):
            f = lambda v: prior.encode(v.reshape(TINY.event_shape)).reshape(-1)
            jac = jax.jacfwd(f)(x[i].reshape(-1))
            sign, logabs = jnp.linalg.slogdet(jac)
            assert sign != 0
            np.testing.assert_allclose(log_det[i], logabs, rtol=1e-8, atol=1e-6)


def test_actnorm_data_dependent_init():
    x = 3.0 + 2.5 * jax.random.normal(jax.random.PRNGKey(0), (32, 4, 4, 3))
    layer = ActNorm()
    params = layer.init(jax.random.PRNGKey(1), x)
    y, _ = layer.apply(params, x)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.std(y, axis=(0, 1, 2)), 1.0, atol=1e-4)


def test_log_prob_batch_shapes(tiny_prior):
    x = patches(6).reshape(2, 3, *TINY.event_shape)
    lp = tiny_prior.log_prob(x)
    assert lp.shape == (2, 3) and bool(jnp.all(jnp.isfinite(lp)))
    with pytest.raises(ValueError, match="trailing shape"):
        tiny_prior.log_prob(jnp.zeros((4, 9, 9, 1)))


def test_distrax_views_agree(tiny_prior):
    x = patches(4)
    dist = tiny_prior.distribution()
    np.testing.assert_allclose(dist.log_prob(x), tiny_prior.log_prob(x), rtol=1e-4, atol=1e-3)
    samples = dist.sample(seed=jax.random.PRNGKey(3), sample_shape=(5,))
    assert samples.shape == (5, *TINY.event_shape)
    bij = tiny_prior.bijector()
    z = bij.inverse(x)
    np.testing.assert_allclose(bij.forward(z), x, atol=1e-4)
    np.testing.assert_allclose(
        bij.forward_log_det_jacobian(z), -bij.inverse_log_det_jacobian(x), rtol=1e-4, atol=1e-3
    )


def test_sample_is_seeded(tiny_prior):
    a = tiny_prior.sample(jax.random.PRNGKey(7), 3)
    b = tiny_prior.sample(jax.random.PRNGKey(7), 3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, *TINY.event_shape)


@pytest.mark.parametrize(
    "kwargs", [dict(patch=12, levels=3), dict(depth=0), dict(alpha=0.6), dict(hidden=0), dict(scale_floor=0.0)]
)
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        GlowConfig(**kwargs)


def test_coupling_scale_floor_keeps_inverse_accurate():
    # drive the scale logits to -inf: s must sit at the floor, not at 0, and invert exactly
    layer = AffineCoupling(hidden=4, floor=0.1)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 4, 4, 2))
    params = layer.init(jax.random.PRNGKey(1), x)
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p.at[1::2].add(-1e4)  # scale logits sit at odd channels of conv_out
        if "conv_out" in jax.tree_util.keystr(path) and path[-1].key == "bias"
        else p,
        params,
    )
    y, log_det = layer.apply(params, x)
    np.testing.assert_allclose(log_det, 4 * 4 * 1 * np.log(0.1), rtol=1e-5)  # H W C_b log(floor)
    x_rec, _ = layer.apply(params, y, reverse=True)
    np.testing.assert_allclose(x_rec, x, atol=1e-5)
