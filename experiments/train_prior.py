"""Train the Glow patch prior on sagittal MNI152 slices (+ natural images) and save it.

Example (the shipped checkpoint, see docs/training.md for the exact command and its log):

    python experiments/train_prior.py --out src/usprior/checkpoints/glow_mri --workdir runs/glow_mri

Resumes from ``<workdir>/ckpt`` if a previous run was interrupted. Validation bits/dim are
computed on MRI patches of the held-out *validation* sagittal band (never trained on).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import jax

from usprior.priors.flow import save_prior
from usprior.priors.data import training_sampler
from usprior.priors.glow import GlowConfig
from usprior.priors.training import TrainConfig, train_prior


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument("--workdir", type=Path, required=True, help="run directory (log, resume state)")
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--depth", type=int, default=4, help="flow steps per level")
    p.add_argument("--hidden", type=int, default=32, help="coupling-network channels")
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--natural-fraction", type=float, default=0.2)
    p.add_argument("--uniform-fraction", type=float, default=0.1)
    p.add_argument("--val-patches", type=int, default=2048)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = GlowConfig(levels=args.levels, depth=args.depth, hidden=args.hidden)
    cfg = TrainConfig(
        steps=args.steps, batch=args.batch, learning_rate=args.lr, eval_every=args.eval_every,
        checkpoint_every=args.eval_every, seed=args.seed,
    )
    val = training_sampler("validation", natural_fraction=0.0, seed=10_000 + args.seed).sample(args.val_patches)

    def factory(seed: int):
        return training_sampler(
            "train", natural_fraction=args.natural_fraction, uniform_fraction=args.uniform_fraction, seed=seed
        )

    t0 = time.perf_counter()
    prior, history = train_prior(config, factory, val, cfg, args.workdir)
    wall = time.perf_counter() - t0
    last = history[-1]
    metadata = {
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "train": dataclasses.asdict(cfg),
        "data": {
            "train": "MNI152 sagittal 'train' band + bundled natural images",
            "natural_fraction": args.natural_fraction,
            "uniform_fraction": args.uniform_fraction,
            "validation": "MNI152 sagittal 'validation' band, MRI only",
        },
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()}), {platform.machine()}",
        "wall_seconds_this_run": round(wall, 1),
        "final_train_bpd": round(last["train_bpd"], 4),
        "final_val_bpd": round(last["val_bpd"], 4),
        "n_parameters": int(sum(x.size for x in jax.tree_util.tree_leaves(prior.params))),
    }
    save_prior(prior, args.out, metadata)
    print(json.dumps(metadata, indent=2))


if __name__ == "__main__":
    main()
