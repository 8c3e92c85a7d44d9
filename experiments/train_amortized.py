"""Train an amortised denoiser (FFDNet, Pix2Pix or unrolled MAP) to imitate a teacher on simulated ultrasound.

Data: clean images are sagittal MNI152 slices of the 'train' band (validation: the
'validation' band); noisy images come from a ``usprior.physics.simulate.NOISE_MODELS`` model at the
given levels; targets come from the chosen teacher (``--teacher``):

* ``clean``: the simulated pair's speckle-free target (supervised training);
* ``map``: the flow-prior MAP denoiser, ``usprior.denoise(y, sigma=s, lam=--lam)``;
* ``wnnm`` / ``bm3d``: the baselines with sigma = ``--teacher-scale`` x the noise std s.

``--data scanner`` replaces the one simulator by what real scanners look like
(:mod:`usprior.amortized.scanner_pairs`): randomised B-mode physics on sagittal 'train' slices,
the training natural images, cyst phantoms and flat images (clean targets), mixed with real
frames of the training pool (docs/real_data.md: SonoSite frames 36-112, EPIQ, ALOKA, Philips
OB) labelled by ``--real-teacher`` inside their B-mode masks (``--real-repeat`` copies, so the
few real frames make about a third of every minibatch); validation: the same physics on
the 'validation' slices plus SonoSite frames 116 and 119 (training pool, never trained on).
``--mix-simulator`` adds the ``--noise`` simulator at ``--levels`` on the same 'train' /
'validation' slices (the pairs a ``--data simulator`` specialist learns from), labelled with the
speckle estimate like the rest, so the scanner model keeps that setting's quality.
``--planewave N`` adds N plane-wave acquisitions (pymust,
:func:`usprior.physics.randomized.random_planewave_pair`) of randomly chosen training anatomy,
and N / 8 (at least 2) of validation slices, cached in ``--planewave-cache FILE.npz``.
``--cache FILE.npz`` keeps those pairs for the next model. ``--flat-fraction`` adds noise-free
constant windows labelled with themselves at the other windows' noise levels (flat in, flat out).
``--init CKPT`` starts FFDNet (or the Pix2Pix generator; the discriminator starts afresh) from a
saved model of the same architecture instead of random weights: fine-tuning, with a fresh
optimiser (``--lr``).

Swapping the teacher is the one ``teacher=`` argument of ``make_pairs`` (see TEACHERS).
FFDNet is first pretrained on bundled natural images with Gaussian noise (``--pretrain-steps``),
then fine-tuned on the ultrasound pairs (transfer), as the FFDNet ultrasound paper does.
Unrolled MAP learns its step sizes and lambdas on patches of the prior's size; its likelihood
is ``--likelihood`` with sigma = ``--sigma-scale`` x the noise std of each sample, and every
minibatch holds patches of one noisy image (one likelihood per batch).
Validation PSNR against the teacher's targets every ``--eval-every`` steps drives early
stopping; the best variables are saved with orbax (``usprior.amortized.save_model``) together
with the command, device, time and validation scores. A JSON-lines log goes to ``--workdir``.

    python experiments/train_amortized.py ffdnet --teacher clean --out src/usprior/checkpoints/ffdnet_us
    python experiments/train_amortized.py pix2pix --teacher map --lam 6 --out runs/pix2pix_map
    python experiments/train_amortized.py unrolled --teacher clean --out src/usprior/checkpoints/unrolled_us
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
import scipy.ndimage as ndi
from tqdm.auto import tqdm

import usprior
from usprior import baselines
from usprior.priors import data
from usprior.physics import simulate
from usprior.physics.randomized import PhysicsRanges, PlaneWaveRanges
from usprior.amortized import (
    EarlyStopping,
    FFDNetConfig,
    PairBatch,
    PatchGANConfig,
    UNetConfig,
    clean_teacher,
    create_ffdnet_state,
    create_pix2pix_states,
    evaluate,
    ffdnet_apply,
    ffdnet_train_step,
    make_pairs,
    pix2pix_apply,
    pix2pix_train_step,
    load_model,
    save_model,
)
from usprior.amortized.pix2pix import LAMBDA_L1
from usprior.amortized.training import FFDNET_LOSSES
from usprior.amortized.scanner_pairs import concat_pairs, distilled_pairs, flat_pairs, randomized_pairs, simulator_pairs
from usprior.io.examples import example_path
from usprior.io.scans import read_scan
from usprior.physics.phantoms import cyst_phantom, Lesion
from usprior.scanner.denoise import denoise_scan
from usprior.scanner.mask import bmode_mask, gray_pixels
from usprior.solvers.unrolled import UnrolledConfig, create_unrolled_state, patch_start, unrolled_patches, unrolled_train_step
from usprior.api import denoise
from usprior.eval.benchmark import device_name
from usprior.priors.flow import DEFAULT_PRIOR, load_prior
from usprior.physics.likelihoods import LIKELIHOODS, make_likelihood


def teachers(args: argparse.Namespace) -> dict[str, Any]:
    """The selectable teachers: name -> ``teacher(noisy, noise_std) -> target`` (or the clean marker)."""
    return {
        "clean": clean_teacher,
        "map": lambda y, s: denoise(y, method="map_latent", sigma=s, lam=args.lam),
        "wnnm": lambda y, s: baselines.wnnm(y, sigma=args.teacher_scale * s),
        "bm3d": lambda y, s: baselines.bm3d(y, sigma=args.teacher_scale * s),
    }


REAL_TRAIN = {"sonosite_cine": range(36, 113, 4), "epiq": [0], "aloka": [0], "philips_ob": [0]}
REAL_VAL = {"sonosite_cine": [116, 119]}
"""Real frames (example name: frame indices) of the training pool (docs/real_data.md)."""


def anatomy(split: str, seed: int, max_images: int | None) -> list[np.ndarray]:
    """Clean images for the randomised physics: sagittal slices of ``split`` (train: 3 draws
    each), and for training also 160x160 crops of the training natural images, cyst phantoms
    with random contrasts and flat images."""
    rng = np.random.default_rng(seed)
    slices = data.sagittal_slices(split)[:max_images]
    if split != "train":
        return slices * 2
    out = slices * 3
    for image in data.natural_images():
        if min(image.shape) >= 160:
            for _ in range(3):
                r, c = rng.integers(0, image.shape[0] - 159), rng.integers(0, image.shape[1] - 159)
                out.append(image[r : r + 160, c : c + 160])
    for _ in range(24):
        lesions = {f"l{i}": Lesion(float(rng.uniform(0, 1)), (float(rng.uniform(0.25, 0.75)), col), float(rng.uniform(0.05, 0.12)))
                   for i, col in enumerate((0.2, 0.5, 0.8))}
        out.append(cyst_phantom((160, 160), background=float(rng.uniform(0.2, 0.8)), lesions=lesions).image)
    out += [np.full((128, 128), v, np.float32) for v in rng.uniform(0.05, 0.95, 24)]
    return out[: None if max_images is None else 4 * max_images]


def real_pairs(frames: dict, teacher: str, patch: int, count: int, seed: int) -> Any:
    """Distilled pairs of the given real frames, labelled by the registered denoiser ``teacher``
    (its defaults) inside each frame's B-mode mask."""
    den = usprior.make_denoiser(teacher)
    noisy, targets, masks = [], [], []
    for name, indices in frames.items():
        scan = read_scan(example_path(name))
        mask = bmode_mask(scan)
        gray = gray_pixels(scan)
        for t in indices:
            one = scan.take(slice(t, t + 1))
            noisy.append(one.frames[0])
            targets.append(denoise_scan(one, den, mask).frames[0])
            masks.append(mask & gray[t])
    return distilled_pairs(noisy, targets, masks, patch=patch, patches_per_image=count, seed=seed)


