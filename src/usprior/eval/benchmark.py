"""Evaluation harness: every denoiser tuned and measured the same way on the same noisy images.

Protocol of :func:`run_benchmark`, for one noise model and a list of noise levels:

1. For each level, the clean tuning image and every clean test image get one noisy copy
   each, drawn once with a fixed seed (``seed + 1000 * level_index + image_index``; the
   tuning image uses image index 999, the phantom 998), so every method sees the very same
   noisy inputs.
2. Each method's parameter grid (the Cartesian product of its ``grid``) is searched on the
   tuning image only; the parameters with the best PSNR are kept for that level.
3. The tuned method runs on every test image: PSNR and SSIM against the target (data range 1)
   and the wall-clock seconds per image (numpy in, numpy out, so JAX work is complete).
4. Optionally a cyst phantom (:func:`usprior.physics.phantoms.cyst_phantom`) goes through the same
   noise model and every tuned method; no-reference contrast metrics (CNR, gCNR per lesion
   against the background, SNR and ENL of the background) are reported with PSNR.

Noise level. Parameters listed in a method's ``noise_scaled`` are grid *multipliers* of the
level's noise std, measured as ``rms(noisy - target)`` on the tuning image (the usual
known-noise-level protocol of denoising benchmarks; the same value for every test image of the
level). A blind estimate is no substitute: the wavelet-MAD estimator
(``skimage.restoration.estimate_sigma``) reads 0.0026 on an MRI slice with 50 dB convolutional
speckle whose rms noise is 0.057 (about 0.11 inside tissue), because the speckle grain spans
several pixels and the finest wavelet band barely sees it.

A method is any registered denoiser (:mod:`usprior.denoisers`), tuned over the grid it was
registered with; add your own with :func:`usprior.register_denoiser` (or ``usprior bench
--plugin MODULE`` for a module that calls it).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import skimage.io
import skimage.util
from tqdm.auto import tqdm

from usprior.denoisers import denoiser_entry, denoiser_names, make_denoiser
from usprior.eval import metrics
from usprior.physics import phantoms, simulate
from usprior.validation import as_float_image, check_positive

# --- methods: registered denoisers and their tuning grids -------------------------------------


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered denoiser as the benchmark tunes it (:class:`usprior.denoisers.DenoiserEntry`).

    Attributes:
        name: the registered name.
        grid: parameter name -> candidate values, searched as a Cartesian product per level; the
            name ``"sigma"`` is the call-time noise level, every other one an option.
        noise_scaled: names in ``grid`` whose values are multipliers of the level's noise std.
    """

    name: str
    grid: Mapping[str, Sequence[Any]]
    noise_scaled: tuple[str, ...]

    @classmethod
    def registered(cls, name: str) -> Method:
        entry = denoiser_entry(name)
        return cls(name, dict(entry.grid), tuple(entry.noise_scaled))

    def candidates(self) -> list[dict[str, Any]]:
        """Every grid point as a dict (one empty dict for an empty grid)."""
        names = list(self.grid)
        return [dict(zip(names, values)) for values in itertools.product(*(self.grid[n] for n in names))]

    def run(self, noisy: np.ndarray, point: Mapping[str, Any], noise_std: float) -> np.ndarray:
        """The denoiser at a grid point (noise-scaled values times ``noise_std``) on one image (H, W)."""
        options = {k: (v * noise_std if k in self.noise_scaled else v) for k, v in point.items()}
        sigma = options.pop("sigma", None)
        return make_denoiser(self.name, **options)(noisy[None], sigma=sigma)[0]


# --- running ----------------------------------------------------------------------------------


def _timed(method: Method, noisy: np.ndarray, point: Mapping[str, Any], std: float) -> tuple[np.ndarray, float]:
    """Run ``method`` at a grid point on ``noisy`` (noise std ``std``); returns the float32 estimate and seconds.

    The denoiser interface checks the shape and finiteness of the result and clips it to [0, 1].
    """
    t0 = time.perf_counter()
    out = method.run(noisy, point, std)
    return out, time.perf_counter() - t0


