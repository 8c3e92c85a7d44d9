"""Prior training: the loss goes down, and a second call resumes from the orbax state."""

from __future__ import annotations

import json

import numpy as np

from conftest import TINY
from usprior.priors.training import TrainConfig, train_prior


class Ramps:
    """Smooth random ramp patches (N, 8, 8, 1) in [0, 1]: easy to model, quick to learn."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> np.ndarray:
        yy, xx = np.mgrid[0:8, 0:8] / 7.0
        a, b, c = (self.rng.uniform(0, 1, (3, n, 1, 1)) * [[[[0.3]]], [[[0.3]]], [[[0.4]]]])
        return (a * yy + b * xx + c)[..., None].astype(np.float32)


def test_training_lowers_loss_and_resumes(tmp_path):
    val = Ramps(99).sample(64)
    cfg = TrainConfig(steps=60, batch=32, learning_rate=3e-3, warmup=5, log_every=10, eval_every=30,
                      checkpoint_every=30)
    _, history = train_prior(TINY, Ramps, val, cfg, tmp_path)
    assert history[-1]["train_bpd"] < history[0]["train_bpd"] - 0.5
    assert history[-1]["val_bpd"] < history[0]["train_bpd"]
    assert (tmp_path / "ckpt" / "60").is_dir()

    longer = TrainConfig(**{**cfg.__dict__, "steps": 70})
    _, resumed = train_prior(TINY, Ramps, val, longer, tmp_path)
    assert [r["step"] for r in resumed] == [70]  # continued from step 60, not from scratch
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log][-2:] == [60, 70]