def save_pairs(path: Path, pairs: PairBatch, val: PairBatch, **tags: Any) -> None:
    """Training and validation pairs, and scalar ``tags`` describing them, in one .npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **pairs._asdict(), **{f"val_{k}": v for k, v in val._asdict().items()}, **tags)


def load_pairs(path: Path) -> tuple[PairBatch, PairBatch, dict[str, np.ndarray]]:
    """(train, validation, tags) of a :func:`save_pairs` file."""
    fields = set(PairBatch._fields) | {f"val_{k}" for k in PairBatch._fields}
    with np.load(path) as f:
        train = PairBatch(*(f[k] for k in PairBatch._fields))
        val = PairBatch(*(f[f"val_{k}"] for k in PairBatch._fields))
        return train, val, {k: f[k] for k in f.files if k not in fields}


def scanner_key(args: argparse.Namespace) -> dict[str, Any]:
    """Every option that shapes the cached scanner pairs (``--flat-fraction`` is added after the cache)."""
    key = {k: getattr(args, k) for k in ("mix_simulator", "real_teacher", "real_patches", "real_repeat", "patch",
                                         "patches_per_image", "seed", "max_images")}
    key["grain"] = list(args.grain)
    if args.mix_simulator:
        key |= {"noise": args.noise, "levels": list(args.levels)}
    return key


def scanner_data(args: argparse.Namespace) -> tuple[PairBatch, PairBatch]:
    """(train, validation) pairs of ``--data scanner`` (see the module docstring), cached in ``--cache``
    with :func:`scanner_key`; a cache made with other options is refused."""
    key = scanner_key(args)
    if args.cache is not None and args.cache.is_file():
        pairs, val, tags = load_pairs(args.cache)
        made = json.loads(str(tags["key"])) if "key" in tags else None
        if made != key:
            sys.exit(f"--cache {args.cache} was made with other data options ({made}; these: {key}): "
                     "name a new cache file or delete that one")
        return with_flats(pairs, args), val
    kw = dict(patch=args.patch, patches_per_image=args.patches_per_image)
    ranges = PhysicsRanges(grain_px=tuple(args.grain))
    sim = randomized_pairs(anatomy("train", args.seed, args.max_images), seed=args.seed, workers=args.workers, ranges=ranges, **kw)
    sim_val = randomized_pairs(anatomy("validation", args.seed + 1, args.max_images), seed=args.seed + 1,
                               workers=args.workers, ranges=ranges, **kw)
    real_train = {k: list(v)[: args.max_images] for k, v in REAL_TRAIN.items()}
    real = real_pairs(real_train, args.real_teacher, args.patch, args.real_patches, args.seed)
    real_val = real_pairs(REAL_VAL, args.real_teacher, args.patch, args.real_patches, args.seed + 1)
    pairs, val = concat_pairs(sim, *[real] * args.real_repeat), concat_pairs(sim_val, real_val)
    if args.mix_simulator:
        corrupt = simulate.NOISE_MODELS[args.noise].corrupt
        pairs = concat_pairs(pairs, simulator_pairs(data.sagittal_slices("train")[: args.max_images], corrupt, args.levels, seed=args.seed, **kw))
        val = concat_pairs(val, simulator_pairs(data.sagittal_slices("validation")[: args.max_images], corrupt, args.levels,
                                                seed=args.seed + 1, **kw))
    if args.cache is not None:
        save_pairs(args.cache, pairs, val, key=json.dumps(key))
    return with_flats(pairs, args), val


def planewave_data(args: argparse.Namespace) -> tuple[PairBatch, PairBatch]:
    """(train, validation) plane-wave pairs of ``--planewave``, cached in ``--planewave-cache``."""
    cache = args.planewave_cache
    if cache is not None and cache.is_file():
        pairs, val, tags = load_pairs(cache)
        if int(tags["count"]) != args.planewave:
            sys.exit(f"--planewave-cache {cache} holds {int(tags['count'])} acquisitions, not --planewave {args.planewave}")
        return pairs, val
    rng = np.random.default_rng(args.seed + 2)
    pool = anatomy("train", args.seed, args.max_images)
    chosen = [pool[i] for i in rng.choice(len(pool), args.planewave, replace=False)]
    val_images = data.sagittal_slices("validation")[: max(2, args.planewave // 8)]
    kw = dict(patch=args.patch, patches_per_image=args.patches_per_image, ranges=PlaneWaveRanges(), workers=args.workers)
    pairs = randomized_pairs(chosen, seed=args.seed + 2, **kw)
    val = randomized_pairs(val_images, seed=args.seed + 3, **kw)
    if cache is not None:
        save_pairs(cache, pairs, val, count=args.planewave)
    return pairs, val


def with_flats(pairs: PairBatch, args: argparse.Namespace) -> PairBatch:
    """``pairs`` and ``--flat-fraction`` of as many noise-free constant windows at their noise levels."""
    count = round(args.flat_fraction * len(pairs.noisy))
    return concat_pairs(pairs, flat_pairs(count, pairs.sigma, args.patch, args.seed)) if count else pairs


def minibatch(pairs: PairBatch, rng: np.random.Generator, size: int, same_sigma: bool = False) -> PairBatch:
    """``size`` random samples, each flipped left-right with probability 1/2 (speckle is not
    symmetric in depth, so no up-down flips). ``same_sigma``: all drawn from the samples that
    share the noise level of one random sample (the patches of one noisy image)."""
    pool = np.arange(len(pairs.noisy))
    if same_sigma:
        pool = pool[pairs.sigma == pairs.sigma[rng.integers(len(pool))]]
    idx = pool[rng.integers(0, len(pool), size)]
    flip = rng.random(size) < 0.5
    pick = lambda a: np.where(flip[:, None, None, None], a[idx][:, :, ::-1], a[idx])
    return PairBatch(pick(pairs.noisy), pick(pairs.target), pairs.sigma[idx])


def with_overlays(batch: PairBatch, fraction: float, rng: np.random.Generator) -> PairBatch:
    """``batch`` with colour-Doppler-like blobs pasted into a ``fraction`` of its samples, the same
    values in the noisy window and its target: the network learns to leave such overlays (and
    the speckle next to them) as it treats everything else. Blobs: a smoothed random field
    above its 85-97th percentile; luminance a base level of 0.3-0.9 plus 0.3 x a smooth unit-std
    field, clipped to [0, 1]."""
    noisy, target = batch.noisy.copy(), batch.target.copy()
    shape = noisy.shape[1:3]
    for i in np.flatnonzero(rng.random(len(noisy)) < fraction):
        field = ndi.gaussian_filter(rng.standard_normal(shape), rng.uniform(2.0, 5.0))
        blob = field > np.quantile(field, rng.uniform(0.85, 0.97))
        shade = ndi.gaussian_filter(rng.standard_normal(shape), 4.0)
        value = np.clip(rng.uniform(0.3, 0.9) + 0.3 * shade / (shade.std() + 1e-9), 0.0, 1.0).astype(np.float32)
        noisy[i, blob, 0] = value[blob]
        target[i, blob, 0] = value[blob]
    return PairBatch(noisy, target, batch.sigma)


def train(
    step_fn: Callable[[PairBatch, int], dict[str, float]],
    predict: Callable[[], Callable],
    variables: Callable[[], Any],
    pairs: PairBatch,
    val: PairBatch,
    args: argparse.Namespace,
    steps: int,
    stage: str,
    log: Any,
) -> EarlyStopping:
    """Run ``steps`` minibatch updates with validation every ``--eval-every`` and early stopping
    on the validation score of the training loss (:data:`SCORES`)."""
    score_name = validation_loss(args)
    rng = np.random.default_rng(args.seed)
    stopper = EarlyStopping(patience=args.patience)
    unrolled = args.model == "unrolled"
    bar = tqdm(range(steps), desc=stage)
    for step in bar:
        batch = minibatch(pairs, rng, args.batch, same_sigma=unrolled)
        if args.overlay_fraction:
            batch = with_overlays(batch, args.overlay_fraction, rng)
        losses = step_fn(batch, step)
        if (step + 1) % args.eval_every == 0 or step + 1 == steps:
            # unrolled: one likelihood per call, so validate one noisy image's patches at a time
            chunk, predictor = args.patches_per_image if unrolled else 64, predict()
            score = evaluate(predictor, val, batch=chunk, loss=score_name)
            record = {"stage": stage, "step": step + 1, f"val_{SCORES[score_name]}": score, **losses}
            if score_name != "mse":  # the PSNR too, to compare with runs trained on the MSE
                record["val_psnr"] = evaluate(predictor, val, batch=chunk)
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.set_postfix({f"val_{SCORES[score_name]}": f"{score:.2f}"})
            if stopper.update(score, variables()):
                break
    return stopper


SCORES = {"mse": "psnr", "noise_weighted": "noise_removed_db"}
"""Name of the validation score, by the loss :func:`evaluate` scores it with."""


def validation_loss(args: argparse.Namespace) -> str:
    """The loss whose score early stopping follows: FFDNet's ``--loss`` if noise-weighted, else the PSNR's."""
    return "noise_weighted" if args.model == "ffdnet" and args.loss == "noise_weighted" else "mse"


def initial_model(args: argparse.Namespace, config: Any, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The variables of the ``--init`` model, which must be a ``args.model`` of architecture ``config``."""
    start = load_model(args.init, kind=args.model)
    if start.config != config:
        parser.error(f"--init {args.init} has the architecture {start.config}, not {config}")
    return start.variables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["ffdnet", "pix2pix", "unrolled"])
    parser.add_argument("--teacher", default="clean", choices=["clean", "map", "wnnm", "bm3d"])
    parser.add_argument("--lam", type=float, default=6.0, help="MAP teacher's lambda")
    parser.add_argument("--teacher-scale", type=float, default=4.0, help="WNNM / BM3D sigma in noise stds")
    parser.add_argument("--data", default="simulator", choices=["simulator", "scanner"],
                        help="simulator: --noise at --levels on MRI; scanner: randomised physics + real frames")
    parser.add_argument("--real-teacher", default="bm3d", help="scanner data: the denoiser labelling real frames")
    parser.add_argument("--real-patches", type=int, default=48, help="scanner data: windows per real frame")
    parser.add_argument("--real-repeat", type=int, default=3, help="scanner data: copies of the real windows "
                        "in the training set (their share of the minibatches)")
    parser.add_argument("--flat-fraction", type=float, default=0.05, help="scanner data: noise-free constant "
                        "windows added, as a fraction of the windows (not cached)")
    parser.add_argument("--grain", type=float, nargs=2, default=list(PhysicsRanges().grain_px), metavar=("LOW", "HIGH"),
                        help="scanner data: speckle grain range in px (PhysicsRanges.grain_px)")
    parser.add_argument("--workers", type=int, default=2, help="scanner data: simulation processes")
    parser.add_argument("--mix-simulator", action="store_true", help="scanner data: add the --noise simulator at --levels "
                        "on the same slices (the specialist's pairs)")
    parser.add_argument("--planewave", type=int, default=0, help="scanner data: plane-wave (pymust) acquisitions added")
    parser.add_argument("--planewave-cache", type=Path, default=None, help="scanner data: .npz of the plane-wave pairs")
    parser.add_argument("--init", type=Path, default=None, help="FFDNet / Pix2Pix: start from this saved model's weights")
    parser.add_argument("--cache", type=Path, default=None, help="scanner data: .npz of the pairs (reused if present)")
    parser.add_argument("--noise", default="convolutional", choices=sorted(simulate.NOISE_MODELS))
    parser.add_argument("--levels", type=float, nargs="+", default=[40.0, 50.0, 60.0])
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--depth", type=int, default=None, help="FFDNet conv layers / U-Net levels")
    parser.add_argument("--unroll", type=int, default=UnrolledConfig.steps, help="unrolled: number of steps K")
    parser.add_argument("--init-lam", type=float, default=UnrolledConfig.init_lam, help="unrolled: every step's initial lambda")
    parser.add_argument("--likelihood", default="gaussian", choices=sorted(LIKELIHOODS), help="unrolled: likelihood")
    parser.add_argument("--sigma-scale", type=float, default=1.0, help="unrolled: likelihood sigma in noise stds")
    parser.add_argument("--loss", default="mse", choices=FFDNET_LOSSES, help="FFDNet: training loss "
                        "(noise_weighted: the error in units of the pair's local noise power, usprior.amortized.training)")
    parser.add_argument("--overlay-fraction", type=float, default=0.0, help="share of the training windows that get "
                        "colour-overlay-like blobs pasted into noisy and target alike (with_overlays)")
    parser.add_argument("--lambda-l1", type=float, default=LAMBDA_L1, help="Pix2Pix: weight of the L1 term of the "
                        "generator loss against the adversarial one (Isola et al.: 100)")
    parser.add_argument("--lr", type=float, default=None, help="Adam step: unrolled (on the log-parameters, default 0.03) "
                        "and FFDNet (default 1e-3)")
    parser.add_argument("--patch", type=int, default=64, help="patch size (unrolled: the prior's, 32)")
    parser.add_argument("--patches-per-image", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--pretrain-steps", type=int, default=2000, help="FFDNet only: Gaussian noise on natural images")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--max-images", type=int, default=None, help="cap the training slices (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path("runs") / args.out.name
    workdir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    model = simulate.NOISE_MODELS[args.noise]
    teacher = teachers(args)[args.teacher]
    train_images = data.sagittal_slices("train")[: args.max_images]
    val_images = data.sagittal_slices("validation")[: max(1, (args.max_images or 8) // 4)]
    prior = load_prior() if args.model == "unrolled" else None
    patch = prior.config.patch if prior is not None else args.patch
    kw = dict(patch=patch, patches_per_image=args.patches_per_image)
    if args.data == "scanner":
        if args.model == "unrolled" or args.teacher != "clean":
            parser.error("--data scanner trains ffdnet or pix2pix on clean simulated targets (--real-teacher labels the real frames)")
        if args.planewave < 0:
            parser.error("--planewave must be >= 0")
        pairs, val = scanner_data(args)
        if args.planewave:
            planewave, planewave_val = planewave_data(args)
            pairs, val = concat_pairs(pairs, planewave), concat_pairs(val, planewave_val)
    else:
        pairs = make_pairs(train_images, model.corrupt, teacher, args.levels, seed=args.seed, **kw)
        val = make_pairs(val_images, model.corrupt, teacher, args.levels, seed=args.seed + 1, **kw)
    t_data = time.perf_counter() - t0
    key = jax.random.PRNGKey(args.seed)
    scores: dict[str, float] = {"val_psnr_noisy": evaluate(lambda y, s: y, val)}

    with open(workdir / "log.jsonl", "a") as log:
        if args.model == "ffdnet":
            config = FFDNetConfig(features=args.features, depth=args.depth or 10)
            state = create_ffdnet_state(config, key, optax.adam(args.lr or 1e-3))
            if args.init is not None:
                start = initial_model(args, config, parser)
                state = state.replace(params=start["params"], batch_stats=start["batch_stats"])

            def step_fn(batch: PairBatch, _: int) -> dict[str, float]:
                nonlocal state
                state, loss = ffdnet_train_step(state, batch, args.loss)
                return {"loss": float(loss)}

            predict = lambda: lambda y, s: ffdnet_apply(state.variables, config, y, s)
            if args.pretrain_steps:
                natural = data.natural_images()
                gauss = simulate.NOISE_MODELS["gaussian"].corrupt
                pre = make_pairs(natural, gauss, clean_teacher, [0.02, 0.05, 0.1, 0.2], seed=args.seed, **kw)
                pre_val = make_pairs(val_images, gauss, clean_teacher, [0.05, 0.1], seed=args.seed + 1, **kw)
                best = train(step_fn, predict, lambda: state.variables, pre, pre_val, args, args.pretrain_steps, "pretrain", log)
                state = state.replace(params=best.best["params"], batch_stats=best.best["batch_stats"])
                scores[f"pretrain_val_{SCORES[validation_loss(args)]}"] = best.best_score
            stopper = train(step_fn, predict, lambda: state.variables, pairs, val, args, args.steps, "finetune", log)
        elif args.model == "unrolled":
            config = UnrolledConfig(steps=args.unroll, init_lam=args.init_lam)
            state = create_unrolled_state(config, optax.adam(args.lr or 0.03))
            likelihood = lambda s: make_likelihood(args.likelihood, sigma=args.sigma_scale * float(s[0]))

            def step_fn(batch: PairBatch, _: int) -> dict[str, float]:
                nonlocal state
                state, loss = unrolled_train_step(state, prior, likelihood(batch.sigma), batch.noisy, batch.target)
                return {"loss": float(loss)}

            predict = lambda: lambda y, s: unrolled_patches(
                state.params, config, prior, likelihood(s), y, patch_start(prior, y, config.init_blur)
            )
            stopper = train(step_fn, predict, lambda: {"params": state.params}, pairs, val, args, args.steps, "train", log)
        else:
            config = UNetConfig(features=args.features, depth=args.depth or 4)
            gen, disc = create_pix2pix_states(config, PatchGANConfig(features=args.features), key)
            if args.init is not None:  # the generator only: a saved model holds no discriminator
                gen = gen.replace(params=initial_model(args, config, parser)["params"])

            def step_fn(batch: PairBatch, step: int) -> dict[str, float]:
                nonlocal gen, disc
                gen, disc, metrics = pix2pix_train_step(gen, disc, batch, jax.random.fold_in(key, step), args.lambda_l1)
                return {k: float(v) for k, v in metrics.items()}

            predict = lambda: lambda y, s: pix2pix_apply({"params": gen.params}, config, y)
            stopper = train(step_fn, predict, lambda: {"params": gen.params}, pairs, val, args, args.steps, "train", log)

    scores[f"val_{SCORES[validation_loss(args)]}"] = stopper.best_score
    metadata = {
        "command": "python " + " ".join(sys.argv),
        "device": device_name(),
        "seconds": round(time.perf_counter() - t0, 1),
        "seconds_making_pairs": round(t_data, 1),
        "teacher": args.teacher,
        **({"loss": args.loss} if args.model == "ffdnet" else {}),
        **({"lambda_l1": args.lambda_l1} if args.model == "pix2pix" else {}),
        "init": None if args.init is None else str(args.init),
        **(
            {"data": "scanner", "mix_simulator": args.mix_simulator, "planewave": args.planewave, "real_teacher": args.real_teacher, "real_repeat": args.real_repeat, "grain_px": list(args.grain), "flat_fraction": args.flat_fraction, "real_frames": {k: list(v) for k, v in REAL_TRAIN.items()}}
            if args.data == "scanner"
            else {"data": "simulator", "noise": args.noise, "levels": args.levels}
        ),
        "train_samples": len(pairs.noisy),
        "sigma_median": float(np.median(pairs.sigma)),
        **(
            {"likelihood": args.likelihood, "sigma_scale": args.sigma_scale, "prior": DEFAULT_PRIOR}
            if args.model == "unrolled"
            else {}
        ),
        "val_samples": len(val.noisy),
        **scores,
    }
    save_model(config, stopper.best, args.out, metadata)
    print(json.dumps(metadata, indent=2))


if __name__ == "__main__":
    main()
