"""A scan as read from a file: the displayed pixels, their luminance and the acquisition metadata.

Every input of the CLI becomes a :class:`Scan`, whatever its format:

* DICOM (:mod:`usprior.io.dicom`): gray (MONOCHROME1/2, 8 or 16 bits) or colour (RGB, YBR,
  PALETTE COLOR shown as RGB), single frames or cines, with frame time and ultrasound regions;
* PNG / JPEG screen exports: gray or RGB(A) (alpha dropped; gray + alpha keeps the gray);
* TIFF / NPY stacks (T, H, W) or images (H, W): integer or float in [0, 1].

``pixels`` are the displayed values, (T, H, W) or (T, H, W, 3), unsigned integers (or float32
in [0, 1] for float inputs); ``frames`` their luminance, float32 (T, H, W) in [0, 1]: gray
pixels divided by 2^bits - 1, colour pixels by ``skimage.color.rgb2gray`` (so a gray pixel,
R = G = B, has luminance R / 255 exactly). :func:`write_scan` writes a result in the format of
the output suffix.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from usprior.validation import as_float_frames, integer_scale

SCAN_SUFFIXES = (".dcm", ".dicom", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")
OUTPUT_SUFFIXES = (".dcm", ".png", ".tif", ".tiff", ".npy", ".gif")


@dataclasses.dataclass(frozen=True)
class Region:
    """One item of a DICOM SequenceOfUltrasoundRegions, in pixels (bounds inclusive).

    ``spatial_format`` 1 is a 2-D image and ``data_type`` 1 tissue (B-mode); ``delta_*_mm`` the
    physical size of a pixel in mm (None unless the region's units are cm).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    spatial_format: int = 0
    data_type: int = 0
    delta_x_mm: float | None = None
    delta_y_mm: float | None = None

    @property
    def is_tissue(self) -> bool:
        return self.spatial_format == 1 and self.data_type == 1

    def fits(self, shape: tuple[int, int]) -> bool:
        """Whether the region lies inside an image of ``shape`` = (H, W) (regions written for the
        scanner's frame do not fit a downsized copy)."""
        return 0 <= self.x0 <= self.x1 < shape[1] and 0 <= self.y0 <= self.y1 < shape[0]


@dataclasses.dataclass(frozen=True)
class Scan:
    """See the module docstring. ``bits``: bit depth of integer pixels (0 for float pixels);
    ``single``: the input was one 2-D image (written back as one); ``header``: the DICOM dataset
    without its pixel data (None for other formats); ``source``: the file read."""

    pixels: np.ndarray
    frames: np.ndarray
    bits: int
    frame_time_ms: float | None = None
    regions: tuple[Region, ...] = ()
    header: Any = None
    source: Path | None = None
    single: bool = False

    @property
    def color(self) -> bool:
        return self.pixels.ndim == 4

    def take(self, keep: slice) -> Scan:
        """The frames ``keep`` of the scan (pixels and luminance alike), the rest of it unchanged."""
        return dataclasses.replace(self, pixels=self.pixels[keep], frames=self.frames[keep])

    @property
    def shape(self) -> tuple[int, int]:
        return self.frames.shape[1], self.frames.shape[2]

    @property
    def tissue_regions(self) -> tuple[Region, ...]:
        """The 2-D tissue regions that fit the pixel array."""
        return tuple(r for r in self.regions if r.is_tissue and r.fits(self.shape))

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        """(dy, dx) in mm of the first fitting tissue region with physical deltas, else None."""
        for r in self.tissue_regions:
            if r.delta_x_mm and r.delta_y_mm:
                return r.delta_y_mm, r.delta_x_mm
        return None


def luminance(pixels: np.ndarray, bits: int) -> np.ndarray:
    """Luminance float32 (T, H, W) in [0, 1] of display pixels (see the module docstring)."""
    import skimage.color

    if pixels.ndim == 4:
        return skimage.color.rgb2gray(pixels.astype(np.float64) / (2**bits - 1)).astype(np.float32)
    if bits == 0:
        return pixels.astype(np.float32)
    return (pixels.astype(np.float64) / (2**bits - 1)).astype(np.float32)


def _read_array(path: Path) -> np.ndarray:
    import skimage.io
    import tifffile

    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix in (".tif", ".tiff"):
            return tifffile.imread(path)
        return skimage.io.imread(path)
    except Exception as err:  # decoders raise many types (OSError, ValueError, SyntaxError, ...)
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read {path} as a {suffix} file: {text}") from None


def read_scan(path: str | os.PathLike) -> Scan:
    """Read any supported input (see the module docstring) as a :class:`Scan`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unsupported
    suffix, a file that cannot be decoded, or pixel data that is not a usable image.
    """
    from usprior.io.dicom import is_dicom, read_dicom

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {path}")
    suffix = path.suffix.lower()
    if is_dicom(path):
        return read_dicom(path)
    if suffix not in SCAN_SUFFIXES:
        raise ValueError(f"unsupported input format {suffix!r} of {path}: use {', '.join(SCAN_SUFFIXES)}")
    arr = _read_array(path)
    image_file = suffix not in (".npy",)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if image_file and arr.ndim == 3 and arr.shape[-1] == 2:
        arr = arr[..., 0]  # gray + alpha
    color = image_file and arr.ndim in (3, 4) and arr.shape[-1] in (3, 4)
    if color:
        arr = arr[..., :3]
    single = arr.ndim == (3 if color else 2)
    pixels = arr[None] if single else arr
    if pixels.ndim != (4 if color else 3):
        raise ValueError(f"{path} must hold an image (H, W) or a stack of frames (T, H, W), got shape {arr.shape}")
    if color:
        if pixels.dtype != np.uint8 or pixels.size == 0:
            raise ValueError(f"{path}: colour images must be non-empty 8-bit RGB, got {pixels.dtype} {pixels.shape}")
        frames, bits = luminance(pixels, 8), 8
    else:
        frames = as_float_frames(pixels, min_size=1, name=str(path))
        if np.issubdtype(pixels.dtype, np.integer):
            bits = 8 if integer_scale(pixels) == 255 else 16
            pixels = pixels.astype(np.uint8 if bits == 8 else np.uint16)
        else:
            bits, pixels = 0, frames
    return Scan(pixels=pixels, frames=frames, bits=bits, source=path, single=single)


def check_output_suffix(path: Path, scan: Scan) -> None:
    """Raise ``ValueError`` when ``path``'s format cannot hold the scan's result."""
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"unsupported output format {suffix!r} of {path}: use {', '.join(OUTPUT_SUFFIXES)}")
    if suffix == ".png" and len(scan.frames) != 1:
        raise ValueError(f"{path}: PNG holds one image; write a stack of {len(scan.frames)} frames as .tif, .npy, .gif or .dcm")
    if suffix == ".dcm" and scan.header is None:
        raise ValueError(f"{path}: DICOM output needs a DICOM input (its patient, study and acquisition tags)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Any) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it into place with the
    permissions a plain new file would get (mkstemp makes 0600 files); on any error nothing is
    left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def display_pixels(scan: Scan, frames: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """8-bit (or the scan's integer) display pixels: ``pixels`` for integer scans, the quantised
    ``frames`` for float scans."""
    if scan.bits:
        return pixels
    return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)


def write_scan(path: str | os.PathLike, scan: Scan, frames: np.ndarray, pixels: np.ndarray, method: str) -> Path:
    """Write a result of ``scan`` by the suffix of ``path`` (checked with :func:`check_output_suffix`).

    ``frames``: the result's luminance, float32 (T, H, W); ``pixels``: its display pixels (the
    scan's shape and dtype). DICOM, PNG and GIF hold display pixels; TIFF and NPY hold float32
    luminance for gray scans and the RGB pixels for colour scans. Written atomically.
    """
    import imageio.v3 as iio
    import skimage.io
    import tifffile

    path = Path(path)
    check_output_suffix(path, scan)
    suffix = path.suffix.lower()
    if suffix == ".dcm":
        from usprior.io.dicom import write_dicom

        return write_dicom(path, scan, pixels, method)
    shown = display_pixels(scan, frames, pixels)
    if suffix == ".png":
        return atomic_write(path, lambda tmp: skimage.io.imsave(tmp, shown[0], check_contrast=False))
    if suffix == ".gif":
        duration = scan.frame_time_ms or 100.0
        return atomic_write(path, lambda tmp: iio.imwrite(tmp, shown, extension=".gif", duration=duration, loop=0))
    data = pixels if scan.color else frames.astype(np.float32)
    data = data[0] if scan.single else data
    if suffix == ".npy":
        return atomic_write(path, lambda tmp: np.save(tmp, data))
    return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, data, photometric="rgb" if scan.color else "minisblack"))
