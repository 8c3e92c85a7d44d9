"""The evaluation harness: same noisy inputs for every method, tuning, plug-in registry, reports, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.io
from scipy.ndimage import uniform_filter

from usprior.cli import main
from usprior.denoisers import function_factory, register_denoiser
from usprior.eval import benchmark, metrics
from usprior.physics import simulate


def _image(seed: int, shape: tuple[int, int] = (40, 52)) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    phase = np.random.default_rng(seed).uniform(0, 3)
    return (0.5 + 0.35 * np.sin(yy / 6.0 + phase) * np.cos(xx / 8.0)).astype(np.float32)


def identity(image: np.ndarray) -> np.ndarray:
    return image


def box(image: np.ndarray, size: int = 3) -> np.ndarray:
    return uniform_filter(image, size=size, mode="reflect")


@pytest.fixture
def plugins(registry):
    """Register two plug-in denoisers for one test (the registry is restored afterwards)."""
    register_denoiser("identity", function_factory(identity))
    register_denoiser("box", function_factory(box), grid={"size": (1, 3, 5, 7)})


def _setup(**overrides) -> benchmark.BenchmarkSetup:
    kw = dict(noise="gaussian", levels=(0.1, 0.2), methods=("identity", "box", "tv"), tune_image=_image(0),
              test_images={"a": _image(1), "b": _image(2)}, phantom_shape=None, seed=3)
    return benchmark.BenchmarkSetup(**{**kw, **overrides})


def test_every_method_sees_the_same_noisy_inputs(plugins):
    results, figures = benchmark.run_benchmark(_setup(), progress=False)
    for row in results["levels"]:
        ident = row["methods"]["identity"]
        # the identity "denoiser" scores exactly the noisy input: both saw the same images
        assert ident["per_image"] == row["noisy"]["per_image"]
        assert row["methods"]["box"]["psnr"] > row["noisy"]["psnr"] + 2.0
        assert row["methods"]["tv"]["psnr"] > row["noisy"]["psnr"] + 2.0
    assert results["levels"][0]["noisy"]["psnr"] > results["levels"][1]["noisy"]["psnr"] + 4.0
    assert [f.level for f in figures] == [0.1, 0.2]
    assert list(figures[0].columns) == ["target", "noisy", "identity", "box", "tv"]


def test_tuning_picks_the_best_grid_point_on_the_tuning_image(plugins):
    setup = _setup(methods=("box",), levels=(0.2,))
    results, _ = benchmark.run_benchmark(setup, progress=False)
    entry = results["levels"][0]["methods"]["box"]
    noisy, target = simulate.NOISE_MODELS["gaussian"].corrupt(setup.tune_image, 0.2, setup.seed + 999)
    by_hand = {s: metrics.psnr(target, np.clip(box(noisy, s), 0, 1)) for s in (1, 3, 5, 7)}
    assert entry["params"] == {"size": max(by_hand, key=by_hand.get)}
    assert [t["psnr"] for t in entry["tuning"]] == pytest.approx(list(by_hand.values()), abs=1e-4)
    assert entry["at_grid_edge"] == ([] if entry["params"]["size"] in (3, 5) else ["size"])


def test_noise_scaled_parameters_are_multiples_of_the_level_noise_std(plugins):
    seen = []

    def scaled(image: np.ndarray, strength: float, mode: str) -> np.ndarray:
        seen.append((strength, mode))
        return image

    register_denoiser("scaled", function_factory(scaled), grid={"strength": (2.0,)}, noise_scaled=("strength",),
                      presets={"mode": "fixed"})
    setup = _setup(methods=("scaled",), levels=(0.1,))
    results, _ = benchmark.run_benchmark(setup, progress=False)
    noisy, target = simulate.NOISE_MODELS["gaussian"].corrupt(setup.tune_image, 0.1, setup.seed + 999)
    std = float(np.sqrt(np.mean((noisy - target) ** 2)))
    assert results["levels"][0]["noise_std"] == pytest.approx(std) and 0.09 < std < 0.105
    assert seen == [(pytest.approx(2.0 * std), "fixed")] * 3  # tuning image + two test images


def test_runs_are_deterministic_and_seeded(plugins):
    one = benchmark.run_benchmark(_setup(methods=("identity",)), progress=False)[0]
    two = benchmark.run_benchmark(_setup(methods=("identity",)), progress=False)[0]
    other = benchmark.run_benchmark(_setup(methods=("identity",), seed=4), progress=False)[0]
    psnr = lambda r: [row["noisy"]["per_image"]["a"]["psnr"] for row in r["levels"]]
    assert psnr(one) == psnr(two) and psnr(one) != psnr(other)


def test_phantom_metrics_and_convolutional_noise(plugins):
    setup = _setup(noise="convolutional", levels=(40.0,), methods=("identity", "box"), phantom_shape=(64, 64))
    results, _ = benchmark.run_benchmark(setup, progress=False)
    row = results["levels"][0]
    noisy_ph, box_ph = row["noisy"]["phantom"], row["methods"]["box"]["phantom"]
    assert set(noisy_ph["gcnr"]) == {"anechoic", "hypoechoic", "hyperechoic"}
    assert all(0.0 <= v <= 1.0 for v in noisy_ph["gcnr"].values())
    assert row["methods"]["identity"]["phantom"] == noisy_ph
    if row["methods"]["box"]["params"]["size"] > 1:  # smoothing raises background SNR
        assert box_ph["snr"] > noisy_ph["snr"]


def test_reports_are_written(plugins, tmp_path):
    results, figures = benchmark.run_benchmark(_setup(phantom_shape=(48, 48)), progress=False)
    paths = benchmark.write_reports(results, figures, tmp_path, "bench", "Test bench", "usprior bench ...")
    data = json.loads(paths["json"].read_text())
    assert data["meta"]["command"] == "usprior bench ..." and len(data["levels"]) == 2
    md = paths["md"].read_text()
    assert "# Test bench" in md and "| box |" in md and "Cyst phantom" in md and "sigma = 0.2" in md
    png = skimage.io.imread(paths["png"])
    assert png.shape == (2 * 2 * (40 + 4), 5 * (52 + 4))


def test_bad_setups_and_methods_are_refused(plugins):
    with pytest.raises(ValueError, match="unknown noise model"):
        _setup(noise="poisson")
    with pytest.raises(ValueError, match="unknown or no methods"):
        _setup(methods=("nope",))
    with pytest.raises(ValueError, match="noise level"):
        _setup(levels=(-0.1,))
    with pytest.raises(ValueError, match="NaN"):
        _setup(test_images={"a": np.full((40, 52), np.nan)})
    with pytest.raises(ValueError, match="non-empty sequence"):
        register_denoiser("bad", function_factory(box), grid={"size": ()})
    with pytest.raises(ValueError, match="not in the grid"):
        register_denoiser("bad", function_factory(box), grid={"size": (3,)}, noise_scaled=("h",))
    with pytest.raises(ValueError, match=r"grid names \['h'\] are not options of 'bad'; valid: \['size'\]"):
        register_denoiser("bad", function_factory(box), grid={"h": (3,)})
    with pytest.raises(ValueError, match="'box' is already registered"):
        register_denoiser("box", function_factory(box))
    with pytest.raises(TypeError, match="callable"):
        register_denoiser("bad", "box")


def test_a_method_returning_a_wrong_shape_is_an_error(plugins):
    register_denoiser("cropper", function_factory(lambda image: image[1:]))
    with pytest.raises(RuntimeError, match="returned shape"):
        benchmark.run_benchmark(_setup(methods=("cropper",), levels=(0.1,)), progress=False)


def test_cli_bench_with_an_image_folder_and_a_plugin(tmp_path, monkeypatch, capsys, registry):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in (1, 2):
        np.save(folder / f"img{i}.npy", _image(i))
    np.save(tmp_path / "tune.npy", _image(0))
    (tmp_path / "my_plugin.py").write_text(
        "from scipy.ndimage import median_filter\n"
        "import usprior\n"
        "def median(image, size=3):\n"
        "    return median_filter(image, size=size)\n"
        "usprior.register_denoiser('median', usprior.denoisers.function_factory(median), grid={'size': (3, 5)})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["bench", "--noise", "log_speckle", "--levels", "0.1", "--methods", "median", "tv",
                 "--images", str(folder), "--tune-image", str(tmp_path / "tune.npy"), "--no-phantom",
                 "--plugin", "my_plugin", "--out", str(tmp_path / "out"), "--name", "mine"])
    assert code == 0
    data = json.loads((tmp_path / "out" / "mine.json").read_text())
    assert data["meta"]["test_images"] == ["img1", "img2"]
    assert set(data["levels"][0]["methods"]) == {"median", "tv"}
    assert "| median |" in capsys.readouterr().out


def test_cli_bench_errors_exit_2(tmp_path, capsys):
    assert main(["bench", "--levels", "0.1", "--images", str(tmp_path)]) == 2
    assert "--tune-image" in capsys.readouterr().err
    assert main(["bench", "--levels", "0.1", "--methods", "nope", "--no-phantom", "--n-test", "1"]) == 2
    assert "unknown or no methods" in capsys.readouterr().err
