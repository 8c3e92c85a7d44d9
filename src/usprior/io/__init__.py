"""Files: images and cine stacks in and out, and checkpoint directories.

* :mod:`~usprior.io.images` — PNG / JPEG / TIFF / NPY reading and writing for the CLI and users.
* :mod:`~usprior.io.checkpoints` — the checkpoint resolver (shipped name | path), checksums, one cache.
"""
