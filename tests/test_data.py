"""Tests for usprior.priors.data: sagittal splits, natural images, Tenengrad and patch samplers."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import scipy.ndimage
import skimage.io

from usprior.eval.metrics import tenengrad
from usprior.priors import data

HELD_OUT = ("test", "tune", "validation")


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return data.load_mni_volume()


@pytest.fixture(scope="module")
def natural() -> tuple[list[np.ndarray], list[str]]:
    """The natural images and the base names of every file read through skimage.io.imread."""
    loaded: list[str] = []
    imread = skimage.io.imread

    def spy(path: str, *args, **kwargs) -> np.ndarray:
        loaded.append(os.path.basename(path))
        return imread(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(skimage.io, "imread", spy)
        images = data.natural_images()
    return images, loaded


def _rng_image(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# --- MNI volume and sagittal splits -------------------------------------------------------


def test_volume(volume: np.ndarray) -> None:
    assert volume.shape == (197, 233, 189)
    assert volume.dtype == np.float32
    assert volume.min() >= 0.0 and volume.max() <= 1.0
    assert not volume.flags.writeable


def test_splits_disjoint_and_within_brain() -> None:
    assert set(data.SAGITTAL_SPLITS) == {"train", *HELD_OUT}
    for a, b in itertools.combinations(data.SAGITTAL_SPLITS.values(), 2):
        assert not set(a) & set(b)
    for indices in data.SAGITTAL_SPLITS.values():
        assert len(indices) == len(set(indices)) > 0
        assert all(26 <= i <= 170 for i in indices)


def test_splits_mirror_symmetric() -> None:
    for indices in data.SAGITTAL_SPLITS.values():
        assert set(indices) == {2 * 98 - i for i in indices}


def test_split_bands_and_gaps() -> None:
    def distances(split: str) -> set[int]:
        return {abs(i - 98) for i in data.SAGITTAL_SPLITS[split]}

    assert distances("test") == set(range(30, 40))
    assert distances("tune") == set(range(50, 54))
    assert distances("validation") == set(range(62, 66))
    expected_train = [*range(0, 28), *range(42, 48), *range(56, 60), *range(68, 73)]
    assert distances("train") == set(expected_train)
    held_out = set().union(*(distances(s) for s in HELD_OUT))
    assert min(abs(a - b) for a in distances("train") for b in held_out) > 2


def test_sagittal_slices_are_sagittal(volume: np.ndarray) -> None:
    for split in ("train", *HELD_OUT):
        slices = data.sagittal_slices(split)
        assert len(slices) == len(data.SAGITTAL_SPLITS[split])
        for i, s in zip(data.SAGITTAL_SPLITS[split], slices):
            assert s.shape == (233, 189) and s.dtype == np.float32
            np.testing.assert_array_equal(s, volume[i])


def test_evaluation_planes_are_axial_and_coronal(volume: np.ndarray) -> None:
    """The evaluation planes cut the volume across the sagittal axis (no sagittal slice is one)."""
    for plane, index in data.EVALUATION_PLANES:
        image = data.evaluation_plane(plane, index)
        cut = volume[:, :, index] if plane == "axial" else volume[:, index, :]
        np.testing.assert_array_equal(image, np.rot90(cut))
        assert image.shape[1] == data.MNI_SHAPE[0] and image.dtype == np.float32
    with pytest.raises(ValueError, match="plane must be 'axial' or 'coronal'"):
        data.evaluation_plane("sagittal", 90)
    with pytest.raises(ValueError, match="index"):
        data.evaluation_plane("axial", 500)


def test_unknown_split() -> None:
    with pytest.raises(ValueError):
        data.sagittal_slices("axial")


# --- natural images -------------------------------------------------------------------------


def test_natural_images_never_reserved(natural: tuple[list[np.ndarray], list[str]]) -> None:
    _, loaded = natural
    stems = {os.path.splitext(name)[0] for name in loaded}
    assert not stems & data.RESERVED_NATURAL_IMAGES
    listed = {os.path.splitext(name)[0] for name in data.NATURAL_IMAGE_FILES}
    assert not listed & data.RESERVED_NATURAL_IMAGES
    assert len(loaded) == len(data.NATURAL_IMAGE_FILES) - 1  # all but lfw_subset.npy


@pytest.mark.parametrize("name", ["camera.png", "astronaut.png", "moon.png", "text.png"])
def test_reserved_name_raises(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        data.natural_images(["chelsea.png", name])


def test_natural_images_format(natural: tuple[list[np.ndarray], list[str]]) -> None:
    images, _ = natural
    assert len(images) == len(data.NATURAL_IMAGE_FILES) - 1 + 200  # 200 LFW crops
    for image in images:
        assert image.ndim == 2 and image.dtype == np.float32
        assert min(image.shape) >= 32 and max(image.shape) <= 512
        assert image.min() >= 0.0 and image.max() <= 1.0


# --- Tenengrad -----------------------------------------------------------------------------


def test_tenengrad_constant_is_zero() -> None:
    np.testing.assert_array_equal(tenengrad(np.full((3, 32, 32), 0.7)), np.zeros(3))


def test_tenengrad_matches_scipy_sobel() -> None:
    patches = np.random.default_rng(0).random((2, 16, 16))
    gx = np.stack([scipy.ndimage.sobel(p, axis=1)[1:-1, 1:-1] for p in patches])
    gy = np.stack([scipy.ndimage.sobel(p, axis=0)[1:-1, 1:-1] for p in patches])
    expected = np.sum(gx**2 + gy**2, axis=(1, 2))
    np.testing.assert_allclose(tenengrad(patches), expected, rtol=1e-12)


def test_tenengrad_prefers_sharp_edges() -> None:
    step = np.zeros((32, 32))
    step[:, 16:] = 1.0
    blurred = scipy.ndimage.gaussian_filter(step, sigma=2.0, mode="nearest")
    sharp_t, blurred_t = tenengrad(np.stack([step, blurred]))
    assert sharp_t > 2 * blurred_t > 0


# --- PatchSampler --------------------------------------------------------------------------


def test_sampler_shape_dtype_range() -> None:
    sampler = data.PatchSampler([_rng_image((40, 50)), _rng_image((64, 33), 1)], seed=3)
    batch = sampler.sample(17)
    assert batch.shape == (17, 32, 32, 1) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    assert sampler.sample(0).shape == (0, 32, 32, 1)


def test_sampler_patches_come_from_images() -> None:
    image = _rng_image((40, 45))
    sampler = data.PatchSampler([image], patch=8, uniform_fraction=0.0, seed=0)
    views = np.lib.stride_tricks.sliding_window_view(image, (8, 8)).reshape(-1, 8, 8)
    variants = np.concatenate([views, views[:, ::-1], views[:, :, ::-1], views[:, ::-1, ::-1]])
    for patch in sampler.sample(20)[..., 0]:
        assert np.any(np.all(variants == patch, axis=(1, 2)))


def test_sampler_deterministic() -> None:
    images = [_rng_image((64, 64)), _rng_image((48, 80), 1)]
    a, b, c = (data.PatchSampler(images, seed=s) for s in (5, 5, 6))
    for _ in range(2):
        batch_a, batch_b, batch_c = a.sample(8), b.sample(8), c.sample(8)
        np.testing.assert_array_equal(batch_a, batch_b)
        assert not np.array_equal(batch_a, batch_c)


def test_sampler_selects_sharp_patches(volume: np.ndarray) -> None:
    slices = data.sagittal_slices("train")[::8]

    def mean_tenengrad(candidates: int) -> float:
        sampler = data.PatchSampler(slices, uniform_fraction=0.0, candidates=candidates, seed=0)
        return float(tenengrad(sampler.sample(500)[..., 0]).mean())

    assert mean_tenengrad(4) > 1.5 * mean_tenengrad(1)  # candidates=1: uniform positions


def test_sampler_uniform_fraction() -> None:
    sampler = data.PatchSampler(
        [_rng_image((40, 40))], patch=8, uniform_fraction=0.3, uniform_max=0.5, seed=0
    )
    batch = sampler.sample(4000)[..., 0]
    constant = np.ptp(batch, axis=(1, 2)) == 0.0
    assert abs(constant.mean() - 0.3) < 0.03
    levels = batch[constant, 0, 0]
    assert levels.min() >= 0.0 and levels.max() < 0.5


@pytest.mark.parametrize(
    ("images", "kwargs"),
    [
        ([np.zeros((40, 40, 3))], {}),  # not 2-D
        ([np.zeros((31, 64))], {}),  # smaller than the patch
        ([np.where(np.eye(40) > 0, np.nan, 0.5)], {}),  # non-finite
        ([np.full((40, 40), 1.5)], {}),  # outside [0, 1]
        ([], {}),  # no images
        ([np.zeros((40, 40))], {"uniform_fraction": 1.1}),
        ([np.zeros((40, 40))], {"uniform_fraction": -0.1}),
        ([np.zeros((40, 40))], {"uniform_max": 2.0}),
        ([np.zeros((40, 40))], {"candidates": 0}),
    ],
)
def test_sampler_rejects_bad_inputs(images: list[np.ndarray], kwargs: dict) -> None:
    with pytest.raises(ValueError):
        data.PatchSampler(images, **kwargs)


# --- MixedSampler / training_sampler -------------------------------------------------------


def test_mixed_sampler_fraction() -> None:
    dark = data.PatchSampler([0.4 * _rng_image((64, 64))], uniform_fraction=0.0, seed=1)
    bright = data.PatchSampler([0.6 + 0.4 * _rng_image((64, 64))], uniform_fraction=0.0, seed=2)
    batch = data.MixedSampler(dark, bright, natural_fraction=0.25, seed=0).sample(2000)
    assert batch.shape == (2000, 32, 32, 1)
    assert abs((batch.mean(axis=(1, 2, 3)) > 0.5).mean() - 0.25) < 0.03
    with pytest.raises(ValueError):
        data.MixedSampler(dark, None, natural_fraction=0.2)
    with pytest.raises(ValueError):
        data.MixedSampler(dark, bright, natural_fraction=1.5)


def test_training_sampler(volume: np.ndarray) -> None:
    a, b = data.training_sampler("train", seed=0), data.training_sampler("train", seed=0)
    batch = a.sample(64)
    assert batch.shape == (64, 32, 32, 1) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    np.testing.assert_array_equal(batch, b.sample(64))
    validation = data.training_sampler("validation", seed=0)
    assert validation.natural is None
    assert validation.sample(8).shape == (8, 32, 32, 1)
    with pytest.raises(ValueError):
        data.training_sampler("coronal")
