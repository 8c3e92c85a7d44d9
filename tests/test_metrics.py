"""Tests for usprior.eval.metrics: hand-computed values, known speckle statistics, ROI masks, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from usprior.eval import metrics


def _rng_image(shape: tuple[int, int] = (32, 32), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def _halves(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the top and bottom halves of an image."""
    top = metrics.box_mask(shape, (0, 0), (shape[0] // 2, shape[1]))
    return top, ~top


# --- full reference -------------------------------------------------------------------------


def test_psnr_matches_hand_formula() -> None:
    ref = _rng_image()
    est = np.clip(ref + 0.05 * np.random.default_rng(1).standard_normal(ref.shape), 0, 1)
    mse = np.mean((ref - est) ** 2)
    assert metrics.psnr(ref, est) == pytest.approx(10 * math.log10(1.0 / mse), rel=1e-10)
    assert metrics.psnr(ref, est, data_range=2.0) == pytest.approx(10 * math.log10(4.0 / mse), rel=1e-10)


def test_psnr_of_identical_images_is_inf() -> None:
    ref = _rng_image()
    assert metrics.psnr(ref, ref) == math.inf


def test_ssim_identity_and_degradation() -> None:
    ref = _rng_image()
    assert metrics.ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)
    noisy = np.clip(ref + 0.2 * np.random.default_rng(2).standard_normal(ref.shape), 0, 1)
    assert metrics.ssim(ref, noisy) < 0.9


@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim])
def test_full_reference_rejects_bad_inputs(fn) -> None:
    ref = _rng_image()
    with pytest.raises(ValueError, match="shapes differ"):
        fn(ref, ref[:-1])
    bad = ref.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(ref, bad)
    with pytest.raises(ValueError, match="2-D"):
        fn(ref[0], ref[0])
    with pytest.raises(ValueError, match="data_range"):
        fn(ref, ref, data_range=0.0)


# --- ROI masks ------------------------------------------------------------------------------


def test_disk_mask_area_and_geometry() -> None:
    mask = metrics.disk_mask((64, 80), (32, 40), 20)
    assert mask.dtype == bool and mask.shape == (64, 80)
    assert mask.sum() == pytest.approx(math.pi * 20**2, rel=0.01)
    assert mask[32, 40] and mask[12, 40] and not mask[11, 40] and not mask[32, 61]


def test_ring_mask_is_outer_disk_minus_inner_disk() -> None:
    shape, center = (64, 64), (31.5, 30.0)
    ring = metrics.ring_mask(shape, center, 8, 20)
    outer = metrics.disk_mask(shape, center, 20)
    inner = metrics.disk_mask(shape, center, 8)
    assert not (ring & inner).any()
    np.testing.assert_array_equal(ring | inner, outer)
    assert ring.sum() == outer.sum() - inner.sum()
    # r_inner = 0 drops only the centre pixel, when the centre is a pixel
    ring0 = metrics.ring_mask(shape, (32, 30), 0, 20)
    assert ring0.sum() == metrics.disk_mask(shape, (32, 30), 20).sum() - 1 and not ring0[32, 30]


def test_box_mask_pixel_count() -> None:
    mask = metrics.box_mask((20, 30), (2, 5), (7, 11))
    assert mask.sum() == 77
    assert mask[2, 5] and mask[8, 15] and not mask[9, 15] and not mask[8, 16] and not mask[1, 5]
    assert metrics.box_mask((20, 30), (0, 0), (20, 30)).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: metrics.disk_mask((64, 64), (32, 32), 40),  # outside
        lambda: metrics.disk_mask((64, 64), (5, 32), 6),  # clipped at the top
        lambda: metrics.disk_mask((64, 64), (32, 32), 0),  # empty radius
        lambda: metrics.disk_mask((64,), (32, 32), 4),  # bad shape
        lambda: metrics.ring_mask((64, 64), (32, 32), 10, 10),  # r_inner == r_outer
        lambda: metrics.ring_mask((64, 64), (32, 32), -1, 10),  # negative r_inner
        lambda: metrics.ring_mask((64, 64), (32, 32), 10, 40),  # outside
        lambda: metrics.ring_mask((64, 64), (32, 32), 1.0, 1.2),  # no pixel between the radii
        lambda: metrics.box_mask((20, 30), (15, 0), (6, 5)),  # overflows rows
        lambda: metrics.box_mask((20, 30), (0, -1), (5, 5)),  # negative corner
        lambda: metrics.box_mask((20, 30), (0, 0), (0, 5)),  # empty
    ],
)
def test_masks_reject_empty_or_outside_rois(make) -> None:
    with pytest.raises(ValueError):
        make()


# --- CNR, gCNR ------------------------------------------------------------------------------


def test_cnr_matches_hand_formula() -> None:
    image = np.array([[0.1, 0.3, 0.2], [0.8, 0.6, 0.7]])
    top, bottom = _halves(image.shape)
    # roi {0.1, 0.3, 0.2}: mean 0.2, var 0.02/3; background {0.8, 0.6, 0.7}: mean 0.7, var 0.02/3
    expected = 0.5 / math.sqrt(0.04 / 3)
    assert metrics.cnr(image, top, bottom) == pytest.approx(expected, rel=1e-12)
    assert metrics.cnr(image, bottom, top) == pytest.approx(expected, rel=1e-12)


def test_cnr_of_constant_regions() -> None:
    top, bottom = _halves((4, 4))
    assert metrics.cnr(np.full((4, 4), 0.5), top, bottom) == 0.0
    image = np.where(top, 0.2, 0.7)
    assert metrics.cnr(image, top, bottom) == math.inf


def test_gcnr_is_one_for_disjoint_values() -> None:
    rng = np.random.default_rng(3)
    image = np.concatenate([rng.uniform(0.0, 0.4, (16, 32)), rng.uniform(0.6, 1.0, (16, 32))])
    top, bottom = _halves(image.shape)
    assert metrics.gcnr(image, top, bottom) == 1.0
    assert metrics.gcnr(image, top, bottom, bins=2) == 1.0


def test_gcnr_is_zero_for_identical_samples() -> None:
    rng = np.random.default_rng(4)
    half = rng.random((15, 33))
    image = np.concatenate([half, half])
    top, bottom = _halves(image.shape)
    assert metrics.gcnr(image, top, bottom) == 0.0
    assert metrics.gcnr(np.full((4, 4), 0.3), *_halves((4, 4))) == 0.0


def test_gcnr_of_uniforms_overlapping_by_half() -> None:
    # U(0, 1) vs U(0.5, 1.5): the overlap of the densities is 1/2, so gCNR = 0.5.
    rng = np.random.default_rng(5)
    image = np.concatenate([rng.uniform(0.0, 1.0, (500, 1000)), rng.uniform(0.5, 1.5, (500, 1000))])
    top, bottom = _halves(image.shape)
    assert metrics.gcnr(image, top, bottom) == pytest.approx(0.5, abs=0.02)


def test_gcnr_rejects_bad_bins() -> None:
    top, bottom = _halves((4, 4))
    with pytest.raises(ValueError, match="bins"):
        metrics.gcnr(_rng_image((4, 4)), top, bottom, bins=0)


# --- SNR, ENL, sharpness --------------------------------------------------------------------


def test_snr_of_rayleigh_speckle() -> None:
    image = np.random.default_rng(6).rayleigh(1.0, (400, 500))
    full = np.ones(image.shape, dtype=bool)
    expected = math.sqrt(math.pi / (4 - math.pi))  # 1.913
    assert metrics.snr(image, full) == pytest.approx(expected, rel=0.02)
    assert metrics.snr(image / image.max(), full) == pytest.approx(metrics.snr(image, full), rel=1e-12)


def test_enl_of_gamma_intensity() -> None:
    looks = 4
    image = np.random.default_rng(7).gamma(looks, 1.0 / looks, (400, 500))
    full = np.ones(image.shape, dtype=bool)
    assert metrics.enl(image, full) == pytest.approx(looks, rel=0.05)


