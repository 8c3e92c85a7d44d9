"""Scanner-like training pairs: randomised physics and real-frame distillation (shapes, alignment,
levels, determinism, windows inside the mask, errors)."""

from __future__ import annotations

import numpy as np
import pytest

from usprior.amortized.scanner_pairs import concat_pairs, distilled_pairs, randomized_pairs, simulator_pairs
from usprior.physics.noise import estimate_speckle_std
from usprior.physics.randomized import PhysicsRanges, random_bmode_pair

RANGES = PhysicsRanges(grain_px=(1.0, 2.0), p_jpeg=0.0)  # small grains: fast simulations


def _anatomy():
    rng = np.random.default_rng(0)
    return [np.clip(rng.uniform(0.2, 0.8) + 0.1 * rng.standard_normal((48, 56)), 0, 1).astype(np.float32) for _ in range(2)]


def test_randomized_pairs_are_the_simulations_cut_into_windows():
    images = _anatomy()
    pairs = randomized_pairs(images, patch=16, patches_per_image=3, seed=4, ranges=RANGES)
    assert pairs.noisy.shape == pairs.target.shape == (6, 16, 16, 1) and pairs.sigma.shape == (6,)
    assert pairs.noisy.dtype == pairs.target.dtype == pairs.sigma.dtype == np.float32
    again = randomized_pairs(images, patch=16, patches_per_image=3, seed=4, ranges=RANGES)
    for a, b in zip(pairs, again):
        np.testing.assert_array_equal(a, b)
    # every window of the first image is a window of its simulation, at the level read from it
    rng = np.random.default_rng(np.random.default_rng(4).integers(0, 2**31, 2)[0])
    sim = random_bmode_pair(images[0], rng, RANGES)
    assert pairs.sigma[0] == pytest.approx(estimate_speckle_std(sim.noisy))
    for k in range(3):
        hits = [(r, c) for r in range(33) for c in range(41) if np.array_equal(sim.noisy[r : r + 16, c : c + 16], pairs.noisy[k, ..., 0])]
        assert hits and np.array_equal(sim.target[hits[0][0] : hits[0][0] + 16, hits[0][1] : hits[0][1] + 16], pairs.target[k, ..., 0])
    assert not np.array_equal(pairs.noisy[:3], pairs.noisy[3:])


def test_planewave_ranges_cut_windows_from_the_plane_wave_simulation():
    """PlaneWaveRanges switch randomized_pairs to pymust: the windows come from the simulation's
    fixed output shape (not the anatomy's), at the level read from it; deterministic."""
    pytest.importorskip("pymust")
    from usprior.physics.randomized import PlaneWaveRanges, random_planewave_pair

    tiny = PlaneWaveRanges(n_angles=(1,), scatterers_per_cell=(0.3, 0.3), depth_start_mm=(6.0, 6.0),
                           depth_span_mm=(4.0, 4.0), width_mm=(4.0, 4.0), shape=(24, 24))
    image = _anatomy()[0]
    pairs = randomized_pairs([image], patch=16, patches_per_image=2, seed=5, ranges=tiny)
    assert pairs.noisy.shape == (2, 16, 16, 1)
    rng = np.random.default_rng(np.random.default_rng(5).integers(0, 2**31, 1)[0])
    sim = random_planewave_pair(image, rng, tiny)
    assert sim.noisy.shape == (24, 24) and sim.params["n_angles"] == 1
    assert pairs.sigma[0] == pytest.approx(estimate_speckle_std(sim.noisy))
    hits = [(r, c) for r in range(9) for c in range(9) if np.array_equal(sim.noisy[r : r + 16, c : c + 16], pairs.noisy[0, ..., 0])]
    assert hits and np.array_equal(sim.target[hits[0][0] : hits[0][0] + 16, hits[0][1] : hits[0][1] + 16], pairs.target[0, ..., 0])


def _speckle(x, level, seed):
    """A toy corrupt(): multiplicative noise of strength ``level`` (the target is x)."""
    rng = np.random.default_rng(seed)
    return np.clip(x * (1 + level * rng.standard_normal(x.shape)), 0, 1), x


def test_simulator_pairs_are_one_setting_labelled_with_the_speckle_estimate():
    images = _anatomy()
    pairs = simulator_pairs(images, _speckle, [0.1, 0.4], patch=16, patches_per_image=3, seed=2)
    assert pairs.noisy.shape == pairs.target.shape == (12, 16, 16, 1) and pairs.sigma.dtype == np.float32
    for a, b in zip(pairs, simulator_pairs(images, _speckle, [0.1, 0.4], patch=16, patches_per_image=3, seed=2)):
        np.testing.assert_array_equal(a, b)
    # image 0 at level 0.1: the windows are cut from corrupt()'s pair, at the speckle estimate of the whole image
    y, t = _speckle(images[0], 0.1, int(np.random.default_rng(2).integers(2**31)))
    assert pairs.sigma[0] == pytest.approx(estimate_speckle_std(y))
    for k in range(3):
        hits = [(r, c) for r in range(33) for c in range(41) if np.allclose(y[r : r + 16, c : c + 16], pairs.noisy[k, ..., 0])]
        assert hits and np.allclose(t[hits[0][0] : hits[0][0] + 16, hits[0][1] : hits[0][1] + 16], pairs.target[k, ..., 0])
    assert pairs.sigma[3] > 2 * pairs.sigma[0]  # the stronger level reads higher
    with pytest.raises(ValueError, match="at least one"):
        simulator_pairs(images, _speckle, [], patch=16)
    with pytest.raises(ValueError, match="corrupt returned shapes"):
        simulator_pairs(images, lambda x, s, seed: (x[:-1], x), [0.1], patch=16)


def test_distilled_windows_are_centred_inside_the_mask():
    rng = np.random.default_rng(1)
    noisy = rng.uniform(0, 1, (64, 80)).astype(np.float32)
    target = noisy * 0.5
    mask = np.zeros((64, 80), bool)
    mask[20:44, 30:60] = True
    pairs = distilled_pairs([noisy], [target], [mask], patch=16, patches_per_image=20, seed=0)
    assert pairs.noisy.shape == (20, 16, 16, 1)
    np.testing.assert_allclose(pairs.target, pairs.noisy * 0.5)
    for window in pairs.noisy[..., 0]:
        (r, c), = [(r, c) for r in range(49) for c in range(65) if np.array_equal(noisy[r : r + 16, c : c + 16], window)]
        assert mask[r + 8, c + 8]
    assert pairs.sigma[0] == pytest.approx(estimate_speckle_std(noisy[20:44, 30:60]))
    both = concat_pairs(pairs, pairs)
    assert both.noisy.shape[0] == 40 and np.array_equal(both.sigma[:20], pairs.sigma)


def test_bad_inputs_are_refused():
    frame = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match="as many"):
        distilled_pairs([frame], [], [np.ones((32, 32), bool)], patch=16)
    with pytest.raises(ValueError, match="empty"):
        distilled_pairs([frame], [frame], [np.zeros((32, 32), bool)], patch=16)
    with pytest.raises(ValueError, match="differ in shape"):
        distilled_pairs([frame], [frame[:20]], [np.ones((32, 32), bool)], patch=16)
    with pytest.raises(ValueError, match="at least one"):
        randomized_pairs([], patch=16)
    with pytest.raises(ValueError, match="clean image"):
        randomized_pairs([np.zeros((8, 8))], patch=16)
    with pytest.raises(ValueError, match="at least one"):
        concat_pairs()
