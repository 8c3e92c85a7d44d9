"""Amortised (single forward pass) denoisers trained to imitate a teacher.

* :mod:`~usprior.amortized.ffdnet` — FFDNet with a noise-level map (the strength knob).
* :mod:`~usprior.amortized.pix2pix` — U-Net generator + conditional PatchGAN, L1 + adversarial loss.
* :mod:`~usprior.amortized.unrolled` — deep-unfolded latent MAP: K learned gradient steps.
* :mod:`~usprior.amortized.training` — teacher targets (:func:`make_pairs`), jitted train
  steps, validation PSNR and early stopping.
* :mod:`~usprior.amortized.checkpoint` — orbax save / load of a model and its config.
* :mod:`~usprior.amortized.shuffle` — pixel (un)shuffle, padding to a multiple and cropping.

Every model takes any image size: inputs are reflect-padded to a multiple of the network's
downsampling factor and the output is cropped back.
"""

from usprior.amortized.checkpoint import AmortizedCheckpoint, load_model, save_model
from usprior.amortized.ffdnet import FFDNet, FFDNetConfig, ffdnet_apply, ffdnet_denoise, init_ffdnet
from usprior.amortized.pix2pix import (
    PatchGAN,
    PatchGANConfig,
    UNetConfig,
    UNetGenerator,
    discriminator_loss,
    generator_loss,
    init_patchgan,
    init_unet,
    pix2pix_apply,
    pix2pix_denoise,
)
from usprior.amortized.shuffle import crop, pad_to_multiple, pixel_shuffle, pixel_unshuffle
from usprior.amortized.training import (
    BatchNormState,
    EarlyStopping,
    PairBatch,
    Teacher,
    clean_teacher,
    create_ffdnet_state,
    create_pix2pix_states,
    evaluate,
    ffdnet_train_step,
    make_pairs,
    pix2pix_train_step,
)
from usprior.amortized.unrolled import (
    UnrolledConfig,
    UnrolledState,
    create_unrolled_state,
    init_unrolled,
    patch_start,
    unrolled_denoise,
    unrolled_latents,
    unrolled_loss,
    unrolled_patches,
    unrolled_train_step,
)

__all__ = [
    "AmortizedCheckpoint",
    "BatchNormState",
    "EarlyStopping",
    "FFDNet",
    "FFDNetConfig",
    "PairBatch",
    "PatchGAN",
    "PatchGANConfig",
    "Teacher",
    "UNetConfig",
    "UNetGenerator",
    "UnrolledConfig",
    "UnrolledState",
    "clean_teacher",
    "create_ffdnet_state",
    "create_pix2pix_states",
    "create_unrolled_state",
    "crop",
    "discriminator_loss",
    "evaluate",
    "ffdnet_apply",
    "ffdnet_denoise",
    "ffdnet_train_step",
    "generator_loss",
    "init_ffdnet",
    "init_patchgan",
    "init_unet",
    "init_unrolled",
    "load_model",
    "make_pairs",
    "pad_to_multiple",
    "patch_start",
    "pix2pix_apply",
    "pix2pix_denoise",
    "pix2pix_train_step",
    "pixel_shuffle",
    "pixel_unshuffle",
    "save_model",
    "unrolled_denoise",
    "unrolled_latents",
    "unrolled_loss",
    "unrolled_patches",
    "unrolled_train_step",
]