def test_snr_and_enl_hand_values_and_constant_roi() -> None:
    image = np.array([[0.2, 0.4], [0.9, 0.9]])
    top, bottom = _halves(image.shape)
    # {0.2, 0.4}: mean 0.3, population std 0.1
    assert metrics.snr(image, top) == pytest.approx(3.0, rel=1e-12)
    assert metrics.enl(image, top) == pytest.approx(9.0, rel=1e-12)
    assert metrics.snr(image, bottom) == math.inf
    assert metrics.enl(image, bottom) == math.inf
    assert metrics.snr(np.zeros((2, 2)), top) == 0.0


def test_sharpness_hand_values() -> None:
    assert metrics.sharpness(np.full((8, 9), 0.4)) == 0.0
    # a ramp I(y, x) = a x has Sobel response S_x * I = 8a everywhere and S_y * I = 0
    ramp = np.tile(0.01 * np.arange(10.0), (7, 1))
    assert metrics.sharpness(ramp) == pytest.approx(0.08**2, rel=1e-12)
    smooth = _rng_image((32, 32))
    assert metrics.sharpness(smooth) > metrics.sharpness(0.5 * smooth)
    with pytest.raises(ValueError, match="3 x 3"):
        metrics.sharpness(np.zeros((2, 10)))


# --- bad ROI inputs -------------------------------------------------------------------------

ROI_METRICS = [
    lambda img, m: metrics.cnr(img, m, m),
    lambda img, m: metrics.gcnr(img, m, m),
    metrics.snr,
    metrics.enl,
]


