"""Benchmark plug-in: WNNM exactly as it labelled ``ffdnet_wnnm``'s training pairs.

``wnnm_teacher``: WNNM with sigma = 4 x the noise std (``train_amortized.py --teacher wnnm
--teacher-scale 4``), so the student (the built-in ``ffdnet_wnnm`` preset) can be compared with
its teacher on the same inputs. The shipped networks (``ffdnet``, ``ffdnet_wnnm``, ``pix2pix``,
``unrolled``) are built-in denoisers with their tuning grids; nothing else is needed for them.
Used by docs/amortized.md:

    PYTHONPATH=experiments usprior bench --plugin amortized_plugin --methods ffdnet ffdnet_wnnm wnnm_teacher ...
"""

from __future__ import annotations

import usprior

usprior.register_denoiser(
    "wnnm_teacher", "usprior.denoisers.classical:wnnm", grid={"sigma": (4.0,)}, noise_scaled=("sigma",),
    description="WNNM as the teacher of ffdnet_wnnm", replace=True,
)
