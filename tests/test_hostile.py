"""Hostile input: each defect found by review gets a clear result or a clear error, never a silent wrong image."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.io

import usprior
from usprior.amortized.checkpoint import save_model
from usprior.amortized.ffdnet import FFDNetConfig, init_ffdnet
from usprior.cli import main
from usprior.io.images import read_image
from usprior.solvers.engine import solve_chunks
from usprior.validation import as_float_frames, check_int


def smooth(shape=(40, 44)) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (0.5 + 0.4 * np.sin(yy / 6.0) * np.cos(xx / 8.0)).astype(np.float32)


# --- integer arrays ---------------------------------------------------------------------------


def test_int64_from_a_float_image_is_read_as_8_bit():
    """``(img * 255).astype(int)`` used to be divided by iinfo(int64).max: a black image."""
    img = smooth()
    as_int = (img * 255).astype(int)
    np.testing.assert_array_equal(usprior.denoise(as_int, method="tv"), usprior.denoise(as_int.astype(np.uint8), method="tv"))
    assert as_float_frames(as_int).mean() == pytest.approx(img.mean(), abs=0.01)


def test_wide_integers_of_16_bit_range_and_beyond():
    img = smooth()
    as_12_bit = (img * 4095).astype(np.int32)  # values up to 4095: 16-bit data, divided by 65535
    np.testing.assert_allclose(as_float_frames(as_12_bit)[0], as_12_bit / 65535.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"beyond 16 bits: convert it to float in \[0, 1\] first"):
        usprior.denoise((img * 1e6).astype(np.int64), method="tv")
    with pytest.raises(ValueError, match="negative values"):
        usprior.denoise(np.full((40, 40), -3, np.int64), method="tv")


# --- (H, W, 1) and gray + alpha --------------------------------------------------------------


def test_a_trailing_channel_of_one_is_one_image():
    img = smooth()
    out = usprior.denoise(img[..., None], method="tv")
    np.testing.assert_array_equal(out, usprior.denoise(img, method="tv"))
    assert out.shape == img.shape


def test_gray_alpha_png_is_one_gray_image(tmp_path):
    gray = (smooth() * 255).astype(np.uint8)
    src = tmp_path / "la.png"
    skimage.io.imsave(src, np.stack([gray, np.full_like(gray, 255)], axis=-1), check_contrast=False)
    np.testing.assert_allclose(read_image(src), gray / 255.0, atol=1e-6)
    out = tmp_path / "out.png"
    assert main(["denoise", str(src), "-o", str(out), "--method", "tv"]) == 0
    assert skimage.io.imread(out).shape == gray.shape


# --- CLI: every check before the work --------------------------------------------------------


@pytest.fixture
def no_denoising(monkeypatch):
    """Fail the test if the CLI gets as far as building a denoiser."""

    def refuse(*args, **kwargs):
        raise AssertionError("the CLI started denoising before checking its arguments")

    monkeypatch.setattr(usprior.denoisers, "make_denoiser", refuse)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "in.png"
    skimage.io.imsave(path, (smooth() * 255).astype(np.uint8), check_contrast=False)
    return path


def cli_error(capsys, args: list[str], match: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("usprior: error: ") and match in err, err


def test_cli_unreadable_file(no_denoising, tmp_path, capsys):
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a PNG")
    cli_error(capsys, ["denoise", str(fake), "-o", str(tmp_path / "o.png")], f"cannot read {fake} as a .png file")


def test_cli_bad_outputs_are_refused_before_denoising(no_denoising, src, tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    cli_error(capsys, ["denoise", str(src), "-o", str(tmp_path / "adir")], "is a directory")
    cli_error(capsys, ["denoise", str(src), "-o", str(tmp_path / "afile" / "o.png")], "is a file, not a folder")
    cli_error(capsys, ["denoise", str(src), "-o", str(tmp_path / "o.bmp")], "unsupported output format '.bmp'")
    cli_error(capsys, ["denoise", str(src), "-o", str(src)], "is the input file")
    cli_error(capsys, ["denoise", str(src), "-o", str(tmp_path / "o.png"), "--compare", str(tmp_path / "o.png")],
              "--compare and -o name the same file")
    cli_error(capsys, ["denoise", str(src), "-o", str(tmp_path / "afile.png"), "--compare", str(src)], "is the input file")
    existing = tmp_path / "old.png"
    existing.write_bytes(b"precious")
    cli_error(capsys, ["denoise", str(src), "-o", str(existing)], "exists; pass --overwrite")
    assert existing.read_bytes() == b"precious"
    cli_error(capsys, ["denoise", str(src), "-o", str(tmp_path / "o.png"), "--method", "nope"], "unknown method 'nope'")
    stack = tmp_path / "cine.npy"
    np.save(stack, np.stack([smooth()] * 2))
    cli_error(capsys, ["denoise", str(stack), "-o", str(tmp_path / "o.png")], "PNG holds one image")
    assert not (tmp_path / "o.png").exists()


def test_cli_overwrite_replaces_and_matches_the_api(src, tmp_path):
    out = tmp_path / "out.npy"
    out.write_bytes(b"old")
    assert main(["denoise", str(src), "-o", str(out), "--method", "wnnm", "--sigma", "0.05", "--overwrite"]) == 0
    np.testing.assert_array_equal(np.load(out), usprior.denoise(read_image(src), method="wnnm", sigma=0.05))


def test_cli_written_png_matches_the_api(src, tmp_path):
    out = tmp_path / "out.png"
    assert main(["denoise", str(src), "-o", str(out), "--method", "nlm"]) == 0
    want = np.round(usprior.denoise(read_image(src), method="nlm") * 255).astype(np.uint8)
    np.testing.assert_array_equal(skimage.io.imread(out), want)


def test_cli_unwritable_folder(no_denoising, src, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if os.access(locked, os.W_OK):  # root ignores permission bits
            pytest.skip("running as a user who can write anywhere")
        cli_error(capsys, ["denoise", str(src), "-o", str(locked / "o.png")], "no write permission")
    finally:
        locked.chmod(0o700)


# --- blank images and damaged models -----------------------------------------------------------


def test_blank_image_with_the_default_sigma(tiny_checkpoint):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = usprior.denoise(np.zeros((24, 24), np.float32), checkpoint=tiny_checkpoint, steps=3, stride=8)
        assert np.all(np.isfinite(out))
        cine = np.stack([np.full((24, 24), 0.5, np.float32), smooth((24, 24))])
        assert np.all(np.isfinite(usprior.denoise(cine, checkpoint=tiny_checkpoint, steps=3, stride=8)))


def test_a_model_with_non_finite_parameters_says_it_is_damaged(tmp_path, capsys):
    cfg = FFDNetConfig(features=4, depth=3)
    variables = init_ffdnet(cfg, jax.random.key(0, impl="rbg"))
    variables = jax.tree_util.tree_map(lambda a: jnp.full_like(a, jnp.nan), variables)
    ckpt = save_model(cfg, variables, tmp_path / "nan_model", {"sigma_median": 0.1})
    with pytest.raises(ValueError, match="damaged model in .*non-finite values in .* parameter array"):
        usprior.denoise(smooth(), method="ffdnet", checkpoint=ckpt)
    src = tmp_path / "in.npy"
    np.save(src, smooth())
    cli_error(capsys, ["denoise", str(src), "-o", str(tmp_path / "o.npy"), "--method", "ffdnet", "--checkpoint", str(ckpt)],
              "damaged model")


def test_cli_damaged_checkpoint_is_one_line(tiny_checkpoint, tmp_path, capsys):
    import shutil

    ckpt = tmp_path / "prior"
    shutil.copytree(tiny_checkpoint, ckpt)
    target = max((f for f in (ckpt / "params").rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    src = tmp_path / "in.npy"
    np.save(src, smooth((24, 24)))
    cli_error(capsys, ["denoise", str(src), "-o", str(tmp_path / "o.npy"), "--checkpoint", str(ckpt)],
              "does not match its sha256")


# --- interrupting and absurd settings ----------------------------------------------------------


def test_ctrl_c_stops_within_one_chunk(monkeypatch):
    """Each chunk is waited for before the next is dispatched, so a Ctrl-C during a chunk ends the
    solve there: nothing queued behind it keeps the process busy."""
    from usprior.solvers import engine

    events = []
    wait = engine.jax.block_until_ready
    monkeypatch.setattr(engine.jax, "block_until_ready", lambda out: events.append("wait") or wait(out))

    def solve(y):
        events.append("solve")
        return jnp.asarray(y) * 2

    solve_chunks(solve, (np.ones((40, 3)),), chunk=16)
    assert events == ["solve", "wait"] * 3  # 40 patches in 3 balanced chunks of 14

    def interrupted(y):
        events.append("solve")
        if events.count("solve") == 5:  # Ctrl-C while the second chunk runs: Python's SIGINT handler
            raise KeyboardInterrupt     # raises this in the main thread (no real signal: CI may ignore SIGINT)
        return jnp.asarray(y) * 2

    with pytest.raises(KeyboardInterrupt):
        solve_chunks(interrupted, (np.ones((40, 3)),), chunk=4)
    assert events[6:] == ["solve", "wait", "solve"]  # the second chunk never finished, no third began


def test_cli_exits_130_on_ctrl_c(src, tmp_path, monkeypatch, capsys):
    class Interrupted(usprior.Denoiser):
        def denoise_frames(self, frames, sigma):
            raise KeyboardInterrupt

    monkeypatch.setattr(usprior.denoisers, "make_denoiser", lambda *a, **k: Interrupted())
    assert main(["denoise", str(src), "-o", str(tmp_path / "o.png")]) == 130
    assert "interrupted" in capsys.readouterr().err and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("value", [6.0, 1.5, True, "3", None])
def test_strict_integers(value):
    with pytest.raises(ValueError, match="must be an integer"):
        check_int(value, "n")
