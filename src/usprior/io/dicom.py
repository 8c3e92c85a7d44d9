"""DICOM in and out with pydicom: ultrasound frames, their metadata, and derived series.

Reading (:func:`read_dicom`) decodes every transfer syntax pydicom and the pylibjpeg plug-ins
handle (JPEG baseline / lossless, JPEG-LS, JPEG 2000, RLE, uncompressed) and returns a
:class:`usprior.io.scans.Scan`: the displayed pixels (gray (T, H, W) or RGB (T, H, W, 3); YBR
is converted to RGB by pydicom, PALETTE COLOR through its lookup table), the luminance in [0, 1]
and the metadata a user needs: frame time, pixel spacing in mm from the
SequenceOfUltrasoundRegions, the regions themselves.

Writing (:func:`write_dicom`) makes a *derived* instance of the input: the same patient, study
and acquisition tags, the frame time, the regions, with new SOPInstanceUID and
SeriesInstanceUID, ImageType DERIVED\\SECONDARY, a DerivationDescription naming usprior's
version and the method, and uncompressed pixels (Explicit VR Little Endian): MONOCHROME2 for
gray input, RGB for colour input (a palette image comes back as the RGB it displayed).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from usprior.io.scans import Region, Scan, atomic_write, luminance

_LIBJPEG, _OPENJPEG = ("pylibjpeg-libjpeg", "libjpeg"), ("pylibjpeg-openjpeg", "openjpeg")
DECODERS = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG,  # JPEG baseline
    "1.2.840.10008.1.2.4.51": _LIBJPEG,  # JPEG extended
    "1.2.840.10008.1.2.4.57": _LIBJPEG,  # JPEG lossless
    "1.2.840.10008.1.2.4.70": _LIBJPEG,  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": _LIBJPEG,  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": _LIBJPEG,  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": _OPENJPEG,  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": _OPENJPEG,  # JPEG 2000
}
"""Compressed transfer syntax -> (PyPI package, module) of its decoder (named in the error when missing)."""

_PALETTE_TAGS = (
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "PaletteColorLookupTableUID",
)


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM Part 10 file (the ``DICM`` marker at byte 128) or ends in ``.dcm``."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _regions(ds: Any) -> tuple[Region, ...]:
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions", []):
        try:
            out.append(Region(
                x0=int(item.RegionLocationMinX0), y0=int(item.RegionLocationMinY0),
                x1=int(item.RegionLocationMaxX1), y1=int(item.RegionLocationMaxY1),
                spatial_format=int(item.get("RegionSpatialFormat", 0)), data_type=int(item.get("RegionDataType", 0)),
                delta_x_mm=_mm(item, "X"), delta_y_mm=_mm(item, "Y"),
            ))
        except (AttributeError, TypeError, ValueError):
            continue  # an incomplete region item describes nothing usable
    return tuple(out)


def _mm(item: Any, axis: str) -> float | None:
    """PhysicalDelta in mm when the region's units are cm (code 3), else None."""
    if int(item.get(f"PhysicalUnits{axis}Direction", 0)) != 3:
        return None
    delta = float(item.get(f"PhysicalDelta{axis}", 0.0))
    return 10.0 * abs(delta) if delta else None


def read_dicom(path: str | os.PathLike) -> Scan:
    """Read an ultrasound DICOM file (single frame or cine) as a :class:`Scan`.

    Raises ``ValueError`` (one line) for a file that is not DICOM, one without pixel data, a
    compressed transfer syntax whose decoder is missing (naming the package to install) and
    pixel data that cannot be decoded; warns (``UserWarning``) for a modality other than US.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_color_lut

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {path}")
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path} is not a readable DICOM file: {_first_line(err)}") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ValueError(f"{path} holds no pixel data (a DICOM {ds.get('SOPClassUID', 'object')!s} without an image)")
    if ds.get("Modality", "US") != "US":
        warnings.warn(f"{path} has modality {ds.get('Modality')!r}, not US: usprior's models are for ultrasound", stacklevel=2)
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    try:
        pixels = ds.pixel_array
    except Exception as err:  # pydicom raises RuntimeError / NotImplementedError / ValueError for decoders
        package, module = DECODERS.get(syntax, (None, None))
        missing = module is not None and (importlib.util.find_spec(module) is None or "missing" in str(err).lower())
        hint = f"; install its decoder: pip install {package}" if missing else ""
        raise ValueError(f"cannot decode the pixel data of {path} ({ds.file_meta.TransferSyntaxUID.name}){hint}: "
                         f"{_first_line(err)}") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
        if pixels.dtype != np.uint8:  # 16-bit LUT entries: the 8 most significant bits are what was shown
            pixels = (pixels >> 8).astype(np.uint8)
    color = pixels.ndim == (4 if frames > 1 else 3)
    if frames == 1:
        pixels = pixels[None]
    if photometric == "MONOCHROME1":
        pixels = (np.iinfo(pixels.dtype).max if pixels.dtype.kind == "u" else pixels.max()) - pixels
    if pixels.dtype.kind not in "u":
        raise ValueError(f"{path}: signed or float pixel data ({pixels.dtype}) is not a B-mode display image")
    bits = int(ds.get("BitsStored", 8)) if not color else 8
    header = copy.deepcopy(ds)
    del header.PixelData
    time = ds.get("FrameTime")
    return Scan(
        pixels=np.ascontiguousarray(pixels),
        frames=luminance(pixels, bits),
        bits=bits,
        frame_time_ms=float(time) if time not in (None, "") else None,
        regions=_regions(ds),
        header=header,
        source=path,
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def write_dicom(path: str | os.PathLike, scan: Scan, pixels: np.ndarray, method: str) -> Path:
    """Write ``pixels`` (the scan's shape and dtype) as a derived DICOM instance of ``scan``.

    The file goes to a temporary name in the same folder and is renamed into place.
    """
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    import usprior

    if scan.header is None:
        raise ValueError("DICOM output needs a DICOM input (its patient, study and acquisition tags)")
    if pixels.shape != scan.pixels.shape or pixels.dtype != scan.pixels.dtype:
        raise ValueError(f"pixels {pixels.shape} {pixels.dtype} do not match the scan {scan.pixels.shape} {scan.pixels.dtype}")
    ds = copy.deepcopy(scan.header)
    for tag in _PALETTE_TAGS:
        if tag in ds:
            delattr(ds, tag)
    n, rows, cols = pixels.shape[:3]
    ds.Rows, ds.Columns = rows, cols
    if scan.color:
        ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = "RGB", 3, 0
    else:
        ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
        if "PlanarConfiguration" in ds:
            del ds.PlanarConfiguration
    ds.BitsAllocated = 8 * pixels.dtype.itemsize
    ds.BitsStored = scan.bits
    ds.HighBit = scan.bits - 1
    ds.PixelRepresentation = 0
    if n > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = n
    ds.PixelData = np.ascontiguousarray(pixels if n > 1 else pixels[0]).tobytes()
    ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    kept = [str(v) for v in ds.get("ImageType", [])][2:]
    ds.ImageType = ["DERIVED", "SECONDARY", *kept]
    ds.DerivationDescription = (f"usprior {usprior.__version__} denoise, method {method}; "
                                "pixels outside the B-mode mask and colour pixels unchanged")
    if "SeriesDescription" in ds:
        ds.SeriesDescription = f"{ds.SeriesDescription} (usprior {method})"[:64]
    return atomic_write(Path(path), lambda tmp: ds.save_as(tmp, enforce_file_format=True))
