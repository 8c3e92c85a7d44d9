"""The one denoiser interface and its registry: contract, options, plug-ins through API, CLI and bench."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import usprior
from usprior.amortized.checkpoint import save_model
from usprior.amortized.ffdnet import FFDNetConfig, init_ffdnet
from usprior.cli import main
from usprior.denoisers import Denoiser, denoiser_names, denoiser_options, make_denoiser
from usprior.denoisers.flow import CLIPPED_START_STEPS

import jax

CLASSICAL = ("nlm", "tv", "bm3d", "lee", "kuan", "frost", "srad", "obnlm", "wnnm")


def frames(t: int = 2, shape: tuple[int, int] = (36, 40), seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    clean = 0.5 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
    noise = 0.05 * np.random.default_rng(seed).standard_normal((t, *shape))
    return np.clip(clean + noise, 0, 1).astype(np.float32)


def test_builtins_are_registered():
    assert {"map", "map_log_speckle", "unrolled", "ffdnet", "pix2pix", *CLASSICAL} <= set(denoiser_names())


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_denoisers_keep_the_contract(name):
    x = frames()
    den = make_denoiser(name)
    assert isinstance(den, Denoiser)
    out = den(x)
    assert out.shape == x.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    np.testing.assert_allclose(out, den(x), atol=1e-6)  # deterministic (bm3d's threads: to float rounding)
    single = getattr(usprior.baselines, name)(x[1])
    np.testing.assert_allclose(out[1], single, atol=1e-6)  # frame by frame, the baseline itself


def test_map_denoiser_on_frames(tiny_checkpoint):
    den = make_denoiser("map", checkpoint=tiny_checkpoint, steps=4, stride=8)
    out = den(frames(2, (24, 30)), sigma=0.1)
    assert out.shape == (2, 24, 30) and out.dtype == np.float32
    assert den.min_size == 8


def test_map_starts_from_a_fast_denoiser(tiny_checkpoint):
    """Latent MAP with start="bm3d": the first frame's patches start at BM3D's output, given the
    Gaussian sigma."""
    from usprior.physics.likelihoods import Gaussian
    from usprior.priors.flow import load_prior
    from usprior.solvers.map import MAPConfig, map_denoise

    x = frames(1, (24, 30))
    out = make_denoiser("map_latent", checkpoint=tiny_checkpoint, steps=1, stride=8, start="bm3d")(x, sigma=0.07)
    start = usprior.baselines.bm3d(x[0], sigma=0.07)
    ref = map_denoise(x[0], load_prior(tiny_checkpoint), Gaussian(sigma=0.07), usprior.DEFAULT_LAM["latent"],
                      MAPConfig(steps=1, stride=8), x0=start).image
    np.testing.assert_allclose(out[0], np.clip(ref, 0, 1), atol=1e-5)
    blur = make_denoiser("map_latent", checkpoint=tiny_checkpoint, steps=1, stride=8)(x, sigma=0.07)
    assert np.abs(out - blur).max() > 1e-3


def test_auto_start_is_bm3d_for_raw_and_latent_map_for_clipped_frames(tiny_checkpoint):
    """start="auto" (the default): BM3D for an observation as it comes, latent MAP with the same
    prior, the denoiser's latent steps and saturated patches skipped for a clipped display frame
    (>= 1 % of its pixels exactly at 0 or 1)."""
    from usprior.physics.likelihoods import Gaussian
    from usprior.priors.flow import load_prior
    from usprior.solvers.global_map import GlobalConfig, global_map_denoise

    prior, cfg = load_prior(tiny_checkpoint), GlobalConfig(steps=2, stride=4)
    raw = frames(1, (24, 30)) + np.float32(0.03)
    raw[:, :4] -= 0.1  # a raw observation dips below 0 without piling up at it
    clipped = np.clip(raw, 0.0, 1.0)
    clipped[:, :12] = 0.0  # 40 % black: a margin of saturated patches, which the clipped start skips
    den = make_denoiser("map", checkpoint=tiny_checkpoint, global_steps=2, steps=7)
    starts = {"raw": usprior.baselines.bm3d(raw[0], sigma=0.05),
              "clipped": make_denoiser("map_latent", checkpoint=tiny_checkpoint, steps=7, skip_saturated=True)(clipped, sigma=0.05)[0]}
    for name, x in (("raw", raw), ("clipped", clipped)):
        ref = global_map_denoise(x[0], prior, Gaussian(sigma=0.05), usprior.DEFAULT_LAM["global"], x0=starts[name], cfg=cfg)
        np.testing.assert_allclose(den(x, sigma=0.05)[0], np.clip(ref.image, 0, 1), atol=1e-5)
    default = make_denoiser("map", checkpoint=tiny_checkpoint)
    assert default.clipped_start.cold.steps == CLIPPED_START_STEPS and default.cold.steps == 100


def test_map_bmode_reads_the_speckle_level_and_starts_from_ffdnet(tiny_checkpoint):
    """The "map_bmode" preset: sigma None -> FFDNet's default level of the frames (the median
    speckle estimate), the start is FFDNet given that sigma; a given sigma still wins; a bad
    ``noise`` is refused."""
    from usprior.denoisers.networks import default_noise_level

    x = frames(2, (40, 48))
    den = make_denoiser("map_bmode", checkpoint=tiny_checkpoint, global_steps=2)
    assert den.noise == "speckle" and den.start.kind == "ffdnet"
    level = default_noise_level(x)
    ref = make_denoiser("map", checkpoint=tiny_checkpoint, global_steps=2, start="ffdnet")(x, sigma=level)
    np.testing.assert_allclose(den(x), ref, atol=1e-6)
    assert np.abs(den(x, sigma=3 * level) - ref).max() > 1e-4
    with pytest.raises(ValueError, match="noise must be"):
        make_denoiser("map", checkpoint=tiny_checkpoint, noise="white")


def test_global_map_refines_every_frames_start(tiny_checkpoint):
    """objective="global" with a start denoiser: the global objective from that denoiser's output,
    frame by frame (no latent stage)."""
    from usprior.physics.likelihoods import Gaussian
    from usprior.priors.flow import load_prior
    from usprior.solvers.global_map import GlobalConfig, global_map_denoise

    x = frames(2, (24, 30))
    den = make_denoiser("map", checkpoint=tiny_checkpoint, objective="global", start="tv", global_steps=3,
                        global_stride=4, lam=0.5)
    out = den(x, sigma=0.05)
    for frame, result in zip(x, out):
        start = usprior.baselines.tv(frame)
        ref = global_map_denoise(frame, load_prior(tiny_checkpoint), Gaussian(sigma=0.05), 0.5, x0=start,
                                 cfg=GlobalConfig(steps=3, stride=4)).image
        np.testing.assert_allclose(result, np.clip(ref, 0, 1), atol=1e-5)


@pytest.mark.parametrize(
    ("name", "option", "valid"),
    [
        ("nlm", "lam", "h, patch_size, patch_distance"),
        ("map", "batch", "checkpoint, likelihood, objective, lam, start, steps, warm_steps, stride, stop_rtol, skip_saturated, "
                "global_steps, global_stride, chunk, progress, noise"),
        ("pix2pix", "steps", "checkpoint, batch, threads"),
    ],
)
def test_an_unknown_option_lists_the_valid_ones(name, option, valid):
    with pytest.raises(ValueError, match=f"'{name}' takes no option {option}; valid options: {valid}$"):
        make_denoiser(name, **{option: 1})
    assert ", ".join(denoiser_options(name)) == valid


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("map", {"steps": 1.5}, "steps must be an integer, got 1.5"),
        ("map", {"stride": True}, "stride must be an integer, got True"),
        ("map", {"stride": 1.5}, "stride must be an integer, got 1.5"),
        ("map", {"steps": 10**6}, r"steps must be an integer in \[1, 10000\]"),
        ("map", {"lam": -1.0}, "lam must be finite and > 0"),
        ("map", {"likelihood": "poisson"}, "unknown likelihood 'poisson'"),
        ("map", {"start": 3}, "start must be 'auto', 'blur' or the name of a registered denoiser"),
        ("map", {"start": "nosuch"}, "unknown method 'nosuch'"),
        ("map", {"stop_rtol": -1.0}, "stop_rtol"),
        ("ffdnet", {"batch": 0}, "batch must be an integer >= 1"),
    ],
)
def test_options_are_validated_at_construction(tiny_checkpoint, name, options, match):
    extra = {"checkpoint": tiny_checkpoint} if name == "map" else {}
    with pytest.raises(ValueError, match=match):
        make_denoiser(name, **extra, **options)


def test_sigma_contract():
    x = frames()
    with pytest.raises(ValueError, match="has no noise-level input"):
        make_denoiser("tv")(x, sigma=0.1)
    with pytest.raises(ValueError, match="sigma must be a number"):
        make_denoiser("bm3d")(x, sigma=np.full(x.shape, 0.1))
    with pytest.raises(ValueError, match=r"a denoiser takes frames \(T, H, W\)"):
        make_denoiser("bm3d")(x[0])


@pytest.fixture(scope="module")
def tiny_ffdnet(tmp_path_factory):
    cfg = FFDNetConfig(features=8, depth=3)
    variables = init_ffdnet(cfg, jax.random.key(0, impl="rbg"))
    return save_model(cfg, variables, tmp_path_factory.mktemp("ffd") / "ffd", {"sigma_median": 0.1})


def test_ffdnet_takes_a_per_pixel_noise_map(tiny_ffdnet):
    den = make_denoiser("ffdnet", checkpoint=tiny_ffdnet, batch=2)
    x = frames(3)
    np.testing.assert_allclose(den(x, sigma=np.full(x.shape[1:], 0.2)), den(x, sigma=0.2), atol=1e-6)
    varying = np.broadcast_to(np.linspace(0.02, 0.5, x.shape[2], dtype=np.float32), x.shape[1:])
    out = den(x, sigma=varying)  # one (H, W) map for every frame
    per_frame = den(x, sigma=np.stack([varying] * 3))  # the same as a (T, H, W) map
    np.testing.assert_allclose(out, per_frame, atol=1e-6)
    assert not np.allclose(out, den(x, sigma=0.2), atol=1e-4)
    np.testing.assert_allclose(usprior.denoise(x[0], method="ffdnet", checkpoint=tiny_ffdnet, sigma=varying), out[0], atol=1e-6)
    with pytest.raises(ValueError, match="sigma map must be finite, > 0"):
        den(x, sigma=np.zeros(x.shape[1:]))


PLUGIN = '''
import numpy as np
import usprior


class Invert(usprior.Denoiser):
    """A denoiser object: 1 - x (a stand-in that is easy to check), with one option."""

    sigma_input = "none"

    def __init__(self, *, gain: float = 1.0):
        self.gain = float(gain)

    def denoise_frames(self, frames, sigma):
        return 1.0 - self.gain * frames


def half(image, sigma=0.5):
    return image * sigma


usprior.register_denoiser("invert", Invert, grid={"gain": (1.0,)})
usprior.register_denoiser("half", usprior.denoisers.function_factory(half), grid={"sigma": (0.5,)})
'''


def test_a_registered_denoiser_works_in_denoise_cli_and_bench(registry, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_denoisers.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    x = frames(1)[0]
    src = tmp_path / "in.npy"
    np.save(src, x)
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.npy"), "--method", "invert", "--plugin", "my_denoisers"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), 1.0 - x, atol=1e-6)
    np.testing.assert_allclose(usprior.denoise(x, method="invert", gain=0.5), 1.0 - 0.5 * x, atol=1e-6)
    np.testing.assert_allclose(usprior.denoise(x, method="half", sigma=0.25), 0.25 * x, atol=1e-6)
    with pytest.raises(ValueError, match="'invert' takes no option scale; valid options: gain"):
        usprior.denoise(x, method="invert", scale=2)
    np.save(tmp_path / "tune.npy", x)
    folder = tmp_path / "images"
    folder.mkdir()
    np.save(folder / "a.npy", x)
    assert main(["bench", "--noise", "gaussian", "--levels", "0.1", "--methods", "invert", "half", "--no-phantom",
                 "--images", str(folder), "--tune-image", str(tmp_path / "tune.npy"), "--plugin", "my_denoisers",
                 "--out", str(tmp_path / "bench")]) == 0
    results = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert set(results["levels"][0]["methods"]) == {"invert", "half"}
    assert results["levels"][0]["methods"]["invert"]["params"] == {"gain": 1.0}


def test_registry_refuses_duplicates_and_wraps_plain_callables(registry):
    usprior.register_denoiser("mine", lambda: (lambda frames, sigma=None: frames[..., ::-1]))
    with pytest.raises(ValueError, match="already registered"):
        usprior.register_denoiser("mine", lambda: None)
    x = frames()
    np.testing.assert_array_equal(usprior.denoise(x, method="mine"), x[..., ::-1])
    usprior.register_denoiser("broken", lambda: (lambda frames, sigma=None: frames * np.nan), replace=True)
    with pytest.raises(FloatingPointError, match="broken produced non-finite values$"):
        usprior.denoise(x, method="broken")
    usprior.register_denoiser("nothing", lambda: 3)
    with pytest.raises(TypeError, match="returned int, not a denoiser"):
        make_denoiser("nothing")
    with pytest.raises(ValueError, match="unknown method 'nope'; registered:"):
        make_denoiser("nope")


def test_import_usprior_is_light():
    code = (
        "import sys, usprior\n"
        "assert usprior.denoise and 'denoise' in dir(usprior)\n"
        "heavy = [m for m in ('jax', 'flax', 'optax', 'orbax', 'usprior.amortized.training') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import usprior.amortized\n"
        "assert 'usprior.amortized.training' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tiff_stack_through_cli_equals_the_api(tiny_ffdnet, tmp_path):
    x = frames(3)
    src, out = tmp_path / "cine.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, x, photometric="minisblack")
    assert main(["denoise", str(src), "-o", str(out), "--method", "ffdnet", "--checkpoint", str(tiny_ffdnet)]) == 0
    np.testing.assert_array_equal(tifffile.imread(out), usprior.denoise(x, method="ffdnet", checkpoint=tiny_ffdnet))
