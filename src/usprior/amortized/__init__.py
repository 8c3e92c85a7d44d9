"""Amortised (single forward pass) denoisers trained to imitate a teacher.

* :mod:`~usprior.amortized.ffdnet` — FFDNet with a noise-level map (the strength knob).
* :mod:`~usprior.amortized.pix2pix` — U-Net generator + conditional PatchGAN, L1 + adversarial loss.
* :mod:`~usprior.amortized.training` — teacher targets (:func:`make_pairs`), jitted train
  steps, validation PSNR and early stopping.
* :mod:`~usprior.amortized.scanner_pairs` — training pairs that look like scanners: randomised
  B-mode physics and real frames labelled by a teacher (real-frame distillation).
* :mod:`~usprior.amortized.adapt` — self-supervised (Neighbor2Neighbor) adaptation to a scanner.
* :mod:`~usprior.amortized.checkpoint` — orbax save / load of a model and its config.
* :mod:`~usprior.amortized.shuffle` — pixel (un)shuffle, padding to a multiple and cropping.

Every model takes any image size: inputs are reflect-padded to a multiple of the network's
downsampling factor and the output is cropped back. They run as denoisers through
:mod:`usprior.denoisers.networks`. The names below are loaded lazily (the GAN training code only
when it is used).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "checkpoint": ["AmortizedCheckpoint", "load_model", "save_model"],
        "ffdnet": ["FFDNet", "FFDNetConfig", "ffdnet_apply", "ffdnet_padded", "init_ffdnet"],
        "pix2pix": ["PatchGAN", "PatchGANConfig", "UNetConfig", "UNetGenerator", "discriminator_loss", "generator_loss", "init_patchgan", "init_unet", "pix2pix_apply", "pix2pix_padded"],
        "scanner_pairs": ["concat_pairs", "distilled_pairs", "flat_pairs", "randomized_pairs", "simulator_pairs"],
        "shuffle": ["crop", "pad_to_multiple", "pixel_shuffle", "pixel_unshuffle"],
        "training": ["BatchNormState", "EarlyStopping", "PairBatch", "Teacher", "clean_teacher", "create_ffdnet_state", "create_pix2pix_states", "evaluate", "ffdnet_train_step", "make_pairs", "pix2pix_train_step"],
    },
)
