"""The benchmark tables of docs/results/: MAP and every baseline on simulated ultrasound speckle.

Runs ``usprior bench`` twice on held-out sagittal MNI152 slices (the 'test' band; tuning on
the 'tune' band slice) and a cyst phantom, writing docs/results/benchmark_<noise>.{json,md,png}:

* ``convolutional``: Yu & Acton B-mode speckle (Gaussian scatterers, 7 MHz PSF, envelope,
  log compression) at 40 and 60 dB dynamic range;
* ``log_speckle``: pixel-wise y = x + sqrt(x) sigma eta (the OBNLM model) at sigma 0.1 and 0.2.

    python experiments/benchmark.py [--n-test 2] [--out docs/results]

Each ``usprior bench`` command it runs is recorded in the Markdown it writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from usprior.cli import main as usprior_main

RUNS = {
    "convolutional": ("40", "60"),
    "log_speckle": ("0.1", "0.2"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-test", type=int, default=2, help="sagittal test slices per level")
    parser.add_argument("--noise", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    for noise in args.noise:
        code = usprior_main([
            "bench", "--noise", noise, "--levels", *RUNS[noise], "--n-test", str(args.n_test),
            "--out", str(args.out), "--name", f"benchmark_{noise}",
            "--title", f"Benchmark: {noise} noise on held-out sagittal MRI and a cyst phantom",
        ])
        if code != 0:
            raise SystemExit(code)


if __name__ == "__main__":
    main()
