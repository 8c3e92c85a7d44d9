"""Training pairs that look like scanners: randomised physics and real frames labelled by a teacher.

Two sources, mixed by the training script (``experiments/train_amortized.py --data scanner``):

* :func:`randomized_pairs`: anatomy (H, W) in [0, 1] (sagittal MRI, natural images, phantoms,
  flat images) through :func:`usprior.physics.randomized.random_bmode_pair`, a new pulse, grain,
  dynamic range, display, sector and JPEG per image, or through pymust's plane waves
  (:func:`usprior.physics.randomized.random_planewave_pair`); the target is the speckle-free
  image in the same display.
* :func:`simulator_pairs`: one fixed simulator setting (a :data:`usprior.physics.simulate.Corrupt`
  at given levels, e.g. the benchmark's convolutional speckle), so a scanner model keeps what a
  specialist of that setting learnt;
* :func:`distilled_pairs`: real B-mode frames, the target is a slow teacher's output inside the
  frame's B-mode mask (:func:`usprior.scanner.denoise.denoise_scan`: outside it, the input
  itself), the *real-frame distillation* of the universal-framework paper. Patches are centred
  inside the mask.

The noise level of a sample is :func:`usprior.physics.noise.estimate_speckle_std` of its whole
noisy image (for real frames: of the mask's bounding box, what the denoiser is given): the same
reading FFDNet's default noise map takes at inference, so the map means the same in training
and use, and a user's ``sigma`` in the same std units still wins.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Sequence
from typing import Any

import numpy as np

from usprior.amortized.training import PairBatch, clean_teacher, cut_windows, make_pairs, random_windows
from usprior.physics.noise import MIN_NOISE_STD, estimate_speckle_std
from usprior.physics.randomized import PhysicsRanges, PlaneWaveRanges, random_bmode_pair, random_planewave_pair
from usprior.physics.simulate import Corrupt
from usprior.validation import as_float_image, check_int, check_unit


def _simulate(args: tuple[np.ndarray, int, Any, int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    clean, seed, ranges, patch, count = args
    rng = np.random.default_rng(seed)
    draw = random_planewave_pair if isinstance(ranges, PlaneWaveRanges) else random_bmode_pair
    pair = draw(clean, rng, ranges)
    level = estimate_speckle_std(pair.noisy)
    y, t = cut_windows(pair.noisy, pair.target, random_windows(*pair.noisy.shape, patch, count, rng), patch)
    return y, t, level


def randomized_pairs(
    clean_images: Sequence[np.ndarray],
    patch: int = 64,
    patches_per_image: int = 16,
    seed: int = 0,
    ranges: PhysicsRanges | PlaneWaveRanges = PhysicsRanges(),
    workers: int = 1,
) -> PairBatch:
    """One random B-mode simulation per clean image (H, W) >= ``patch``, cut into
    ``patches_per_image`` aligned (patch, patch) windows: N = len(clean_images) patches_per_image.

    ``ranges`` picks the simulator: :class:`~usprior.physics.randomized.PhysicsRanges`, the
    convolutional :func:`~usprior.physics.randomized.random_bmode_pair` (~1 s per 233x189
    image); :class:`~usprior.physics.randomized.PlaneWaveRanges`, pymust's plane waves
    (:func:`~usprior.physics.randomized.random_planewave_pair`, ~10-15 s per image, windows cut
    from its ``ranges.shape`` output). Deterministic for a ``seed`` whatever ``workers``
    (processes, spawned).
    """
    patch, count, workers = check_int(patch, "patch"), check_int(patches_per_image, "patches_per_image"), check_int(workers, "workers")
    images = [as_float_image(x, min_size=patch, name="clean image") for x in clean_images]
    if not images:
        raise ValueError("randomized_pairs needs at least one clean image")
    seeds = np.random.default_rng(seed).integers(0, 2**31, len(images))
    jobs = [(x, int(s), ranges, patch, count) for x, s in zip(images, seeds)]
    if workers == 1:
        results = list(map(_simulate, jobs))
    else:
        context = multiprocessing.get_context("spawn")  # JAX in the parent does not survive fork
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = list(pool.map(_simulate, jobs, chunksize=4))
    return _batch(results)


def simulator_pairs(
    clean_images: Sequence[np.ndarray],
    corrupt: Corrupt,
    levels: Sequence[float],
    patch: int = 64,
    patches_per_image: int = 16,
    seed: int = 0,
) -> PairBatch:
    """For every clean image (H, W) >= ``patch`` and level s: (y, t) = corrupt(x, s, seed') and
    ``patches_per_image`` aligned windows, N = len(clean_images) len(levels) patches_per_image:
    :func:`usprior.amortized.training.make_pairs` with the clean targets.

    Unlike make_pairs' default level rms(y - t), the level of a window is
    :func:`usprior.physics.noise.estimate_speckle_std` of its whole noisy image, as for
    :func:`randomized_pairs`: one noise-map unit across every source of a scanner model.
    """
    return make_pairs(clean_images, corrupt, clean_teacher, levels, patch, patches_per_image, seed,
                      level=lambda noisy, _: estimate_speckle_std(noisy))


def distilled_pairs(
    noisy_frames: Sequence[np.ndarray],
    target_frames: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    patch: int = 64,
    patches_per_image: int = 16,
    seed: int = 0,
) -> PairBatch:
    """Aligned windows of real frames (H, W) and their teacher targets (H, W), centred inside
    each frame's B-mode mask (H, W) bool; the level of every window is the noise estimate of the
    mask's bounding box in its frame."""
    patch, count = check_int(patch, "patch"), check_int(patches_per_image, "patches_per_image")
    if not (len(noisy_frames) == len(target_frames) == len(masks)) or not len(masks):
        raise ValueError("distilled_pairs needs as many (>= 1) noisy frames, targets and masks")
    rng = np.random.default_rng(seed)
    results = []
    for noisy, target, mask in zip(noisy_frames, target_frames, masks):
        noisy = as_float_image(noisy, min_size=patch, name="real frame")
        target = as_float_image(target, min_size=patch, name="teacher target")
        mask = np.asarray(mask, bool)
        if target.shape != noisy.shape or mask.shape != noisy.shape:
            raise ValueError(f"frame {noisy.shape}, target {target.shape} and mask {mask.shape} differ in shape")
        rows, cols = np.nonzero(mask)
        if not rows.size:
            raise ValueError("a mask of the real frames is empty")
        level = estimate_speckle_std(noisy[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
        y, t = cut_windows(noisy, target, random_windows(*noisy.shape, patch, count, rng, mask), patch)
        results.append((y, t, level))
    return _batch(results)


def _batch(results: list[tuple[np.ndarray, np.ndarray, float]]) -> PairBatch:
    return PairBatch(
        noisy=np.concatenate([y for y, _, _ in results])[..., None].astype(np.float32),
        target=np.concatenate([t for _, t, _ in results])[..., None].astype(np.float32),
        sigma=np.concatenate([np.full(len(y), s, np.float32) for y, _, s in results]),
    )


def flat_pairs(count: int, sigmas: np.ndarray, patch: int = 64, seed: int = 0, floor_fraction: float = 0.5) -> PairBatch:
    """``count`` noise-free constant windows (levels uniform in [0, 1]) labelled with themselves:
    a flat input has nothing to remove, whatever the noise map says, and must come out flat.

    A share ``floor_fraction`` of them is at the level FFDNet's default noise map reads on a flat
    image (:data:`usprior.physics.noise.MIN_NOISE_STD`, the estimator's floor, below every
    noisy sample's level), the rest at levels drawn from ``sigmas`` (e.g. the other samples').
    """
    count, patch = check_int(count, "count"), check_int(patch, "patch")
    floor_fraction = check_unit(floor_fraction, "floor_fraction")
    rng = np.random.default_rng(seed)
    flats = np.broadcast_to(rng.uniform(0.0, 1.0, (count, 1, 1, 1)), (count, patch, patch, 1)).astype(np.float32)
    levels = rng.choice(np.asarray(sigmas, np.float32), count)
    levels[rng.uniform(size=count) < floor_fraction] = MIN_NOISE_STD
    return PairBatch(flats, flats.copy(), levels)


def concat_pairs(*batches: PairBatch) -> PairBatch:
    """One :class:`PairBatch` holding every sample of ``batches`` in order."""
    if not batches:
        raise ValueError("concat_pairs needs at least one batch")
    return PairBatch(*(np.concatenate([getattr(b, f) for b in batches]) for f in PairBatch._fields))
