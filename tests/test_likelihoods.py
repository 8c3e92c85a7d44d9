"""Tests for usprior.physics.likelihoods: formulas, gradients, sampling statistics, estimation, pytree use."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from usprior.physics.noise import estimate_noise

from usprior.physics.likelihoods import (
    EPS,
    LIKELIHOODS,
    GammaSpeckle,
    Gaussian,
    Likelihood,
    LogSpeckle,
    RayleighSpeckle,
    make_likelihood,
)

MODELS: list[Likelihood] = [
    Gaussian(sigma=0.1),
    LogSpeckle(sigma=0.1, gamma=0.5),
    GammaSpeckle(looks=4.0),
    RayleighSpeckle(),
]
IDS = [m.name for m in MODELS]


# jax.random.gamma takes seconds to compile for each new shape, so all sampling in this
# file goes through one jitted function with the likelihood as a pytree argument, always
# on arrays of shape BATCH: one compilation per model, shared by all tests.
BATCH = (128, 32, 32, 1)  # 131072 samples; reshaped to IMAGE for the from_image tests
IMAGE = (256, 512)
_sample = jax.jit(lambda lik, key, x: lik.sample(key, x))


def _draw(lik: Likelihood, seed: int, x_val: float) -> jax.Array:
    """y ~ p(y | x) of shape BATCH for the constant clean image x = x_val."""
    return _sample(lik, jax.random.PRNGKey(seed), jnp.full(BATCH, x_val, dtype=jnp.float32))


def _observation(lik: Likelihood, seed: int) -> tuple[jax.Array, jax.Array]:
    """Random clean patches x in [0.2, 0.9] of shape BATCH and a draw y ~ p(y | x)."""
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.uniform(kx, BATCH, minval=0.2, maxval=0.9)
    return x, _sample(lik, ky, x)


def _uniform_pair(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Random x in [0.2, 0.9] and positive y in [0.1, 1.0], without sampling a model."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.9, size=shape), rng.uniform(0.1, 1.0, size=shape)


def _smooth_image(n: int = 128) -> np.ndarray:
    """A horizontal gradient plus a bright disk, values in [0.2, 0.8]."""
    rows, cols = np.mgrid[0:n, 0:n] / (n - 1)
    disk = ((rows - 0.5) ** 2 + (cols - 0.5) ** 2) < 0.25**2
    return 0.2 + 0.4 * cols + 0.2 * disk


# --------------------------------------------------------------------------- formulas


def test_gaussian_nll_matches_hand_computation() -> None:
    x = np.array([[0.1, 0.5], [0.9, 0.0]], dtype=np.float32)
    y = np.array([[0.2, 0.4], [1.0, -0.3]], dtype=np.float32)
    sigma = 0.25
    expected = ((0.1**2 + 0.1**2 + 0.1**2 + 0.3**2) / (2 * sigma**2))
    got = float(Gaussian(sigma=sigma).nll(jnp.asarray(x), jnp.asarray(y)))
    assert got == pytest.approx(expected, rel=1e-6)


def test_nll_formulas_other_models() -> None:
    x = np.array([0.3, 0.7])
    y = np.array([0.5, 0.2])
    sigma, gamma, looks = 0.2, 0.5, 3.0
    log_speckle = np.sum((y - x) ** 2 / (2 * sigma**2 * x ** (2 * gamma)) + gamma * np.log(x))
    gamma_nll = np.sum(looks * (np.log(x) + y / x))
    rayleigh = np.sum(2 * np.log(x) + y**2 / x**2)
    assert float(LogSpeckle(sigma, gamma).nll(x, y)) == pytest.approx(log_speckle, rel=1e-5)
    assert float(GammaSpeckle(looks).nll(x, y)) == pytest.approx(gamma_nll, rel=1e-5)
    assert float(RayleighSpeckle().nll(x, y)) == pytest.approx(rayleigh, rel=1e-5)


@pytest.mark.parametrize("lik", MODELS, ids=IDS)
def test_nll_is_scalar_for_any_shape(lik: Likelihood) -> None:
    for shape in [(5,), (4, 4), (2, 32, 32, 1)]:
        x, y = _uniform_pair(0, shape)
        assert lik.nll(jnp.asarray(x), jnp.asarray(y)).shape == ()


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("lik", MODELS, ids=IDS)
def test_gradient_matches_finite_differences(lik: Likelihood) -> None:
    with jax.enable_x64(True):
        x, y = _uniform_pair(1, (3, 3, 1))
        grad = np.asarray(jax.grad(lik.nll)(jnp.asarray(x), jnp.asarray(y)))
        assert grad.dtype == np.float64
        h = 1e-6
        fd = np.empty_like(x)
        for idx in np.ndindex(x.shape):
            step = np.zeros_like(x)
            step[idx] = h
            fd[idx] = (float(lik.nll(x + step, y)) - float(lik.nll(x - step, y))) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lik", MODELS, ids=IDS)
def test_finite_at_zero(lik: Likelihood) -> None:
    x = jnp.zeros((4, 4, 1))
    y = jnp.full((4, 4, 1), 0.3)
    value, grad = jax.value_and_grad(lik.nll)(x, y)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(np.asarray(grad)))
    # Mixed zeros and values at the floor must also stay finite.
    x_mixed = x.at[0].set(EPS)
    assert np.all(np.isfinite(np.asarray(jax.grad(lik.nll)(x_mixed, y))))


# --------------------------------------------------------------------------- maximum likelihood


def _grid_argmin(lik: Likelihood, y: jax.Array, grid: np.ndarray) -> float:
    """Argmin over a scalar grid of x (broadcast to y's shape) of nll(x, y)."""
    values = jax.vmap(lambda t: lik.nll(jnp.full(y.shape, t), y))(jnp.asarray(grid))
    return float(grid[int(jnp.argmin(values))])


GRID = np.linspace(0.05, 2.0, 39001)  # step 5e-5


def test_gaussian_ml_is_observation() -> None:
    y = jnp.array([0.437])
    assert _grid_argmin(Gaussian(0.1), y, GRID) == pytest.approx(0.437, abs=1e-4)


def test_log_speckle_ml_matches_closed_form() -> None:
    # For gamma = 1/2 the stationarity condition is x^2 + sigma^2 x - y^2 = 0,
    # so the ML estimate lies slightly below y: x* = (sqrt(sigma^4 + 4 y^2) - sigma^2) / 2.
    sigma, y_val = 0.3, 0.5
    expected = (math.sqrt(sigma**4 + 4 * y_val**2) - sigma**2) / 2
    got = _grid_argmin(LogSpeckle(sigma, 0.5), jnp.array([y_val]), GRID)
    assert got == pytest.approx(expected, abs=1e-4)
    assert got < y_val - 0.02  # the variance term visibly pulls the estimate below y


def test_gamma_ml_is_sample_mean() -> None:
    lik = GammaSpeckle(looks=2.0)
    y = _draw(lik, 3, 0.6).ravel()[:500]
    assert _grid_argmin(lik, y, GRID) == pytest.approx(float(jnp.mean(y)), abs=1e-4)


def test_rayleigh_ml_is_root_mean_square() -> None:
    lik = RayleighSpeckle()
    y = _draw(lik, 4, 0.6).ravel()[:500]
    expected = float(jnp.sqrt(jnp.mean(y**2)))
    assert _grid_argmin(lik, y, GRID) == pytest.approx(expected, abs=1e-4)


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("lik", MODELS, ids=IDS)
def test_sample_shape_and_dtype(lik: Likelihood) -> None:
    y = _draw(lik, 0, 0.5)
    assert y.shape == BATCH
    assert y.dtype == jnp.float32
    assert not np.allclose(np.asarray(y), 0.5)


def test_gaussian_sample_std() -> None:
    y = _draw(Gaussian(0.07), 5, 0.5)
    assert float(jnp.mean(y)) == pytest.approx(0.5, abs=2e-3)
    assert float(jnp.std(y)) == pytest.approx(0.07, rel=0.02)


def test_log_speckle_sample_std() -> None:
    sigma, gamma = 0.1, 0.5
    for x_val in (0.16, 0.81):
        residual = _draw(LogSpeckle(sigma, gamma), 6, x_val) - x_val
        assert float(jnp.mean(residual)) == pytest.approx(0.0, abs=2e-3)
        assert float(jnp.std(residual)) == pytest.approx(sigma * x_val**gamma, rel=0.02)


def test_gamma_sample_mean_and_variance() -> None:
    looks, x_val = 3.0, 0.4
    y = _draw(GammaSpeckle(looks), 7, x_val)
    assert float(jnp.min(y)) >= 0.0
    assert float(jnp.mean(y)) == pytest.approx(x_val, rel=0.01)
    assert float(jnp.var(y)) == pytest.approx(x_val**2 / looks, rel=0.03)


def test_rayleigh_sample_second_moment() -> None:
    x_val = 0.7
    y = _draw(RayleighSpeckle(), 8, x_val)
    assert float(jnp.min(y)) >= 0.0
    assert float(jnp.mean(y**2)) == pytest.approx(x_val**2, rel=0.02)
    # Rayleigh with E[r^2] = 1 has E[r] = sqrt(pi) / 2.
    assert float(jnp.mean(y)) == pytest.approx(x_val * math.sqrt(math.pi) / 2, rel=0.01)


# --------------------------------------------------------------------------- noise estimation


def test_gaussian_from_image_recovers_sigma() -> None:
    clean = _smooth_image()
    noisy = clean + 0.1 * np.random.default_rng(9).standard_normal(clean.shape)
    assert Gaussian.from_image(noisy).sigma == pytest.approx(0.1, rel=0.15)
    # A trailing channel axis is accepted.
    assert Gaussian.from_image(noisy[..., None]).sigma == pytest.approx(0.1, rel=0.15)


def test_log_speckle_from_image_recovers_sigma() -> None:
    sigma = 0.1
    noisy = np.asarray(_draw(LogSpeckle(sigma, 0.5), 10, 0.5)).reshape(IMAGE)
    assert LogSpeckle.from_image(noisy).sigma == pytest.approx(sigma, rel=0.15)


def test_gamma_from_image_recovers_looks() -> None:
    looks = 16.0
    noisy = np.asarray(_draw(GammaSpeckle(looks), 11, 0.5)).reshape(IMAGE)
    # The MAD estimate assumes Gaussian noise; for skewed gamma noise it overestimates
    # L by roughly 0.35 looks, which is small relative to L = 16.
    assert GammaSpeckle.from_image(noisy).looks == pytest.approx(looks, rel=0.15)


def test_from_image_clamps_noise_free_image() -> None:
    clean = _smooth_image()  # wavelet estimate ~ 1e-17: clamped to the 8-bit quantisation level
    level = estimate_noise(clean).level  # the intensity of the homogeneous windows
    assert 0.05 < level < 0.95
    assert Gaussian.from_image(clean).sigma == pytest.approx(1e-3)
    assert LogSpeckle.from_image(clean).sigma == pytest.approx(1e-3 / np.sqrt(level))
    assert GammaSpeckle.from_image(clean).looks == pytest.approx((level / 1e-3) ** 2)


def test_rayleigh_from_image_is_default() -> None:
    assert RayleighSpeckle.from_image(_smooth_image()) == RayleighSpeckle()


def test_from_image_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        Gaussian.from_image(np.zeros((4, 4, 4, 1)))
    with pytest.raises(ValueError, match="non-finite"):
        Gaussian.from_image(np.full((64, 64), np.nan))
    with pytest.raises(ValueError, match="mean"):
        GammaSpeckle.from_image(np.zeros((64, 64)))


# --------------------------------------------------------------------------- make_likelihood


def test_registry() -> None:
    assert set(LIKELIHOODS) == {"gaussian", "log_speckle", "gamma", "rayleigh"}
    for name, cls in LIKELIHOODS.items():
        assert cls.name == name


@pytest.mark.parametrize("lik", MODELS, ids=IDS)
def test_models_satisfy_protocol(lik: Likelihood) -> None:
    assert isinstance(lik, Likelihood)


def test_make_likelihood_by_name_with_sigma() -> None:
    assert make_likelihood("gaussian", sigma=0.2) == Gaussian(0.2)
    assert make_likelihood("log_speckle", sigma=0.2) == LogSpeckle(0.2, 0.5)
    gamma = make_likelihood("gamma", sigma=0.5)
    assert isinstance(gamma, GammaSpeckle)
    assert gamma.looks == pytest.approx(4.0)
    assert gamma.params() == {"looks": pytest.approx(4.0)}


def test_make_likelihood_from_image() -> None:
    clean = _smooth_image()
    noisy = clean + 0.1 * np.random.default_rng(12).standard_normal(clean.shape)
    lik = make_likelihood("gaussian", image=noisy)
    assert isinstance(lik, Gaussian)
    assert lik.sigma == pytest.approx(0.1, rel=0.15)
    assert make_likelihood("rayleigh", image=noisy) == RayleighSpeckle()
    # sigma takes precedence over the image.
    assert make_likelihood("gaussian", sigma=0.3, image=noisy) == Gaussian(0.3)


def test_make_likelihood_returns_object_unchanged() -> None:
    lik = LogSpeckle(0.05, 0.7)
    assert make_likelihood(lik) is lik


def test_make_likelihood_errors() -> None:
    with pytest.raises(ValueError, match="gaussian"):  # message lists the valid names
        make_likelihood("poisson", sigma=0.1)
    with pytest.raises(ValueError, match="sigma or image"):
        make_likelihood("gaussian")
    for bad in (0.0, -0.1, float("nan"), float("inf")):
        for name in ("gaussian", "log_speckle", "gamma"):
            with pytest.raises(ValueError, match="finite and > 0"):
                make_likelihood(name, sigma=bad)
    with pytest.raises(ValueError, match="no noise parameter"):
        make_likelihood("rayleigh", sigma=0.1)
    with pytest.raises(TypeError):
        make_likelihood(3.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pytree / jit / vmap


def test_parameters_are_pytree_leaves() -> None:
    assert jax.tree_util.tree_leaves(Gaussian(0.1)) == [0.1]
    assert jax.tree_util.tree_leaves(LogSpeckle(0.1, 0.5)) == [0.1, 0.5]
    assert jax.tree_util.tree_leaves(GammaSpeckle(4.0)) == [4.0]
    assert jax.tree_util.tree_leaves(RayleighSpeckle()) == []
    assert LogSpeckle(0.1, 0.5).params() == {"sigma": 0.1, "gamma": 0.5}


@pytest.mark.parametrize("lik", MODELS, ids=IDS)
def test_jit_and_vmap_with_likelihood_argument(lik: Likelihood) -> None:
    x, y = _observation(lik, 13)
    x, y = x[:3], y[:3]
    eager = jnp.stack([lik.nll(x[i], y[i]) for i in range(3)])

    jitted = jax.jit(lambda l, a, b: l.nll(a, b))
    np.testing.assert_allclose(float(jitted(lik, x[0], y[0])), float(eager[0]), rtol=1e-5)

    batched = jax.jit(jax.vmap(lambda l, a, b: l.nll(a, b), in_axes=(None, 0, 0)))
    np.testing.assert_allclose(np.asarray(batched(lik, x, y)), np.asarray(eager), rtol=1e-5)

    grads = jax.jit(jax.vmap(jax.grad(lambda a, b, l: l.nll(a, b)), in_axes=(0, 0, None)))(x, y, lik)
    assert grads.shape == x.shape
    np.testing.assert_allclose(
        np.asarray(grads[1]), np.asarray(jax.grad(lik.nll)(x[1], y[1])), rtol=1e-4, atol=1e-6
    )



def test_jit_traces_parameters_not_constants() -> None:
    traces = []

    @jax.jit
    def nll(lik: Gaussian, x: jax.Array, y: jax.Array) -> jax.Array:
        traces.append(None)
        return lik.nll(x, y)

    x, y = jnp.zeros(4), jnp.ones(4)
    first = nll(Gaussian(0.5), x, y)
    second = nll(Gaussian(1.0), x, y)
    assert len(traces) == 1  # a new sigma reuses the compiled function
    assert float(first) == pytest.approx(4 * float(second))  # nll scales as 1 / sigma^2
