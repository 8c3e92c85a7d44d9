"""Build the bundled example image examples/mri_axial_noisy.png (and its clean reference).

An axial MNI152 slice (an evaluation plane: the prior never sees axial or coronal data) with
additive Gaussian noise sigma = 0.1, fixed seed, clipped to [0, 1] and stored as 8-bit PNG.

    python experiments/make_example.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.io
import skimage.util

from usprior.priors.data import load_mni_volume

AXIAL_INDEX = 100
SIGMA = 0.1
SEED = 2026


def main(out_dir: Path = Path("examples")) -> None:
    clean = np.rot90(load_mni_volume()[:, :, AXIAL_INDEX])
    rng = np.random.default_rng(SEED)
    noisy = np.clip(clean + SIGMA * rng.standard_normal(clean.shape), 0.0, 1.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(out_dir / "mri_axial_clean.png", skimage.util.img_as_ubyte(clean), check_contrast=False)
    skimage.io.imsave(out_dir / "mri_axial_noisy.png", skimage.util.img_as_ubyte(noisy), check_contrast=False)
    print(f"wrote {out_dir}/mri_axial_noisy.png {noisy.shape} (axial slice {AXIAL_INDEX}, sigma {SIGMA})")


if __name__ == "__main__":
    main()
