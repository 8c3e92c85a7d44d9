"""A regular (non-editable) install: build the wheel, install it into a fresh target folder and
denoise with every shipped model from another directory. The shipped checkpoints must come from
the installed package's data, not from the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work / "dist"), str(ROOT)],
        check=True, cwd=work,
    )
    wheels = list((work / "dist").glob("usprior-*.whl"))
    assert len(wheels) == 1
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheels[0])],
                   check=True, cwd=work)
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_installed_package_is_the_wheel(installed, tmp_path):
    code = "import usprior, usprior.io.checkpoints as c; print(usprior.__file__); print(c.shipped('glow_mri'))"
    result = run_installed(installed, tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    module, prior = result.stdout.split()
    assert Path(module).is_relative_to(installed) and Path(prior).is_relative_to(installed)


@pytest.mark.parametrize(
    ("method", "extra"),
    [("map", ["--global-steps", "2", "--sigma", "0.1"]), ("map_latent", ["--steps", "2", "--sigma", "0.1"]),
     ("map_latent", ["--steps", "2", "--sigma", "0.1", "--checkpoint", "glow_mri_wide"]),
     ("ffdnet", []), ("pix2pix", []), ("unrolled", [])],
)
def test_denoise_with_each_shipped_model_from_another_directory(installed, tmp_path, method, extra):
    yy, xx = np.mgrid[0:48, 0:40]
    np.save(tmp_path / "in.npy", (0.5 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 6.0)).astype(np.float32))
    result = run_installed(installed, tmp_path, "-m", "usprior", "denoise", "in.npy", "-o", "out.npy", "--method", method, *extra)
    assert result.returncode == 0, result.stderr
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (48, 40) and np.all(np.isfinite(out))
