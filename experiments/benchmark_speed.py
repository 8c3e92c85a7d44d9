"""Speed of every ``usprior.denoise`` method on 600x500 frames: latency, frames per second,
JIT compile time and peak memory, at batch 1 and batch 16 (a cine stack).

Each (method, batch) runs in a fresh subprocess, so compile time and peak memory are its own:

* **end to end**: ``usprior.denoise(frames, method=m)`` on a stack of B frames with every
  option at its default (the networks: frames per pass and concurrent passes as
  :mod:`usprior.denoisers.networks` picks them for the backend), numpy in, numpy out (the
  conversion to numpy waits for the device, like ``block_until_ready``); the first call
  (checkpoint loading + JIT compilation + one run) is timed apart from the ``--repeats``
  later calls, whose median gives the latency; compile = first call - latency.
* **device only** (FFDNet, Pix2Pix): one pass of the jitted network over the whole batch already
  on the device, ``jax.block_until_ready`` on its output: what is left without host <-> device
  copies, on one core's worth of XLA's CPU convolutions (the denoisers run several passes at
  once on a CPU, so end to end can be faster than this).
* **peak memory**: the device's ``peak_bytes_in_use`` on a GPU; the process's peak resident
  set size (``ru_maxrss``) on the CPU, which includes the JAX runtime (its size after the
  imports is reported too).

Frames: the sagittal MNI152 'test' slice 59 resized to 600x500 with convolutional B-mode
speckle at 50 dB (content does not change the work done). MAP runs its defaults (BM3D, then
20 Adam steps on the global objective); BM3D is timed in the same run as MAP's reference
(the issue's budget is 10x BM3D on the same frame); iterative methods skip batch 16 when
batch 1 x 16 would exceed ``--budget`` seconds. Writes
``<out>/speed_<device>.{json,md}`` (``--name`` for another stem).

    python experiments/benchmark_speed.py                 # every method, batch 1 and 16
    python experiments/benchmark_speed.py --methods ffdnet pix2pix --repeats 20
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPE = (600, 500)
METHODS = ("ffdnet", "pix2pix", "unrolled", "map", "bm3d")


def frames(batch: int) -> np.ndarray:
    """``batch`` speckled 600x500 frames (seeded), (batch, 600, 500) float32 in [0, 1]."""
    from skimage.transform import resize

    from usprior.priors import data
    from usprior.physics import simulate

    clean = resize(data.sagittal_slices("test")[0], SHAPE, anti_aliasing=True).astype(np.float32)
    corrupt = simulate.NOISE_MODELS["convolutional"].corrupt
    return np.stack([corrupt(clean, 50.0, seed)[0] for seed in range(batch)]).astype(np.float32)


def rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_only(method: str, y: np.ndarray, repeats: int) -> float | None:
    """Median seconds of the jitted network alone on device-resident input (FFDNet / Pix2Pix)."""
    import jax

    from usprior.amortized import ffdnet_apply, load_model, pix2pix_apply
    from usprior.denoisers.networks import SHIPPED_MODELS

    if method not in ("ffdnet", "pix2pix"):
        return None
    model = load_model(SHIPPED_MODELS[method], kind=method)
    x = jax.device_put(y[..., None])
    if method == "ffdnet":
        run = lambda: ffdnet_apply(model.variables, model.config, x, np.float32(model.metadata["sigma_median"]))
    else:
        run = lambda: pix2pix_apply(model.variables, model.config, x)
    jax.block_until_ready(run())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(method: str, batch: int, repeats: int) -> dict[str, Any]:
    """Time one (method, batch) in this process; returns one result row."""
    import jax

    import usprior

    y = frames(batch)
    x = y[0] if batch == 1 else y
    rss_start = rss_mib()
    t0 = time.perf_counter()
    usprior.denoise(x, method=method)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        usprior.denoise(x, method=method)
        times.append(time.perf_counter() - t0)
    latency = statistics.median(times)
    device_s = device_only(method, y, repeats)
    stats = jax.devices()[0].memory_stats() or {}
    return {
        "method": method,
        "batch": batch,
        "repeats": repeats,
        "first_call_s": round(first, 3),
        "latency_s": round(latency, 4),
        "ms_per_frame": round(1e3 * latency / batch, 2),
        "fps": round(batch / latency, 2),
        "compile_s": round(max(first - latency, 0.0), 3),
        "device_only_ms_per_frame": None if device_s is None else round(1e3 * device_s / batch, 3),
        "peak_device_mib": round(stats["peak_bytes_in_use"] / 2**20, 1) if "peak_bytes_in_use" in stats else None,
        "peak_rss_mib": round(rss_mib(), 1),
        "rss_after_imports_mib": round(rss_start, 1),
    }


def _cell(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Speed of the denoisers on 600x500 frames", "",
        f"Generated by `{meta['command']}` on **{meta['device']}**, JAX {meta['jax']}.", "",
        "End to end = `usprior.denoise` numpy in / numpy out, median of the repeats after a first "
        "call (loading + JIT compile + run); compile = first call - latency; batch = frames per call, "
        "every option at its default. Device only = one pass of the jitted network over the whole "
        "batch on device-resident input with `block_until_ready` (on a CPU the denoisers run "
        "several passes at once, one per core). Peak memory: device "
        "`peak_bytes_in_use` (GPU) or the process's peak RSS (CPU, JAX runtime included).", "",
        "| method | batch | ms / frame | frames / s | compile (s) | device only, ms / frame | peak device (MiB) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['method']} | {r['batch']} | skipped: {r['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {r['method']} | {r['batch']} | {r['ms_per_frame']} | {r['fps']} | {r['compile_s']} | "
            f"{_cell(r['device_only_ms_per_frame'])} | {_cell(r['peak_device_mib'])} | {r['peak_rss_mib']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the first (map, bm3d: 1)")
    parser.add_argument("--budget", type=float, default=120.0, help="skip a batch whose estimated time exceeds this (s)")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--name", default=None, help="output file stem (default speed_<cpu|gpu>)")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.repeats)))
        return

    import jax

    from usprior.eval.benchmark import device_name

    rows = []
    for method in args.methods:
        batch1 = None
        repeats = 1 if method in ("map", "bm3d") else args.repeats
        for batch in sorted(args.batches):
            if batch1 is not None and method in ("map", "unrolled", "bm3d") and batch1 * batch > args.budget:
                rows.append({"method": method, "batch": batch, "skipped": f"~{batch1 * batch:.0f} s per call"})
                print(rows[-1], flush=True)
                continue
            cmd = [sys.executable, __file__, "--one", method, str(batch), "--repeats", str(repeats)]
            result = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            batch1 = rows[-1]["latency_s"] if batch == 1 else batch1
            print(rows[-1], flush=True)
    device = device_name()
    meta = {"command": "python " + " ".join(["experiments/benchmark_speed.py", *sys.argv[1:]]),
            "device": device, "jax": jax.__version__, "frame_shape": list(SHAPE)}
    tag = "gpu" if jax.default_backend() == "gpu" else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"speed_{tag}"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
