"""Command line: files in, files out, non-zero exit with a message on bad input."""

from __future__ import annotations

import numpy as np
import skimage.io
import tifffile

from usprior.cli import main


def test_denoise_png_with_compare(tiny_checkpoint, tmp_path):
    image = (np.random.default_rng(0).uniform(0, 1, (24, 28)) * 255).astype(np.uint8)
    src = tmp_path / "in.png"
    skimage.io.imsave(src, image, check_contrast=False)
    out, cmp = tmp_path / "out.png", tmp_path / "cmp.png"
    code = main(["denoise", str(src), "-o", str(out), "--compare", str(cmp), "--sigma", "0.1",
                 "--steps", "5", "--stride", "8", "--checkpoint", str(tiny_checkpoint)])
    assert code == 0
    assert skimage.io.imread(out).shape == (24, 28)
    assert skimage.io.imread(cmp).shape == (24, 2 * 28 + 8)


def test_npy_to_npy(tiny_checkpoint, tmp_path):
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, np.random.default_rng(1).uniform(0, 1, (16, 16)).astype(np.float32))
    assert main(["denoise", str(src), "-o", str(out), "--steps", "5", "--stride", "8",
                 "--checkpoint", str(tiny_checkpoint)]) == 0
    res = np.load(out)
    assert res.shape == (16, 16) and res.dtype == np.float32 and np.all(np.isfinite(res))


def test_map_options_reach_the_denoiser(tiny_checkpoint, tmp_path):
    """--objective, --start, --global-steps and --lam give what the API gives with those options."""
    import usprior

    y = np.random.default_rng(3).uniform(0, 1, (20, 22)).astype(np.float32)
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, y)
    cases = [(["--start", "tv", "--global-steps", "3", "--lam", "0.5"], dict(start="tv", global_steps=3, lam=0.5)),
             (["--objective", "latent", "--steps", "4", "--stride", "8"], dict(objective="latent", steps=4, stride=8))]
    for flags, options in cases:
        out.unlink(missing_ok=True)
        assert main(["denoise", str(src), "-o", str(out), "--sigma", "0.1", "--checkpoint", str(tiny_checkpoint), *flags]) == 0
        expected = usprior.denoise(y, sigma=0.1, checkpoint=tiny_checkpoint, **options)
        np.testing.assert_allclose(np.load(out), expected, atol=1e-5)


def test_noise_flag_picks_how_a_missing_sigma_is_read(tiny_checkpoint, tmp_path):
    """--noise speckle / auto without --sigma: the API's noise option, and the two readings differ."""
    import usprior

    y = np.random.default_rng(4).uniform(0, 1, (20, 22)).astype(np.float32)
    src = tmp_path / "in.npy"
    np.save(src, y)
    kw = dict(checkpoint=tiny_checkpoint, start="tv", global_steps=2)
    outs = {}
    for noise in ("speckle", "auto"):
        out = tmp_path / f"{noise}.npy"
        assert main(["denoise", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--start", "tv",
                     "--global-steps", "2", "--noise", noise]) == 0
        outs[noise] = np.load(out)
        np.testing.assert_allclose(outs[noise], usprior.denoise(y, noise=noise, **kw), atol=1e-5)
    assert not np.allclose(outs["speckle"], outs["auto"], atol=1e-3)


def test_errors_exit_2(tiny_checkpoint, tmp_path, capsys):
    assert main(["denoise", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((16, 16), np.nan))
    assert main(["denoise", str(bad), "-o", str(tmp_path / "o.png"),
                 "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "NaN" in capsys.readouterr().err
    txt = tmp_path / "in.txt"
    txt.write_text("x")
    assert main(["denoise", str(txt), "-o", str(tmp_path / "o.png")]) == 2
    assert "unsupported input format" in capsys.readouterr().err


def test_cine_stack_with_amortised_method(tmp_path):
    """A (T, H, W) .npy stack through --method ffdnet (a tiny saved model), written as .tif with
    a stack of before/after comparisons; a stack cannot go to PNG."""
    import jax

    from usprior.amortized import FFDNetConfig, init_ffdnet, save_model

    cfg = FFDNetConfig(features=4, depth=3)
    model = save_model(cfg, init_ffdnet(cfg, jax.random.key(0, impl="rbg")), tmp_path / "ffd", {"sigma_median": 0.1})
    src, out, cmp = tmp_path / "cine.npy", tmp_path / "out.tif", tmp_path / "cmp.npy"
    np.save(src, np.random.default_rng(2).uniform(0, 1, (3, 20, 26)).astype(np.float32))
    args = ["denoise", str(src), "--method", "ffdnet", "--checkpoint", str(model), "--batch", "2"]
    assert main([*args, "-o", str(out), "--compare", str(cmp)]) == 0
    assert tifffile.imread(out).shape == (3, 20, 26)
    assert np.load(cmp).shape == (3, 20, 2 * 26 + 8)
    assert main([*args, "-o", str(tmp_path / "out.png")]) == 2
    assert main([*args, "-o", str(tmp_path / "o.npy"), "--lam", "2"]) == 2
    import usprior

    assert main([*args, "-o", str(tmp_path / "strong.npy"), "--strength", "2"]) == 0  # reaches the denoiser
    expected = usprior.denoise(np.load(src), method="ffdnet", checkpoint=model, batch=2, strength=2.0)
    np.testing.assert_allclose(np.load(tmp_path / "strong.npy"), expected, atol=1e-6)
