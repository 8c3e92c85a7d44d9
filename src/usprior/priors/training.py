"""Maximum-likelihood training of the Glow patch prior with optax.

Loss: bits per dimension of uniformly dequantised patches,

    x~ = (255 x + u) / 256,  u ~ U(0, 1)^D
    bpd(x) = ( -log p(x~) / D + log 256 ) / log 2

i.e. the negative log-likelihood of the 8-bit quantised patch in bits per pixel. Optimiser:
Adam with global-norm gradient clipping and a linear-warmup cosine learning-rate schedule.
Training state is checkpointed with orbax every ``checkpoint_every`` steps and resumed from
the latest checkpoint in ``workdir`` when one exists.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from usprior.priors.glow import GlowConfig
from usprior.validation import check_int, check_positive
from usprior.priors.flow import FlowPrior, init_prior

Array = jax.Array


class PatchSource(Protocol):
    """Anything that draws batches of training patches, (n, P, P, C) float32 in [0, 1]."""

    def sample(self, n: int) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of :func:`train_prior`."""

    steps: int = 10_000
    batch: int = 64
    learning_rate: float = 1e-3
    warmup: int = 200
    clip_norm: float = 50.0
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "log_every", "eval_every", "checkpoint_every"):
            check_int(getattr(self, name), name)
        check_int(self.warmup, "warmup", 0)
        check_int(self.seed, "seed", 0)
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.clip_norm, "clip_norm")


def bits_per_dim(prior: FlowPrior, x: Array) -> Array:
    """Mean bits/dim of patches x (B, P, P, C) already on the 1/256 dequantisation grid."""
    d = math.prod(prior.event_shape)
    return jnp.mean((-prior.log_prob(x) / d + math.log(256.0)) / math.log(2.0))


def dequantize(key: Array, x: Array) -> Array:
    """x~ = (255 x + u) / 256 with u ~ U(0, 1): continuous values in [0, 1), same shape."""
    return (255.0 * x + jax.random.uniform(key, x.shape)) / 256.0


@jax.jit
def _dequantized_bpd(prior: FlowPrior, key: Array, x: Array) -> Array:
    return bits_per_dim(prior, dequantize(key, x))


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Adam with global-norm clipping and a warmup-cosine schedule over ``cfg.steps``."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, cfg.warmup, max(cfg.steps, cfg.warmup + 1), cfg.learning_rate * 0.05
    )
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), optax.adam(schedule))


def _train_step_fn(config: GlowConfig, opt: optax.GradientTransformation) -> Callable:
    def loss_fn(params: Any, key: Array, x: Array) -> Array:
        return _dequantized_bpd(FlowPrior(params, config), key, x)

    @jax.jit
    def step(params: Any, opt_state: Any, key: Array, x: Array) -> tuple[Any, Any, Array]:
        loss, grads = jax.value_and_grad(loss_fn)(params, key, x)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def evaluate_bpd(prior: FlowPrior, patches: np.ndarray, batch: int = 256, seed: int = 0) -> float:
    """Mean bits/dim over fixed patches (N, P, P, C), with fixed dequantisation noise."""
    keys = jax.random.split(jax.random.PRNGKey(seed), math.ceil(len(patches) / batch))
    total = 0.0
    for i, key in enumerate(keys):
        chunk = jnp.asarray(patches[i * batch : (i + 1) * batch])
        total += float(_dequantized_bpd(prior, key, chunk)) * len(chunk)
    return total / len(patches)


def train_prior(
    config: GlowConfig,
    sampler_factory: Callable[[int], PatchSource],
    val_patches: np.ndarray,
    cfg: TrainConfig,
    workdir: str | Path,
) -> tuple[FlowPrior, list[dict[str, float]]]:
    """Train a Glow prior; resumable. Returns the prior and the log (one dict per log line).

    ``sampler_factory(seed)`` builds the training patch source; it is re-seeded with
    ``(cfg.seed, start_step)`` on resume so a resumed run draws a deterministic stream.
    ``val_patches`` (N, P, P, C) are held-out patches for the validation bits/dim.
    Logs go to ``workdir/log.jsonl``; orbax checkpoints to ``workdir/ckpt``.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    opt = make_optimizer(cfg)
    key = jax.random.PRNGKey(cfg.seed)
    prior = init_prior(config, key, sampler_factory(cfg.seed).sample(max(256, cfg.batch)))
    state = {"params": prior.params, "opt_state": opt.init(prior.params), "step": 0}
    manager = ocp.CheckpointManager(
        workdir / "ckpt", options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
    )
    start = manager.latest_step()
    if start is not None:
        state = manager.restore(start, args=ocp.args.StandardRestore(state))
    start = int(state["step"])
    sampler = sampler_factory(cfg.seed * 1_000_003 + start)
    step_fn = _train_step_fn(config, opt)
    params, opt_state = state["params"], state["opt_state"]
    history: list[dict[str, float]] = []
    log_file = (workdir / "log.jsonl").open("a")
    t0 = time.perf_counter()
    running: list[float] = []
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train prior")
    for step in bar:
        x = jnp.asarray(sampler.sample(cfg.batch))
        params, opt_state, loss = step_fn(params, opt_state, jax.random.fold_in(key, step), x)
        running.append(float(loss))
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            record: dict[str, float] = {
                "step": done,
                "train_bpd": float(np.mean(running)),
                "seconds": time.perf_counter() - t0,
            }
            running = []
            if done % cfg.eval_every == 0 or done == cfg.steps:
                record["val_bpd"] = evaluate_bpd(FlowPrior(params, config), val_patches)
            bar.set_postfix({k: round(v, 3) for k, v in record.items() if k.endswith("bpd")})
            history.append(record)
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            state = {"params": params, "opt_state": opt_state, "step": done}
            manager.save(done, args=ocp.args.StandardSave(state))
    manager.wait_until_finished()
    manager.close()
    log_file.close()
    return FlowPrior(params, config), history
