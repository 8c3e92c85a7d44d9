"""Cyst phantoms: a uniform reflectivity with disk lesions and the region masks of contrast metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from usprior.validation import check_nonnegative, check_positive, check_shape, check_unit

__all__ = ["DEFAULT_LESIONS", "Lesion", "Phantom", "cyst_phantom"]


class Lesion(NamedTuple):
    """A disk lesion of a :func:`cyst_phantom`.

    Attributes:
        value: reflectivity inside the disk, in [0, 1].
        center: (row, column) of the centre as fractions of the image (height, width).
        radius: radius as a fraction of the shorter image side, > 0.
    """

    value: float
    center: tuple[float, float]
    radius: float


DEFAULT_LESIONS: Mapping[str, Lesion] = MappingProxyType(
    {
        "anechoic": Lesion(0.0, (0.5, 0.2), 0.1),
        "hypoechoic": Lesion(0.25, (0.5, 0.5), 0.1),
        "hyperechoic": Lesion(0.9, (0.5, 0.8), 0.1),
    }
)
"""Default lesions of :func:`cyst_phantom`: three disks side by side at mid depth."""


class Phantom(NamedTuple):
    """Result of :func:`cyst_phantom`.

    Attributes:
        image: (H, W) float32 reflectivity in [0, 1].
        masks: region name -> (H, W) bool mask: one per lesion (the disk shrunk by the
            margin) and ``"background"`` (farther than the margin from every lesion edge and
            from the image border). The masks are pairwise disjoint.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]


def _lesion_disks(
    lesions: Mapping[str, Lesion], shape: tuple[int, int]
) -> dict[str, tuple[float, float, float]]:
    """Validate the lesions and return name -> (row, column, radius) in pixels.

    Raises ``ValueError`` for the reserved name ``"background"``, a value outside [0, 1],
    a radius <= 0 or two overlapping disks.
    """
    if "background" in lesions:
        raise ValueError("'background' is reserved for the background mask; rename that lesion")
    side = min(shape)
    disks = {}
    for name, lesion in lesions.items():
        check_unit(lesion.value, f"value of lesion {name!r}")
        radius = check_positive(lesion.radius, f"radius of lesion {name!r}") * side
        disks[name] = (lesion.center[0] * shape[0], lesion.center[1] * shape[1], radius)
    names = list(disks)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            (ra, ca, rad_a), (rb, cb, rad_b) = disks[a], disks[b]
            if math.hypot(ra - rb, ca - cb) < rad_a + rad_b:
                raise ValueError(f"lesions {a!r} and {b!r} overlap")
    return disks


def cyst_phantom(
    shape: tuple[int, int] = (256, 256),
    background: float = 0.5,
    lesions: Mapping[str, Lesion] = DEFAULT_LESIONS,
    margin: float = 0.03,
) -> Phantom:
    """Reflectivity phantom: a uniform background with disk lesions, plus contrast-metric masks.

    Pixel ``(i, j)`` has centre ``(i + 0.5, j + 0.5)``; a lesion with fractional centre
    ``(cr, cc)`` and radius ``r`` covers ``dist((i + 0.5, j + 0.5), (cr H, cc W)) <= r min(H, W)``.
    With ``m = margin * min(H, W)`` pixels, a lesion mask keeps ``dist <= R - m`` and the
    background mask keeps pixels with ``dist >= R + m`` for every lesion and at least ``m``
    from the image border (away from PSF blur and edge effects, for CNR / gCNR).

    Args:
        shape: (H, W) in pixels.
        background: background reflectivity in [0, 1].
        lesions: name -> :class:`Lesion`; the default is an anechoic (0.0), a hypoechoic
            (0.25) and a hyperechoic (0.9) disk (:data:`DEFAULT_LESIONS`). Disks may not overlap.
        margin: mask margin as a fraction of the shorter side, >= 0.

    Returns:
        A :class:`Phantom`.

    Raises:
        ValueError: a shape that is not two integers >= 1, values outside [0, 1], a radius
            <= 0, overlapping lesions, a lesion named ``"background"`` or a negative margin.
    """
    height, width = check_shape(shape)
    check_nonnegative(margin, "margin")
    disks = _lesion_disks(lesions, (height, width))
    m = margin * min(height, width)
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    image = np.full((height, width), check_unit(background, "background"), dtype=np.float32)
    masks: dict[str, np.ndarray] = {}
    outside = np.minimum.reduce([rows, cols, height - rows, width - cols]) >= m
    for name, (row, col, radius) in disks.items():
        dist = np.hypot(rows - row, cols - col)
        image[dist <= radius] = lesions[name].value
        masks[name] = dist <= radius - m
        outside &= dist >= radius + m
    masks["background"] = outside
    return Phantom(image=image, masks=masks)
