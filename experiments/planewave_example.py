"""Plane-wave (CPWC) B-mode simulation of a cyst phantom and a sagittal MNI slice with pymust.

Runs :func:`usprior.physics.planewave.plane_wave_bmode` (3 steered plane waves, -10..10 degrees, a
128-element 7.6 MHz linear array, 50 dB dynamic range) on

* the default cyst phantom of :func:`usprior.physics.phantoms.cyst_phantom` (128 x 128) on a
  20 mm x 20 mm field of view at 5-25 mm depth, and
* a sagittal MNI152 slice of the *training* split (:func:`usprior.priors.data.sagittal_slices`),
  rotated so that superior is up, on the full 38.4 mm aperture,

and writes docs/results/planewave_example.png (clean target vs B-mode, mm axes) and
docs/results/planewave_example.json (parameters, region statistics, runtimes, device).
Needs the optional dependency: pip install "usprior[planewave]".

    python experiments/planewave_example.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from usprior.priors.data import MNI_MIDLINE, SAGITTAL_SPLITS, sagittal_slices  # noqa: E402
from usprior.physics.planewave import DEFAULT_PROBE, PlaneWaveSimulation, plane_wave_bmode  # noqa: E402
from usprior.physics.phantoms import cyst_phantom  # noqa: E402

MNI_OFFSET = 10  # sagittal slice MNI_MIDLINE + 10 (a training slice: midline distance 10)


def device() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = platform.processor() or platform.machine()
    return f"cpu: {cpu}, {os.cpu_count()} cores, load average {load:.1f} at start"


def summary(sim: PlaneWaveSimulation) -> dict:
    return {
        "shape": list(sim.noisy.shape),
        "depth_mm": [float(sim.z_mm[0] - sim.pixel_size_mm[0] / 2), float(sim.z_mm[-1] + sim.pixel_size_mm[0] / 2)],
        "width_mm": float(sim.x_mm[-1] - sim.x_mm[0] + sim.pixel_size_mm[1]),
        "pixel_size_mm": [round(v, 4) for v in sim.pixel_size_mm],
        "oversample": list(sim.oversample),
        "n_scatterers": int(sim.amplitudes.size),
        "n_scatterers_simulated": int(np.count_nonzero(sim.amplitudes)),
        "scatterers_per_cell": sim.scatterers_per_cell,
        "log_offset_db": round(sim.log_offset_db, 3),
        "element_splitting": sim.element_splitting,
        "fnumber": sim.fnumber,
        "angles_deg": list(sim.angles_deg),
        "timings_s": {k: round(v, 2) for k, v in sim.timings_s.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--density", type=float, default=1.0, help="scatterers per resolution cell")
    parser.add_argument("--n-angles", type=int, default=3)
    parser.add_argument("--max-angle", type=float, default=10.0, help="degrees")
    parser.add_argument("--dynamic-range", type=float, default=50.0, help="dB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    common = {
        "n_angles": args.n_angles,
        "max_angle_deg": args.max_angle,
        "scatterers_per_cell": args.density,
        "dynamic_range_db": args.dynamic_range,
        "seed": args.seed,
    }
    meta = {
        "command": "python experiments/planewave_example.py",
        "device": device(),
        "pymust_version": _pymust_version(),
        "probe": DEFAULT_PROBE._asdict() | {"fs_mhz": DEFAULT_PROBE.sampling_mhz},
        **common,
    }

    # Cyst phantom: 20 mm x 20 mm at 5-25 mm depth (square pixels, 0.156 mm).
    phantom = cyst_phantom((128, 128))
    start = time.perf_counter()
    cyst = plane_wave_bmode(phantom.image, depth_mm=(5.0, 25.0), width_mm=20.0, **common)
    cyst_wall = time.perf_counter() - start
    regions = {
        name: {
            "noisy_mean": round(float(cyst.noisy[m].mean()), 4),
            "clean_mean": round(float(cyst.clean[m].mean()), 4),
            "ideal_mean": round(float(cyst.ideal[m].mean()), 4),
        }
        for name, m in phantom.masks.items()
    }
    bg = regions["background"]
    print(f"cyst: {cyst_wall:.1f} s, background noisy {bg['noisy_mean']:.3f} vs clean {bg['clean_mean']:.3f}")

    # Sagittal MNI training slice, superior up, on the full aperture (square pixels).
    index = MNI_MIDLINE + MNI_OFFSET
    train = SAGITTAL_SPLITS["train"]
    mri = np.rot90(sagittal_slices("train")[train.index(index)]).astype(np.float32)
    width = DEFAULT_PROBE.aperture_mm
    depth = (5.0, 5.0 + width * mri.shape[0] / mri.shape[1])
    start = time.perf_counter()
    brain = plane_wave_bmode(mri, depth_mm=depth, width_mm=width, **common)
    brain_wall = time.perf_counter() - start
    print(f"mni sagittal {index}: {brain_wall:.1f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.5), constrained_layout=True)
    for row, (sim, name) in enumerate([(cyst, "cyst phantom"), (brain, f"MNI sagittal slice {index} (train)")]):
        extent = [
            sim.x_mm[0] - sim.pixel_size_mm[1] / 2,
            sim.x_mm[-1] + sim.pixel_size_mm[1] / 2,
            sim.z_mm[-1] + sim.pixel_size_mm[0] / 2,
            sim.z_mm[0] - sim.pixel_size_mm[0] / 2,
        ]
        for col, (img, title) in enumerate([(sim.clean, "clean target"), (sim.noisy, "plane-wave B-mode")]):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, extent=extent, interpolation="nearest")
            ax.set_title(f"{name}: {title}", fontsize=10)
            ax.set_xlabel("lateral [mm]")
            ax.set_ylabel("depth [mm]")
    fig.suptitle(
        f"CPWC, {args.n_angles} angles in [-{args.max_angle:g}, {args.max_angle:g}] deg, "
        f"{DEFAULT_PROBE.n_elements} el. {DEFAULT_PROBE.f0_mhz:g} MHz, "
        f"{args.density:g} scatterers / cell, DR {args.dynamic_range:g} dB",
        fontsize=11,
    )
    fig.savefig(args.out / "planewave_example.png", dpi=110)
    plt.close(fig)

    result = {
        "meta": meta,
        "cyst": summary(cyst) | {"wall_s": round(cyst_wall, 2), "regions": regions},
        "mni_sagittal": summary(brain) | {"wall_s": round(brain_wall, 2), "sagittal_index": index},
    }
    (args.out / "planewave_example.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'planewave_example.png'} and {args.out / 'planewave_example.json'}")


def _pymust_version() -> str:
    from importlib.metadata import version

    return version("pymust")


if __name__ == "__main__":
    main()