@pytest.mark.parametrize("fn", ROI_METRICS)
def test_roi_metrics_reject_bad_masks_and_images(fn) -> None:
    image = _rng_image((8, 8))
    good = metrics.box_mask(image.shape, (0, 0), (4, 4))
    with pytest.raises(ValueError, match="empty"):
        fn(image, np.zeros(image.shape, dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        fn(image, good.astype(np.uint8))
    with pytest.raises(ValueError, match="boolean"):
        fn(image, good.tolist())
    with pytest.raises(ValueError, match="shape"):
        fn(image, good[:, :7])
    bad = image.copy()
    bad[6, 6] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(bad, good)
    with pytest.raises(ValueError, match="2-D"):
        fn(image[None], good[None])


def test_cnr_checks_both_masks() -> None:
    image = _rng_image((8, 8))
    good = metrics.box_mask(image.shape, (0, 0), (4, 4))
    with pytest.raises(ValueError, match="background is empty"):
        metrics.cnr(image, good, np.zeros(image.shape, dtype=bool))
    with pytest.raises(ValueError, match="background shape"):
        metrics.gcnr(image, good, good[:7])


# --- no-reference metrics for real frames -------------------------------------------------------


def _speckled_step(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = 0.4 + 0.08 * rng.standard_normal((80, 80))
    y[:, 40:] += 0.3
    return np.clip(y, 0, 1)


def test_no_reference_metrics_of_the_identity():
    y = _speckled_step()
    mask = np.ones(y.shape, bool)
    assert metrics.speckle_suppression(y, y, mask) == pytest.approx(1.0)
    assert metrics.structure_leakage(y, y, mask) == 0.0
    assert metrics.brightness_bias(y, y, mask) == 0.0
    stack = np.stack([y, _speckled_step(1)])
    assert metrics.temporal_stability(stack, stack, mask) == pytest.approx(1.0)


def test_no_reference_metrics_tell_despeckling_from_blurring():
    """A box filter smooths speckle (suppression > 2) but also removes the edge: its residual
    follows the anatomy. Subtracting the true speckle leaves a residual unrelated to it."""
    from scipy.ndimage import uniform_filter

    clean = np.full((80, 80), 0.4)
    clean[:, 40:] += 0.3
    y = _speckled_step()
    mask = np.ones(y.shape, bool)
    box = uniform_filter(y, 7, mode="reflect")
    assert metrics.speckle_suppression(y, box, mask) > 2.0
    assert metrics.structure_leakage(y, box, mask) > 0.3
    assert abs(metrics.structure_leakage(y, clean, mask)) < 0.15
    assert metrics.brightness_bias(y, y + 0.05, mask) == pytest.approx(0.05)
    frames = np.stack([y, _speckled_step(1), _speckled_step(2)])
    still = np.repeat(clean[None], 3, axis=0)
    assert metrics.temporal_stability(frames, still, mask) == 0.0


def _tissue_with_edges_in_the_bright(law: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy): dark background, flat mid and bright blocks, and bright striped tissue (the
    edges sit in bright tissue, as on real frames); white noise of std 0.05 (m / 0.5)^law."""
    clean = np.full((120, 120), 0.15)
    clean[:40, 60:] = 0.75
    clean[40:80, 60:] = 0.4
    stripes = np.where((np.arange(60) // 5) % 2 == 0, 0.5, 0.8)
    clean[80:, :] = stripes[None, np.arange(120) % 60]
    noise = 0.05 * (clean / 0.5) ** law * np.random.default_rng(seed).standard_normal(clean.shape)
    return clean, clean + noise


@pytest.mark.parametrize("law", [0.0, 0.5])
def test_noise_law_leakage_scores_a_perfect_despeckler_zero_whatever_the_law(law):
    """The true image as output: about 0 with a constant noise std and with the sqrt law, where
    structure_leakage reads the law as structure; a 5 px box filter removes edges: high in both."""
    from scipy.ndimage import uniform_filter

    mask = np.ones((120, 120), bool)
    for seed in range(3):
        clean, y = _tissue_with_edges_in_the_bright(law, seed)
        assert abs(metrics.noise_law_leakage(y, clean, mask)) < 0.1
        assert metrics.noise_law_leakage(y, uniform_filter(y, 5), mask) > 0.5
        if law:
            assert metrics.structure_leakage(y, clean, mask) > 0.25
        else:
            assert abs(metrics.structure_leakage(y, clean, mask)) < 0.1


def test_noise_law_leakage_without_a_readable_law():
    """Identity: 0. A noise-free input whose edges are blurred (no residual in flat tissue) still
    leaks. One brightness span below NOISE_LAW_MIN_SPAN: the plain structure_leakage."""
    from scipy.ndimage import uniform_filter

    mask = np.ones((120, 120), bool)
    clean, y = _tissue_with_edges_in_the_bright(0.5, 0)
    assert metrics.noise_law_leakage(y, y, mask) == 0.0
    assert metrics.noise_law_leakage(y, y - 0.01, mask) == 0.0 == metrics.structure_leakage(y, y - 0.01, mask)  # an offset
    assert metrics.noise_law_leakage(clean, uniform_filter(clean, 5), mask) > 0.5
    step = _speckled_step()
    box = uniform_filter(step, 7)
    square = np.ones(step.shape, bool)
    assert metrics.noise_law_leakage(step, box, square) == pytest.approx(metrics.structure_leakage(step, box, square))
    with pytest.raises(ValueError, match="fraction"):
        metrics.noise_law_leakage(step, box, square, fraction=0.0)
    with pytest.raises(ValueError, match="mask is empty"):
        metrics.noise_law_leakage(step, box, np.zeros(step.shape, bool))


def test_no_reference_scores_are_the_four_metrics():
    from scipy.ndimage import uniform_filter

    y = _speckled_step()
    box, mask = uniform_filter(y, 7), np.ones(y.shape, bool)
    assert metrics.no_reference_scores(y, box, mask) == {
        "suppression": metrics.speckle_suppression(y, box, mask), "leakage": metrics.structure_leakage(y, box, mask),
        "leakage_law": metrics.noise_law_leakage(y, box, mask), "bias": metrics.brightness_bias(y, box, mask)}


def test_no_reference_metrics_refuse_bad_masks():
    y = _speckled_step()
    with pytest.raises(ValueError, match="mask is empty"):
        metrics.speckle_suppression(y, y, np.zeros(y.shape, bool))
    with pytest.raises(ValueError, match="no 11x11 window"):
        tiny = np.zeros(y.shape, bool)
        tiny[:5, :5] = True
        metrics.speckle_suppression(y, y, tiny)
    with pytest.raises(ValueError, match="two stacks"):
        metrics.temporal_stability(y, y, np.ones(y.shape, bool))
