"""Randomised B-mode physics for training pairs: ranges, determinism, what is display and what is noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from usprior.physics.randomized import PhysicsRanges, random_bmode_pair


def anatomy(shape=(64, 72)):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (0.6 + 0.3 * np.sin(yy / 7.0) * np.cos(xx / 9.0)).astype(np.float32)


def test_draws_are_seeded_and_within_the_ranges():
    ranges = PhysicsRanges()
    pairs = [random_bmode_pair(anatomy(), seed) for seed in range(6)]
    again = random_bmode_pair(anatomy(), 3)
    np.testing.assert_array_equal(again.noisy, pairs[3].noisy)
    for p in pairs:
        assert p.noisy.shape == p.target.shape == (64, 72) and p.noisy.dtype == np.float32
        assert 0 <= p.noisy.min() and p.noisy.max() <= 1 and 0 <= p.target.min() and p.target.max() <= 1
        for name in ("f0_mhz", "dynamic_range_db", "gain", "offset", "depth_gain"):
            low, high = getattr(ranges, name)
            assert low <= p.params[name] <= high
        assert all(ranges.grain_px[0] <= g <= ranges.grain_px[1] for g in p.params["grain_px"])
    assert len({p.params["pixel_size_mm"] for p in pairs}) == 6  # a new pixel size every draw


def test_sector_and_jpeg():
    always = PhysicsRanges(p_sector=1.0, p_jpeg=1.0)
    never = PhysicsRanges(p_sector=0.0, p_jpeg=0.0)
    p = random_bmode_pair(anatomy(), 0, always)
    assert p.params["sector"] and p.params["jpeg_quality"] is not None
    outside = p.target == 0
    assert outside[0].mean() > 0.3 and np.median(p.noisy[outside]) < 0.02  # black beside the fan (JPEG rings at its edge)
    q = random_bmode_pair(anatomy(), 0, never)
    assert not q.params["sector"] and q.params["jpeg_quality"] is None and (q.target > 0).all()


def test_grain_sets_the_speckle_size():
    """The lateral autocorrelation of the speckle widens with the grain drawn."""
    def width(grain: float) -> float:
        ranges = PhysicsRanges(grain_px=(grain, grain), p_sector=0.0, p_jpeg=0.0, depth_gain=(0, 0), gain=(1, 1),
                               offset=(0, 0), f0_mhz=(7, 7), sigma_axial_mm=(0.25, 0.25), sigma_lateral_mm=(0.3, 0.3))
        p = random_bmode_pair(np.full((96, 96), 0.8, np.float32), 1, ranges)
        r = p.noisy - p.target
        r = r - r.mean()
        corr = [np.mean(r[:, :-k] * r[:, k:]) / np.mean(r * r) for k in range(1, 12)]
        return 1 + int(np.argmax(np.asarray(corr) < 0.5))

    assert width(1.0) < width(3.0) < width(6.0)


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="low <= high"):
        PhysicsRanges(gain=(1.3, 0.7))
    with pytest.raises(ValueError, match="p_jpeg"):
        PhysicsRanges(p_jpeg=1.5)


def test_noise_floor_fills_anechoic_regions_with_dim_clutter():
    """An anechoic image is black without the floor; with it, the noisy image is grainy clutter
    whose mean is the target's flat floor level."""
    from usprior.physics.randomized import PhysicsRanges, random_bmode_pair

    black = np.zeros((96, 96), np.float32)
    plain = PhysicsRanges(p_floor=0.0, p_sector=0.0, p_jpeg=0.0, gain=(1.0, 1.0), offset=(0.0, 0.0), depth_gain=(0.0, 0.0))
    assert random_bmode_pair(black, 0, plain).noisy.max() == 0.0
    floored = dataclasses.replace(plain, p_floor=1.0, noise_floor=(0.1, 0.1))
    pair = random_bmode_pair(black, 0, floored)
    assert pair.params["noise_floor"] == 0.1
    assert float(np.ptp(pair.target)) < 1e-6 and 0.0 < float(pair.target.mean()) < 0.1
    assert pair.noisy.std() > 0.02
    assert abs(float(pair.noisy.mean()) - float(pair.target.mean())) < 0.02
