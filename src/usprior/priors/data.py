"""Training data for the patch prior: MNI152 sagittal slices, natural images, patch sampling.

Sources (all offline):

* the MNI152 T1 1 mm template shipped by nilearn, a speckle-free MRI volume of shape
  (197, 233, 189) whose first axis is sagittal (left-right). Only sagittal slices ``vol[i]``
  (233 x 189 images) are used here; axial and coronal planes are reserved for evaluation.
* natural images bundled as files with scikit-image (never the reserved evaluation images).

Sagittal splits are bands of distance ``d = |i - 98|`` from the midline. The template is
left-right symmetric, so a held-out slice's mirror is held out with it, and adjacent slices are
near-duplicates, so each held-out band is separated from the training slices by a gap of
``SPLIT_GAP`` excluded slices on both sides.

Patches are drawn by :class:`PatchSampler` (sharpness-weighted, with a few constant patches and
random flips) and mixed across sources by :class:`MixedSampler`, built by :func:`training_sampler`.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import skimage.color
import skimage.data
import skimage.io
import skimage.transform
import skimage.util

from usprior.eval.metrics import tenengrad
from usprior.validation import check_int, check_nonnegative, check_unit

MNI_SHAPE = (197, 233, 189)
MNI_MIDLINE = 98
MAX_MIDLINE_DISTANCE = 72
SPLIT_GAP = 2
HELD_OUT_BANDS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"test": (30, 40), "tune": (50, 54), "validation": (62, 66)}
)

NATURAL_IMAGE_FILES: tuple[str, ...] = (
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "grass.png",
    "gravel.png",
    "cell.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "lfw_subset.npy",
)
RESERVED_NATURAL_IMAGES: frozenset[str] = frozenset(
    {"astronaut", "brick", "camera", "coins", "moon", "page", "text"}
)
NATURAL_MAX_SIDE = 512
FACE_SIZE = 64


@functools.lru_cache(maxsize=1)
def load_mni_volume() -> np.ndarray:
    """The MNI152 T1 1 mm template as a read-only float32 array (197, 233, 189) in [0, 1].

    Axis 0 is sagittal (left-right). Loaded once from nilearn's bundled files (~4 s), then cached.
    """
    from nilearn.datasets import load_mni152_template  # slow import, only when needed

    volume = load_mni152_template(resolution=1).get_fdata().astype(np.float32)
    if volume.shape != MNI_SHAPE:
        raise RuntimeError(f"unexpected MNI152 template shape {volume.shape}, expected {MNI_SHAPE}")
    volume.setflags(write=False)
    return volume


def _midline_distances() -> np.ndarray:
    """d_i = |i - MNI_MIDLINE| for every sagittal index i of the template, shape (197,)."""
    return np.abs(np.arange(MNI_SHAPE[0]) - MNI_MIDLINE)


def _sagittal_splits() -> Mapping[str, tuple[int, ...]]:
    """Sagittal indices of each split, by midline distance d = |i - 98|.

    held-out split s with band [lo, hi):  lo <= d < hi
    train:  d <= MAX_MIDLINE_DISTANCE and d outside [lo - SPLIT_GAP, hi + SPLIT_GAP) for every band,
    i.e. d in [0, 28) u [42, 48) u [56, 60) u [68, 72].
    """
    d = _midline_distances()
    splits = {
        name: tuple(np.flatnonzero((d >= lo) & (d < hi)).tolist())
        for name, (lo, hi) in HELD_OUT_BANDS.items()
    }
    near_band = np.zeros_like(d, dtype=bool)
    for lo, hi in HELD_OUT_BANDS.values():
        near_band |= (d >= lo - SPLIT_GAP) & (d < hi + SPLIT_GAP)
    splits["train"] = tuple(np.flatnonzero((d <= MAX_MIDLINE_DISTANCE) & ~near_band).tolist())
    return MappingProxyType(splits)


SAGITTAL_SPLITS: Mapping[str, tuple[int, ...]] = _sagittal_splits()


def sagittal_slices(split: str) -> list[np.ndarray]:
    """Sagittal slices ``vol[i]`` (read-only float32 (233, 189) in [0, 1]) of ``split``.

    ``split`` is one of "train", "validation", "tune", "test"; anything else raises ValueError.
    """
    if split not in SAGITTAL_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SAGITTAL_SPLITS)}")
    volume = load_mni_volume()
    return [volume[i] for i in SAGITTAL_SPLITS[split]]


EVALUATION_PLANES: tuple[tuple[str, int], ...] = (("axial", 70), ("axial", 100), ("coronal", 90), ("coronal", 130))
"""Axial and coronal MNI152 planes for held-out evaluation (never trained or tuned on)."""


def evaluation_plane(plane: str, index: int) -> np.ndarray:
    """The axial ``vol[:, :, index]`` (233 x 197) or coronal ``vol[:, index, :]`` (189 x 197)
    MNI152 slice, rotated so the head is up; float32 in [0, 1]. These planes are reserved for
    evaluation: the prior is trained on sagittal slices only."""
    volume = load_mni_volume()
    if plane == "axial":
        return np.ascontiguousarray(np.rot90(volume[:, :, check_int(index, "index", 0, MNI_SHAPE[2] - 1)]))
    if plane == "coronal":
        return np.ascontiguousarray(np.rot90(volume[:, check_int(index, "index", 0, MNI_SHAPE[1] - 1), :]))
    raise ValueError(f"plane must be 'axial' or 'coronal', got {plane!r}")


def _check_not_reserved(names: Sequence[str]) -> None:
    """Raise ValueError if any file name's stem is a reserved evaluation image (e.g. camera.png)."""
    reserved = sorted({os.path.splitext(n)[0] for n in names} & RESERVED_NATURAL_IMAGES)
    if reserved:
        raise ValueError(f"reserved evaluation images must not be used for training: {reserved}")


