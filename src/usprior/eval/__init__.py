"""Evaluation: image-quality and contrast metrics, and the benchmark harness (``usprior bench``).

* :mod:`~usprior.eval.metrics` — PSNR, SSIM, CNR, gCNR, SNR, ENL, Tenengrad sharpness, ROI masks.
* :mod:`~usprior.eval.benchmark` — every registered denoiser tuned and measured on the same noisy inputs.
"""