def _tune(method: Method, noisy: np.ndarray, target: np.ndarray, std: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Grid search on the tuning image: (best grid point, [{params, psnr} for every point])."""
    trials = [
        {"params": point, "psnr": metrics.psnr(target, _timed(method, noisy, point, std)[0])}
        for point in method.candidates()
    ]
    best = max(trials, key=lambda t: t["psnr"])
    return best["params"], trials


def _phantom_scores(image: np.ndarray, target: np.ndarray, masks: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """PSNR, per-lesion CNR / gCNR against the background, background SNR and ENL."""
    background = masks["background"]
    lesions = [name for name in masks if name != "background"]
    return {
        "psnr": metrics.psnr(target, image),
        "cnr": {name: metrics.cnr(image, masks[name], background) for name in lesions},
        "gcnr": {name: metrics.gcnr(image, masks[name], background) for name in lesions},
        "snr": metrics.snr(image, background),
        "enl": metrics.enl(image, background),
    }


@dataclasses.dataclass(frozen=True)
class BenchmarkSetup:
    """What to measure.

    Attributes:
        noise: a :data:`usprior.physics.simulate.NOISE_MODELS` name, or the name of ``noise_model``.
        levels: noise levels (see :class:`usprior.physics.simulate.NoiseModel`), each > 0.
        methods: registered method names.
        tune_image: (H, W) clean image in [0, 1] used only for tuning.
        test_images: name -> (H, W) clean image in [0, 1].
        phantom_shape: shape of the cyst phantom, or None for no phantom.
        seed: base seed of the noise draws.
        noise_model: a :class:`usprior.physics.simulate.NoiseModel` of one's own (e.g. a
            simulator setting outside a model's training ranges), benchmarked under ``noise``.
    """

    noise: str
    levels: tuple[float, ...]
    methods: tuple[str, ...]
    tune_image: np.ndarray
    test_images: Mapping[str, np.ndarray]
    phantom_shape: tuple[int, int] | None = (192, 192)
    seed: int = 0
    noise_model: simulate.NoiseModel | None = None

    @property
    def model(self) -> simulate.NoiseModel:
        """The noise model benchmarked."""
        return self.noise_model if self.noise_model is not None else simulate.NOISE_MODELS[self.noise]

    def __post_init__(self) -> None:
        if self.noise_model is None and self.noise not in simulate.NOISE_MODELS:
            raise ValueError(f"unknown noise model {self.noise!r}; choose one of {sorted(simulate.NOISE_MODELS)}")
        if not self.levels:
            raise ValueError("give at least one noise level")
        for level in self.levels:
            check_positive(level, "noise level")
        unknown = [m for m in self.methods if m not in denoiser_names()]
        if unknown or not self.methods:
            raise ValueError(f"unknown or no methods {unknown}; registered: {denoiser_names()}")
        if not self.test_images:
            raise ValueError("give at least one test image")
        as_float_image(self.tune_image, min_size=1, name="tune image")
        for name, image in self.test_images.items():
            as_float_image(image, min_size=1, name=f"test image {name!r}")


class Figure(NamedTuple):
    """Images for the figure grid of one level: column label -> (H, W) image in [0, 1]."""

    level: float
    columns: dict[str, np.ndarray]


def run_benchmark(setup: BenchmarkSetup, progress: bool = True) -> tuple[dict[str, Any], list[Figure]]:
    """Run the protocol of the module docstring; returns (JSON-able results, figure images)."""
    model = setup.model
    phantom = phantoms.cyst_phantom(setup.phantom_shape) if setup.phantom_shape is not None else None
    names = list(setup.test_images)
    results: list[dict[str, Any]] = []
    figures: list[Figure] = []
    bar = tqdm(total=len(setup.levels) * len(setup.methods), desc="benchmark", disable=not progress)
    for li, level in enumerate(setup.levels):
        base = setup.seed + 1000 * li
        tune_noisy, tune_target = model.corrupt(setup.tune_image, level, base + 999)
        pairs = {n: model.corrupt(setup.test_images[n], level, base + i) for i, n in enumerate(names)}
        ph_noisy, ph_target = model.corrupt(phantom.image, level, base + 998) if phantom else (None, None)
        std = simulate.noise_std(tune_noisy, tune_target)
        row: dict[str, Any] = {
            "level": level,
            "noise_std": std,
            "noisy": _scores(pairs, {n: pairs[n][0] for n in names}, {}),
            "methods": {},
        }
        if phantom:
            row["noisy"]["phantom"] = _phantom_scores(ph_noisy, ph_target, phantom.masks)
        first = names[0]
        columns = {"target": pairs[first][1], "noisy": pairs[first][0]}
        for name in setup.methods:
            bar.set_postfix_str(f"{model.level_name} {level:g}: {name}")
            method = Method.registered(name)
            best, trials = _tune(method, tune_noisy, tune_target, std)
            runs = {n: _timed(method, pairs[n][0], best, std) for n in names}
            entry = _scores(pairs, {n: runs[n][0] for n in names}, {n: runs[n][1] for n in names})
            entry.update(params=best, tuning=trials, at_grid_edge=_at_edge(method, best))
            if phantom:
                entry["phantom"] = _phantom_scores(_timed(method, ph_noisy, best, std)[0], ph_target, phantom.masks)
            row["methods"][name] = entry
            columns[name] = runs[first][0]
            bar.update()
        results.append(row)
        figures.append(Figure(level, columns))
    bar.close()
    meta = {
        "noise": setup.noise, "noise_description": model.description, "level_name": model.level_name,
        "levels": list(setup.levels), "seed": setup.seed, "test_images": names,
        "image_shapes": {n: list(setup.test_images[n].shape) for n in names},
        "phantom_shape": list(setup.phantom_shape) if setup.phantom_shape else None,
        "methods": {m: {"grid": dict(denoiser_entry(m).grid), "noise_scaled": list(denoiser_entry(m).noise_scaled)}
                    for m in setup.methods},
        "device": device_name(),
    }
    return {"meta": meta, "levels": results}, figures


def _scores(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], estimates: Mapping[str, np.ndarray],
            seconds: Mapping[str, float]) -> dict[str, Any]:
    """Mean and per-image PSNR / SSIM of the estimates against the targets, and mean seconds."""
    per = {n: {"psnr": metrics.psnr(pairs[n][1], estimates[n]), "ssim": metrics.ssim(pairs[n][1], estimates[n])} for n in pairs}
    out: dict[str, Any] = {k: float(np.mean([p[k] for p in per.values()])) for k in ("psnr", "ssim")}
    out["per_image"] = per
    if seconds:
        out["seconds"] = float(np.mean(list(seconds.values())))
    return out


def _at_edge(method: Method, best: Mapping[str, Any]) -> list[str]:
    """Names of tuned parameters that sit on the first or last value of a grid with > 1 value."""
    return [k for k, v in best.items() if len(method.grid[k]) > 1 and v in (method.grid[k][0], method.grid[k][-1])]


def device_name() -> str:
    """The JAX device and host processor, e.g. ``'cpu (cpu), x86_64, 2 cores'``."""
    dev = jax.devices()[0]
    return f"{dev.device_kind} ({jax.default_backend()}), {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


# --- reports ----------------------------------------------------------------------------------


def _fmt_params(params: Mapping[str, Any], method: str, meta: Mapping[str, Any]) -> str:
    scaled = set(meta["methods"][method]["noise_scaled"])
    return ", ".join(f"{k}={v:g}{' x std' if k in scaled else ''}" if isinstance(v, (int, float)) else f"{k}={v}"
                     for k, v in params.items()) or "-"


def markdown(results: Mapping[str, Any], title: str, command: str) -> str:
    """Markdown tables of :func:`run_benchmark` results (one table per level, plus phantoms)."""
    meta = results["meta"]
    lines = [
        f"# {title}", "",
        f"Generated by `{command}` on {meta['device']}.", "",
        f"Noise model `{meta['noise']}`: {meta['noise_description']}. Test images: "
        f"{', '.join(meta['test_images'])} (shapes {sorted({tuple(s) for s in meta['image_shapes'].values()})}). "
        "Every method was tuned by grid search on a separate tuning image per level and sees the same "
        "seeded noisy inputs; parameters marked `x std` are multiples of the level's noise std "
        "(rms of noisy - target on the tuning image). PSNR (dB) and SSIM against the target, data range 1; time = mean wall-clock "
        "seconds per test image (numpy in, numpy out); `*` = tuned value at the edge of its grid.", "",
    ]
    for row in results["levels"]:
        lines += [f"## {meta['level_name']} = {row['level']:g}", "",
                  "| method | PSNR | SSIM | s / image | tuned parameters |", "|---|---|---|---|---|",
                  f"| noisy input | {row['noisy']['psnr']:.2f} | {row['noisy']['ssim']:.3f} | - | - |"]
        ranked = sorted(row["methods"].items(), key=lambda kv: -kv[1]["psnr"])
        for name, r in ranked:
            edge = " *" if r["at_grid_edge"] else ""
            lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['seconds']:.2f} | "
                         f"{_fmt_params(r['params'], name, meta)}{edge} |")
        lines.append("")
        if "phantom" in row["noisy"]:
            lesions = list(row["noisy"]["phantom"]["gcnr"])
            head = " | ".join(f"gCNR {n} | CNR {n}" for n in lesions)
            lines += [f"Cyst phantom {tuple(meta['phantom_shape'])} (same noise model and tuned parameters):", "",
                      f"| method | PSNR | {head} | SNR bg | ENL bg |", "|---" * (4 + 2 * len(lesions)) + "|"]
            for name, r in [("noisy input", row["noisy"])] + ranked:
                p = r["phantom"]
                cells = " | ".join(f"{p['gcnr'][n]:.3f} | {p['cnr'][n]:.2f}" for n in lesions)
                lines.append(f"| {name} | {p['psnr']:.2f} | {cells} | {p['snr']:.2f} | {p['enl']:.1f} |")
            lines.append("")
    return "\n".join(lines)


def figure_grid(figures: Sequence[Figure], gap: int = 4, zoom: int = 3) -> np.ndarray:
    """One image: per level a row of the columns and a row of their central crops zoomed ``zoom`` x.

    The crop is the central (H // zoom, W // zoom) window, enlarged by pixel replication.
    Tiles are separated by ``gap`` white pixels. Returns (rows * (H + gap), cols * (W + gap)) in [0, 1].
    """
    rows = []
    for fig in figures:
        tiles = list(fig.columns.values())
        h, w = tiles[0].shape
        ch, cw = h // zoom, w // zoom
        r0, c0 = (h - ch) // 2, (w - cw) // 2

        def zoomed(t: np.ndarray) -> np.ndarray:
            crop = np.kron(t[r0 : r0 + ch, c0 : c0 + cw], np.ones((zoom, zoom), t.dtype))
            return np.pad(crop, ((0, h - crop.shape[0]), (0, w - crop.shape[1])), constant_values=1.0)

        for row_tiles in (tiles, [zoomed(t) for t in tiles]):
            padded = [np.pad(t, ((0, gap), (0, gap)), constant_values=1.0) for t in row_tiles]
            rows.append(np.concatenate(padded, axis=1))
    return np.clip(np.concatenate(rows, axis=0), 0.0, 1.0)


def write_reports(results: Mapping[str, Any], figures: Sequence[Figure], out_dir: Path, name: str,
                  title: str, command: str) -> dict[str, Path]:
    """Write ``name.json``, ``name.md`` and the figure ``name.png`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{name}.{ext}" for ext in ("json", "md", "png")}
    data = {"meta": {**results["meta"], "command": command}, "levels": results["levels"]}
    paths["json"].write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    columns = ", ".join(figures[0].columns)
    levels = ", ".join(f"{f.level:g}" for f in figures)
    md = markdown(results, title, command) + (
        f"\n![{name}]({name}.png)\n\nFigure: first test image; columns: {columns}; "
        f"row pairs: {results['meta']['level_name']} {levels} (full image, then the central third zoomed 3x).\n"
    )
    paths["md"].write_text(md)
    skimage.io.imsave(paths["png"], skimage.util.img_as_ubyte(figure_grid(figures)), check_contrast=False)
    return paths


def _json_default(value: Any) -> Any:
    """numpy scalars (e.g. grid values) as Python numbers."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
