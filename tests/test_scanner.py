"""Real scanner data end to end: DICOM in and out, the B-mode mask, annotations and colour kept.

The files are real ultrasound that ships offline with pydicom and pydicom-data
(usprior.io.examples)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pydicom
import pytest
import scipy.ndimage as ndi
import skimage.io

import usprior
from usprior.cli import main
from usprior.denoisers import function_factory, register_denoiser
from usprior.io.dicom import read_dicom
from usprior.io.examples import example_path
from usprior.io.scans import Scan, luminance, read_scan
from usprior.scanner.denoise import denoise_scan
from usprior.scanner.mask import bmode_mask, gray_pixels


@pytest.fixture
def identity(registry):
    register_denoiser("identity_test", function_factory(lambda image: image))
    return "identity_test"


def speckle_std(frames: np.ndarray, mask: np.ndarray) -> float:
    """Median over the mask's interior of the 7x7 local std: the speckle's strength."""
    f = frames.astype(np.float64)
    mean = ndi.uniform_filter(f, (1, 7, 7))
    std = np.sqrt(np.maximum(ndi.uniform_filter(f**2, (1, 7, 7)) - mean**2, 0))
    inner = ndi.binary_erosion(mask, iterations=6)
    return float(np.median(std[:, inner]))


def test_read_the_bundled_examples():
    cine = read_dicom(example_path("ybr_color"))
    assert cine.pixels.shape == (30, 240, 320, 3) and cine.pixels.dtype == np.uint8 and cine.color
    assert cine.frames.shape == (30, 240, 320) and cine.frame_time_ms == pytest.approx(33.333)
    assert cine.regions and not cine.tissue_regions  # the regions describe the 640x480 original
    assert cine.pixel_spacing_mm is None
    echo = read_dicom(example_path("epiq"))
    assert echo.pixels.shape == (1, 768, 1024) and not echo.color and echo.bits == 8
    assert echo.pixel_spacing_mm == pytest.approx((0.2548, 0.2548), abs=1e-4)  # PhysicalDelta 0.02548 cm
    aloka = read_dicom(example_path("aloka"))
    assert aloka.color and aloka.pixels.dtype == np.uint8 and len(aloka.tissue_regions) == 2  # 16-bit palette shown as RGB
    gray = aloka.pixels[0][aloka.pixels[0].max(-1) == aloka.pixels[0].min(-1)]
    np.testing.assert_allclose(aloka.frames[0][aloka.pixels[0].max(-1) == aloka.pixels[0].min(-1)], gray[:, 0] / 255, atol=1e-6)


def test_take_selects_frames_and_keeps_the_rest():
    scan = read_scan(example_path("ybr_color"))
    part = scan.take(slice(3, 5))
    np.testing.assert_array_equal(part.pixels, scan.pixels[3:5])
    np.testing.assert_array_equal(part.frames, scan.frames[3:5])
    assert (part.bits, part.frame_time_ms, part.regions, part.header) == (scan.bits, scan.frame_time_ms, scan.regions, scan.header)


def test_cine_mask_excludes_text_and_the_status_bar():
    scan = read_scan(example_path("ybr_color"))
    mask = bmode_mask(scan)
    assert 0.1 < mask.mean() < 0.4
    assert not mask[222:].any()  # the bottom status bar
    assert not mask[:30, :70].any() and not mask[:, 290:].any()  # burned-in text left and right
    assert mask[120, 160]  # the heart


def test_mask_leaves_out_colour_legends_with_their_gray_labels():
    """The lymph node's power-Doppler colour bars carry gray "PWR" labels above and below and a gray
    ramp beside them (neither near-white nor lines); the Doppler blobs beside tissue do not cut it."""
    scan = read_scan(example_path("rgb_color"))
    mask = bmode_mask(scan)
    assert not mask[69:75, 5:19].any() and not mask[109:115, 5:19].any()  # "PWR" above / below the left bar
    assert not mask[76:109, 4:8].any()  # the gray ramp beside it
    assert not mask[69:115, 296:316].any()  # the right bar's labels and ramp
    assert mask[150, 160] and mask[140, 30] and mask[60, 150]  # tissue below, left and above the node
    assert mask[130, 60]  # gray tissue between Doppler blobs


def test_colour_legend_rule_on_a_synthetic_screen():
    """A static colour rectangle (the legend) takes its gray label with it; Doppler-like colour
    blobs, a colour rectangle that moves (not static graphics) and a wide status band do not
    remove the tissue around them."""
    rng = np.random.default_rng(0)
    t, h, w = 3, 200, 300
    gray = np.zeros((t, h, w), np.uint8)
    gray[:, 20:180, 10:290] = rng.integers(40, 160, size=(t, 160, 280))  # speckle-like tissue
    pixels = np.repeat(gray[..., None], 3, axis=-1)
    pixels[:, 60:100, 20:30] = (250, 120, 20)  # the legend, in every frame
    pixels[:, 52:57, 20:30] = 215  # its gray label, 3 px above the bar
    yy, xx = np.mgrid[:h, :w]
    pixels[:, (yy - 60) ** 2 / 100 + (xx - 200) ** 2 / 400 + 0.3 * np.sin(xx / 2.0) < 1] = (255, 60, 0)  # a Doppler-like blob
    for k in range(t):  # a colour rectangle that moves
        pixels[k, 120:140, 60 + 20 * k : 70 + 20 * k] = (250, 200, 0)
    pixels[:, 185:200, :] = (0, 0, 120)  # a status band below the image (> 2 % of the frame)
    scan = Scan(pixels=pixels, frames=luminance(pixels, 8), bits=8)
    mask = bmode_mask(scan)
    assert not mask[52:57, 20:30].any() and not mask[50:110, 10:40].any()  # legend + label: grown by 10 px
    assert mask[140, 95] and mask[60, 170] and mask[60, 230]  # beside the moving rectangle and the blob
    assert mask[175, 150]  # above the status band


def _acceptance(tmp_path, name: str, method: str = "ffdnet"):
    out = tmp_path / f"{name}.dcm"
    assert main(["denoise", f"example:{name}", "-o", str(out), "--method", method]) == 0
    before, after = pydicom.dcmread(example_path(name)), pydicom.dcmread(out)
    return before, after


def _common_checks(before, after, method):
    assert after.SOPInstanceUID != before.SOPInstanceUID and after.SeriesInstanceUID != before.SeriesInstanceUID
    assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
    assert list(after.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert f"usprior {usprior.__version__}" in after.DerivationDescription and method in after.DerivationDescription
    for tag in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "Modality", "SequenceOfUltrasoundRegions"):
        assert after.get(tag) == before.get(tag)
    assert after.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_acceptance_sonosite_cine(tmp_path):
    """ffdnet as the acceptance names it; speckle is checked with nlm, because the shipped
    ffdnet_us brightens real cardiac frames (the learned-denoiser issue retrains it)."""
    before, after = _acceptance(tmp_path, "ybr_color")
    _common_checks(before, after, "ffdnet")
    assert int(after.NumberOfFrames) == 30 and (after.Rows, after.Columns) == (240, 320)
    assert float(after.FrameTime) == pytest.approx(33.333)
    a, b = before.pixel_array, after.pixel_array
    assert b.shape == a.shape == (30, 240, 320, 3)
    np.testing.assert_array_equal(b[:, 222:], a[:, 222:])  # the status bar
    np.testing.assert_array_equal(b[:, :30, :70], a[:, :30, :70])  # "PLA Gen THI"
    np.testing.assert_array_equal(b[:, :, 290:], a[:, :, 290:])  # the right-hand text column
    scan = read_scan(example_path("ybr_color"))
    mask = bmode_mask(scan)
    assert main(["denoise", "example:ybr_color", "-o", str(tmp_path / "nlm.dcm"), "--method", "nlm"]) == 0
    assert speckle_std(read_scan(tmp_path / "nlm.dcm").frames, mask) < 0.8 * speckle_std(scan.frames, mask)


def test_acceptance_epiq_frame(tmp_path):
    before, after = _acceptance(tmp_path, "epiq")
    _common_checks(before, after, "ffdnet")
    assert after.PhotometricInterpretation == "MONOCHROME2" and after.BitsStored == 8
    a, b = before.pixel_array, after.pixel_array
    np.testing.assert_array_equal(b[:240, :350], a[:240, :350])  # the measurement text block
    np.testing.assert_array_equal(b[690:], a[690:])  # the ECG trace and heart rate
    scan = read_scan(example_path("epiq"))
    mask = bmode_mask(scan)
    for y, x in ((318, 628), (435, 690)):  # the two caliper crosses inside the sector: white, outlined black
        window = (slice(y - 6, y + 7), slice(x - 6, x + 7))
        cross = (a[window] == 255) | (a[window] == 0)
        assert cross.sum() > 30
        np.testing.assert_array_equal(b[window][cross], a[window][cross])
    assert main(["denoise", "example:epiq", "-o", str(tmp_path / "nlm.dcm"), "--method", "nlm"]) == 0  # see the cine test
    smooth = pydicom.dcmread(tmp_path / "nlm.dcm").pixel_array
    assert speckle_std(smooth[None] / 255.0, mask) < 0.8 * speckle_std(a[None] / 255.0, mask)


def test_acceptance_power_doppler_lymph_node(tmp_path):
    before, after = _acceptance(tmp_path, "rgb_color", method="nlm")
    _common_checks(before, after, "nlm")
    a, b = before.pixel_array.astype(int), after.pixel_array.astype(int)
    assert after.PhotometricInterpretation == "RGB" and b.shape == a.shape
    colour = (a.max(-1) - a.min(-1)) > 0
    assert colour.sum() > 5000
    np.testing.assert_array_equal(b[colour], a[colour])  # every colour pixel bit-identical
    changed = (a != b).any(-1)
    assert changed.mean() > 0.2 and (b[changed][:, 0] == b[changed][:, 1]).all()  # denoised pixels stay gray
    np.testing.assert_array_equal(b[:50], a[:50])  # the header text


def test_identity_round_trip_is_bit_identical(tmp_path, identity):
    for name in ("ybr_color", "epiq", "aloka"):
        out = tmp_path / f"{name}.dcm"
        assert main(["denoise", f"example:{name}", "-o", str(out), "--method", identity]) == 0
        np.testing.assert_array_equal(read_scan(out).pixels, read_scan(example_path(name)).pixels)


def test_sixteen_bit_monochrome_round_trip(tmp_path, identity):
    ds = pydicom.dcmread(example_path("epiq"))
    pixels = ds.pixel_array.astype(np.uint16) * 257
    ds.PixelData, ds.BitsAllocated, ds.BitsStored, ds.HighBit = pixels.tobytes(), 16, 16, 15
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    src = tmp_path / "echo16.dcm"
    ds.save_as(src, enforce_file_format=True)
    scan = read_scan(src)
    assert scan.bits == 16 and scan.pixels.dtype == np.uint16
    np.testing.assert_allclose(scan.frames, read_scan(example_path("epiq")).frames, atol=1e-6)
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.dcm"), "--method", "nlm"]) == 0
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.BitsStored == 16 and out.pixel_array.dtype == np.uint16
    np.testing.assert_array_equal(out.pixel_array[:240, :350], pixels[:240, :350])


def test_mask_options(tmp_path, capsys):
    src = example_path("rgb_color")
    scan = read_scan(src)
    mask = np.zeros(scan.shape, np.uint8)
    mask[100:140, 100:200] = 255
    skimage.io.imsave(tmp_path / "mask.png", mask, check_contrast=False)
    assert main(["denoise", str(src), "-o", str(tmp_path / "a.png"), "--method", "nlm", "--mask", str(tmp_path / "mask.png")]) == 0
    out = skimage.io.imread(tmp_path / "a.png").astype(int)
    changed = (out != scan.pixels[0]).any(-1)
    assert changed.any() and not changed[mask == 0].any()
    assert main(["denoise", str(src), "-o", str(tmp_path / "b.png"), "--method", "nlm", "--mask", "none"]) == 0
    every = (skimage.io.imread(tmp_path / "b.png").astype(int) != scan.pixels[0]).any(-1)
    assert every.sum() > changed.sum() and not every[~gray_pixels(scan)[0]].any()
    skimage.io.imsave(tmp_path / "small.png", np.zeros((10, 10), np.uint8), check_contrast=False)
    assert main(["denoise", str(src), "-o", str(tmp_path / "c.png"), "--mask", str(tmp_path / "small.png")]) == 2
    assert "has shape (10, 10), but the frames are (240, 320)" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_denoise_scan_keeps_everything_outside(identity):
    scan = read_scan(example_path("ybr_color"))
    mask = bmode_mask(scan)
    result = denoise_scan(scan, usprior.make_denoiser("nlm"), mask)
    outside = ~result.written
    np.testing.assert_array_equal(result.pixels[outside], scan.pixels[outside])
    assert result.written.any() and not result.written[:, ~mask].any()
    with pytest.raises(ValueError, match="does not match the frames"):
        denoise_scan(scan, usprior.make_denoiser("nlm"), mask[:-1])


def test_cine_outputs_gif_tiff_and_compare(tmp_path):
    import imageio.v3 as iio
    import tifffile

    src = "example:ybr_color"
    assert main(["denoise", src, "-o", str(tmp_path / "o.gif"), "--method", "nlm", "--compare", str(tmp_path / "c.gif")]) == 0
    assert iio.imread(tmp_path / "o.gif").shape[1:3] == (240, 320)
    assert iio.imread(tmp_path / "c.gif").shape[1:3] == (240, 2 * 320 + 8)
    assert main(["denoise", src, "-o", str(tmp_path / "o.tif"), "--method", "nlm"]) == 0
    assert tifffile.imread(tmp_path / "o.tif").shape == (30, 240, 320, 3)


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ("text", "is not a readable DICOM file"),
        ("no_pixels", "holds no pixel data"),
        ("decoder", "install its decoder: pip install pylibjpeg-libjpeg"),
    ],
)
def test_bad_dicom_inputs(tmp_path, capsys, monkeypatch, setup, match):
    src = tmp_path / "bad.dcm"
    if setup == "text":
        src.write_text("not a DICOM file")
    elif setup == "no_pixels":
        ds = pydicom.dcmread(example_path("epiq"))
        del ds.PixelData
        ds.save_as(src, enforce_file_format=True)
    else:
        src.write_bytes(example_path("ybr_color").read_bytes())

        def missing(self):
            raise RuntimeError("Unable to decompress 'JPEG Baseline (Process 1)' pixel data because all plugins are missing dependencies")

        monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(missing))
    out = tmp_path / "out.dcm"
    assert main(["denoise", str(src), "-o", str(out), "--method", "nlm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert not out.exists()


def test_non_us_modality_warns(tmp_path):
    ds = pydicom.dcmread(example_path("epiq"))
    ds.Modality = "MR"
    src = tmp_path / "mr.dcm"
    ds.save_as(src, enforce_file_format=True)
    with pytest.warns(UserWarning, match="modality 'MR', not US"):
        read_scan(src)


def test_map_on_an_ultrasound_dicom_runs_with_its_b_mode_settings(tmp_path):
    """file_method: map -> map_bmode for a DICOM of modality US, unless noise is given; any other
    method, and any input without DICOM metadata or of another modality, keeps its method."""
    from usprior.scanner.files import FileSettings, file_method

    us = read_scan(example_path("epiq"))
    assert file_method(FileSettings("map"), us) == "map_bmode"
    assert file_method(FileSettings("map", {"noise": "auto"}), us) == "map"
    assert file_method(FileSettings("map", {"start": "blur"}), us) == "map_bmode"  # other options ride along
    assert file_method(FileSettings("nlm"), us) == "nlm"
    skimage.io.imsave(tmp_path / "export.png", (us.frames[0] * 255).astype(np.uint8), check_contrast=False)
    assert file_method(FileSettings("map"), read_scan(tmp_path / "export.png")) == "map"
    ds = pydicom.dcmread(example_path("epiq"))
    ds.Modality = "MR"
    ds.save_as(tmp_path / "mr.dcm", enforce_file_format=True)
    with pytest.warns(UserWarning, match="not US"):
        assert file_method(FileSettings("map"), read_scan(tmp_path / "mr.dcm")) == "map"


def test_the_cli_denoises_each_file_by_its_own_method(tmp_path, capsys, identity, monkeypatch):
    """Single file and folder mode build the denoiser file_method names (here a stand-in pair:
    identity for other inputs, halving for ultrasound DICOMs), record it in the output, say so."""
    from usprior.scanner import files

    register_denoiser("halve_test", function_factory(lambda image: 0.5 * image))
    monkeypatch.setattr(files, "BMODE_METHODS", {identity: "halve_test"})
    out = tmp_path / "out.dcm"
    assert main(["denoise", "example:epiq", "-o", str(out), "--method", identity]) == 0
    text = capsys.readouterr().out
    assert "runs with its B-mode settings, as halve_test" in text and "by halve_test" in text
    before, after = pydicom.dcmread(example_path("epiq")), pydicom.dcmread(out)
    assert "method halve_test" in after.DerivationDescription
    mask = bmode_mask(read_scan(example_path("epiq")))
    assert after.pixel_array[mask].astype(int).sum() < 0.6 * before.pixel_array[mask].astype(int).sum()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(example_path("epiq").read_bytes())
    skimage.io.imsave(folder / "b.png", (np.random.default_rng(0).uniform(0.2, 0.8, (40, 40)) * 255).astype(np.uint8),
                      check_contrast=False)
    assert main(["denoise", str(folder), "-o", str(tmp_path / "out"), "--method", identity]) == 0
    assert f"by halve_test and {identity}" in capsys.readouterr().out
    np.testing.assert_array_equal(skimage.io.imread(tmp_path / "out" / "b.png"), skimage.io.imread(folder / "b.png"))


def test_dicom_output_needs_a_dicom_input(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.full((40, 40), 0.5, np.float32))
    assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "a.dcm"), "--method", "nlm"]) == 2
    assert "DICOM output needs a DICOM input" in capsys.readouterr().err


def test_folder_mode_is_resumable_and_reports_failures(tmp_path, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.dcm").write_bytes(example_path("rgb_color").read_bytes())
    (folder / "sub" / "b.dcm").write_bytes(example_path("epiq").read_bytes())
    skimage.io.imsave(folder / "c.png", (np.random.default_rng(0).uniform(0, 1, (40, 40)) * 255).astype(np.uint8), check_contrast=False)
    (folder / "broken.dcm").write_text("no")
    assert main(["denoise", str(folder), "-o", str(out), "--method", "nlm"]) == 2
    captured = capsys.readouterr()
    assert "denoised 3 file(s)" in captured.out and "frames/s" in captured.out and "1 failed" in captured.out
    assert "broken.dcm" in captured.err
    assert (out / "a.dcm").is_file() and (out / "sub" / "b.dcm").is_file() and (out / "c.png").is_file()
    stamp = (out / "a.dcm").stat().st_mtime_ns
    (folder / "broken.dcm").unlink()
    assert main(["denoise", str(folder), "-o", str(out), "--method", "nlm"]) == 0
    assert "skipped 3 existing" in capsys.readouterr().out and (out / "a.dcm").stat().st_mtime_ns == stamp


def test_png_screen_export_keeps_colour(tmp_path):
    scan = read_scan(example_path("rgb_color"))
    src = tmp_path / "export.png"
    skimage.io.imsave(src, scan.pixels[0], check_contrast=False)
    assert main(["denoise", str(src), "-o", str(tmp_path / "o.png"), "--method", "nlm", "--mask", "auto"]) == 0
    out = skimage.io.imread(tmp_path / "o.png")
    colour = ~gray_pixels(scan)[0]
    np.testing.assert_array_equal(out[colour], scan.pixels[0][colour])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy.deepcopy(scan)


def test_folder_mode_on_two_dask_workers_writes_the_same_files(tmp_path):
    """local:2 starts two worker processes; every output equals the single-process run's."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        np.save(folder / f"f{i}.npy", rng.uniform(0, 1, (36, 40)).astype(np.float32))
    (folder / "echo.dcm").write_bytes(example_path("rgb_color").read_bytes())
    assert main(["denoise", str(folder), "-o", str(tmp_path / "one"), "--method", "nlm"]) == 0
    assert main(["denoise", str(folder), "-o", str(tmp_path / "two"), "--method", "nlm", "--dask", "local:2"]) == 0
    for i in range(3):
        assert (tmp_path / "one" / f"f{i}.npy").read_bytes() == (tmp_path / "two" / f"f{i}.npy").read_bytes()
    one, two = (pydicom.dcmread(tmp_path / d / "echo.dcm") for d in ("one", "two"))
    np.testing.assert_array_equal(one.pixel_array, two.pixel_array)
    assert one.SOPInstanceUID != two.SOPInstanceUID  # each run derives its own instance


def test_outputs_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    assert main(["denoise", "example:rgb_color", "-o", str(tmp_path / "o.dcm"), "--method", "nlm",
                 "--compare", str(tmp_path / "c.png")]) == 0
    mask = os.umask(0)
    os.umask(mask)
    for name in ("o.dcm", "c.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask
