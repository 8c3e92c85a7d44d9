"""Real ultrasound files that ship offline inside PyPI packages, by name.

``pydicom`` bundles a few (``pydicom.examples``); the optional ``pydicom-data`` package
(``pip install "usprior[examples]"``) many more. The CLI takes ``example:NAME`` wherever it
takes an input file. Which of them usprior trains or tunes on and which it keeps for evaluation
is written down in docs/real_data.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES: dict[str, tuple[str, str, str]] = {
    "ybr_color": ("pydicom", "ybr_color", "SonoSite cardiac cine, 30 frames 240x320, YBR_FULL_422 JPEG"),
    "rgb_color": ("pydicom", "rgb_color", "GE LOGIQ 700 lymph node with power Doppler, 240x320 RGB"),
    "jpeg2k": ("pydicom", "jpeg2k", "the rgb_color lymph node at 480x640, JPEG 2000"),
    "palette_color": ("pydicom", "palette_color", "Philips CX50 obstetric, 350x800 PALETTE COLOR"),
    "epiq": ("pydicom-data", "JPGLosslessP14SV1_1s_1f_8b.dcm", "Philips EPIQ 7C adult echo, 768x1024 MONOCHROME2"),
    "sonosite_cine": ("pydicom-data", "color3d_jpeg_baseline.dcm", "SonoSite cardiac cine, 120 frames 480x640 (ybr_color's loop)"),
    "aloka": ("pydicom-data", "gdcm-US-ALOKA-16.dcm", "ALOKA SSD-4000 pelvis, two B-mode panels, 480x640 palette"),
    "philips_ob": ("pydicom-data", "OBXXXX1A.dcm", "Philips CX50 obstetric, 600x800 palette"),
}
"""name -> (package, file name in it, description)."""

PREFIX = "example:"


def example_path(name: str) -> Path:
    """The file of the example ``name`` (a key of :data:`EXAMPLES`).

    Raises ``ValueError`` for an unknown name and ``ModuleNotFoundError`` naming the package to
    install when the package that ships it is missing.
    """
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; examples: {', '.join(sorted(EXAMPLES))}")
    package, file, _ = EXAMPLES[name]
    if package == "pydicom":
        from pydicom import examples

        return Path(examples.get_path(file))
    if importlib.util.find_spec("data_store") is None:  # pydicom-data's module; without it pydicom would download
        raise ModuleNotFoundError(f"example {name!r} ships in pydicom-data: pip install pydicom-data")
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file(file))


def resolve_input(text: str | Path) -> Path:
    """``example:NAME`` -> its file; anything else is a path."""
    text = str(text)
    return example_path(text[len(PREFIX):]) if text.startswith(PREFIX) else Path(text)
