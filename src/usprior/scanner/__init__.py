"""Real scanner data: the B-mode region of a screen image and denoising inside it only.

* :mod:`~usprior.scanner.mask` — the B-mode mask (regions, texture, shape; colour and annotations out).
* :mod:`~usprior.scanner.denoise` — denoise the masked gray pixels of a scan, every other pixel unchanged.
"""