def _to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) image of any dtype -> float64 gray (H, W) in [0, 1] (Rec. 709 luma)."""
    return skimage.color.rgb2gray(image) if image.ndim == 3 else skimage.util.img_as_float(image)


def _downscale(image: np.ndarray, max_side: int = NATURAL_MAX_SIDE) -> np.ndarray:
    """Shrink (H, W) by the integer factor k = ceil(max(H, W) / max_side), anti-aliased.

    Photographs resolve far finer structure per pixel than the 1 mm MRI template; shrinking
    the large ones brings 32 x 32 patch statistics (edge density, texture scale) closer to MRI.
    Images with max(H, W) <= max_side are returned unchanged (k = 1).
    """
    factor = math.ceil(max(image.shape) / max_side)
    if factor == 1:
        return image
    return skimage.transform.rescale(image, 1.0 / factor, anti_aliasing=True)


def _load_faces(path: str) -> list[np.ndarray]:
    """The LFW subset (200, 25, 25) -> 200 images (FACE_SIZE, FACE_SIZE), bicubic upsampled.

    Its 25 x 25 crops (100 faces, 100 LFW backgrounds) are smaller than a 32 x 32 patch, so
    each is upsampled to 64 x 64 (order 3; ``natural_images`` clips the overshoot to [0, 1])
    to serve as a smooth source.
    """
    faces = skimage.util.img_as_float(np.load(path))
    return list(skimage.transform.resize(faces, (len(faces), FACE_SIZE, FACE_SIZE), order=3))


def natural_images(names: Sequence[str] = NATURAL_IMAGE_FILES) -> list[np.ndarray]:
    """Bundled scikit-image natural images as 2-D float32 gray arrays in [0, 1].

    Files are read from the ``skimage/data`` package directory (never downloaded). RGB images
    are converted with ``rgb2gray``; images whose longest side exceeds NATURAL_MAX_SIDE are
    shrunk by an integer factor (see ``_downscale``); ``lfw_subset.npy`` contributes its 200
    crops as separate 64 x 64 images; the results are clipped to [0, 1]. A reserved evaluation
    name in ``names`` raises ValueError before anything is read.
    """
    _check_not_reserved(names)
    directory = os.path.dirname(skimage.data.__file__)
    images: list[np.ndarray] = []
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(".npy"):
            images.extend(_load_faces(path))
        else:
            images.append(_downscale(_to_gray(skimage.io.imread(path))))
    return [np.clip(im, 0.0, 1.0).astype(np.float32) for im in images]


def _check_images(images: Sequence[np.ndarray], patch: int) -> None:
    """Raise ValueError unless every image is 2-D, at least patch x patch, finite and in [0, 1]."""
    if len(images) == 0:
        raise ValueError("at least one image is required")
    for k, image in enumerate(images):
        if image.ndim != 2:
            raise ValueError(f"image {k} must be 2-D, got shape {image.shape}")
        if min(image.shape) < patch:
            raise ValueError(f"image {k} of shape {image.shape} is smaller than patch {patch}")
        if not np.all(np.isfinite(image)):
            raise ValueError(f"image {k} has non-finite values")
        if image.min() < 0.0 or image.max() > 1.0:
            raise ValueError(f"image {k} has values outside [0, 1]")


class PatchSampler:
    """Sharpness-weighted random patches from a set of 2-D images in [0, 1].

    ``sample(n)`` draws ``candidates * n`` positions (image k with probability proportional
    to its number of positions (H_k - p + 1)(W_k - p + 1), position uniform within it), keeps
    n of them without replacement with probability proportional to (T + 1e-8)^sharpness_power
    (T = :func:`tenengrad`), replaces each patch with probability ``uniform_fraction`` by a
    constant patch c ~ U(0, uniform_max), and flips each patch left-right and up-down with
    probability 1/2 each. All randomness comes from one ``Generator(PCG64(seed))``, so two
    samplers built from the same images and seed return identical batch sequences.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        patch: int = 32,
        uniform_fraction: float = 0.1,
        uniform_max: float = 0.5,
        candidates: int = 4,
        sharpness_power: float = 1.0,
        seed: int = 0,
    ) -> None:
        images = [np.asarray(image) for image in images]
        if patch < 3:
            raise ValueError(f"patch must be >= 3 (Tenengrad needs an interior), got {patch}")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        check_nonnegative(sharpness_power, "sharpness_power")
        check_unit(uniform_fraction, "uniform_fraction")
        check_unit(uniform_max, "uniform_max")
        _check_images(images, patch)
        self.patch = patch
        self.uniform_fraction = uniform_fraction
        self.uniform_max = uniform_max
        self.candidates = candidates
        self.sharpness_power = sharpness_power
        shapes = np.array([image.shape for image in images])  # (K, 2)
        self._widths = shapes[:, 1]
        self._offsets = np.concatenate([[0], np.cumsum(shapes.prod(axis=1))[:-1]])
        self._flat = np.concatenate([image.ravel() for image in images]).astype(np.float32)
        self._row_counts = shapes[:, 0] - patch + 1
        self._col_counts = shapes[:, 1] - patch + 1
        positions = self._row_counts * self._col_counts
        self._image_probs = positions / positions.sum()
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def _random_patches(self, m: int) -> np.ndarray:
        """m patches at uniformly random positions over all images: (m, p, p) float32.

        Pixel (a, b) of a patch at (r, c) in image k is flat[offset_k + (r + a) W_k + (c + b)].
        """
        k = self._rng.choice(len(self._image_probs), size=m, p=self._image_probs)
        rows = self._rng.integers(0, self._row_counts[k])
        cols = self._rng.integers(0, self._col_counts[k])
        a = np.arange(self.patch)
        start = self._offsets[k] + rows * self._widths[k] + cols  # (m,)
        index = start[:, None, None] + a[None, :, None] * self._widths[k][:, None, None] + a
        return self._flat[index]

    def _select_sharp(self, candidates: np.ndarray, n: int) -> np.ndarray:
        """Keep n of the (m, p, p) candidates without replacement, P ∝ (T + 1e-8)^power.

        Weights are formed in log space, w = exp(power log(T + 1e-8) - max), to avoid underflow.
        """
        log_w = self.sharpness_power * np.log(tenengrad(candidates) + 1e-8)
        w = np.exp(log_w - log_w.max())
        keep = self._rng.choice(len(candidates), size=n, replace=False, p=w / w.sum())
        return candidates[keep]

    def _add_uniform(self, patches: np.ndarray) -> np.ndarray:
        """Replace each (p, p) patch w.p. uniform_fraction by the constant c ~ U(0, uniform_max)."""
        n = len(patches)
        replace = self._rng.random(n) < self.uniform_fraction
        level = self._rng.uniform(0.0, self.uniform_max, size=n).astype(np.float32)
        return np.where(replace[:, None, None], level[:, None, None], patches)

    def _flip(self, patches: np.ndarray) -> np.ndarray:
        """Flip each (p, p) patch left-right w.p. 1/2, then up-down w.p. 1/2."""
        n = len(patches)
        lr, ud = self._rng.random((2, n)) < 0.5
        patches = np.where(lr[:, None, None], patches[:, :, ::-1], patches)
        return np.where(ud[:, None, None], patches[:, ::-1, :], patches)

    def sample(self, n: int) -> np.ndarray:
        """A batch of n patches, float32 (n, patch, patch, 1) in [0, 1] (n = 0: an empty batch)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return np.zeros((0, self.patch, self.patch, 1), np.float32)
        patches = self._select_sharp(self._random_patches(self.candidates * n), n)
        patches = self._flip(self._add_uniform(patches))
        return patches[..., None].astype(np.float32)


class MixedSampler:
    """Per-patch mixture of an MRI and an optional natural-image :class:`PatchSampler`.

    Each patch of ``sample(n)`` comes from ``natural`` with probability ``natural_fraction``
    (a Bernoulli mask from ``Generator(PCG64(seed))``) and from ``mri`` otherwise, i.e. the
    patch distribution is (1 - f) p_mri + f p_natural. ``natural`` may be None only if f = 0.
    """

    def __init__(
        self,
        mri: PatchSampler,
        natural: PatchSampler | None,
        natural_fraction: float,
        seed: int = 0,
    ) -> None:
        check_unit(natural_fraction, "natural_fraction")
        if natural is None and natural_fraction > 0.0:
            raise ValueError("natural_fraction > 0 requires a natural-image sampler")
        if natural is not None and natural.patch != mri.patch:
            raise ValueError(f"patch sizes differ: mri {mri.patch}, natural {natural.patch}")
        self.mri = mri
        self.natural = natural
        self.natural_fraction = natural_fraction
        self.patch = mri.patch
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def sample(self, n: int) -> np.ndarray:
        """A batch of n patches, float32 (n, patch, patch, 1) in [0, 1]."""
        from_natural = self._rng.random(n) < self.natural_fraction
        batch = np.empty((n, self.patch, self.patch, 1), np.float32)
        batch[~from_natural] = self.mri.sample(int(n - from_natural.sum()))
        if self.natural is not None:
            batch[from_natural] = self.natural.sample(int(from_natural.sum()))
        return batch


def training_sampler(
    split: str = "train", natural_fraction: float = 0.2, seed: int = 0, **kwargs: float
) -> MixedSampler:
    """Patch sampler over the MRI sagittal slices of ``split``, mixed with natural images.

    For split "train" a fraction ``natural_fraction`` of the patches (in expectation) comes
    from :func:`natural_images`; for "validation", "tune" and "test" only MRI slices are used
    and ``natural_fraction`` is ignored. ``kwargs`` (patch, uniform_fraction, uniform_max,
    candidates, sharpness_power) go to both :class:`PatchSampler` s. The three generators
    are seeded with independent streams derived from ``SeedSequence(seed)``.
    """
    mri_seed, natural_seed, mix_seed = map(int, np.random.SeedSequence(seed).generate_state(3))
    mri = PatchSampler(sagittal_slices(split), seed=mri_seed, **kwargs)
    if split != "train":
        return MixedSampler(mri, None, 0.0, seed=mix_seed)
    natural = PatchSampler(natural_images(), seed=natural_seed, **kwargs)
    return MixedSampler(mri, natural, natural_fraction, seed=mix_seed)
