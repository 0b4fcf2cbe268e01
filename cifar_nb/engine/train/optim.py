"""Optimisers and schedulers from the plain dicts of a RunConfig.

    optimizer: {"name": "adam"|"adamw"|"sgd"|"rmsprop"|"adagrad", "lr": ..., <torch.optim kwargs>}
    scheduler: {"name": "cyclic"|"exponential"|"onecycle"|"step"|"cosine", "every": N, <kwargs>}

`every` is how many optimisation steps pass between scheduler steps (default 1). It lets a
per-epoch schedule such as report B's "exponential decay 0.98" run on a step-counting loop:
every = steps per epoch at the report's batch size.
"""
from __future__ import annotations

import torch

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def build_optimizer(params, spec: dict) -> torch.optim.Optimizer:
    spec = dict(spec)
    name = spec.pop("name", "adam")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}")
    if "betas" in spec:
        spec["betas"] = tuple(spec["betas"])
    return OPTIMIZERS[name](params, **spec)


def build_scheduler(opt: torch.optim.Optimizer, spec: dict, total_steps: int):
    """Returns (scheduler or None, every)."""
    if not spec:
        return None, 1
    spec = dict(spec)
    name = spec.pop("name")
    every = int(spec.pop("every", 1))
    S = torch.optim.lr_scheduler
    if name == "cyclic":
        spec.setdefault("cycle_momentum", False)   # Adam has no 'momentum' for CyclicLR to cycle
        sched = S.CyclicLR(opt, **spec)
    elif name == "exponential":
        sched = S.ExponentialLR(opt, **spec)
    elif name == "onecycle":
        sched = S.OneCycleLR(opt, total_steps=max(1, total_steps // every), **spec)
    elif name == "step":
        sched = S.StepLR(opt, **spec)
    elif name == "cosine":
        sched = S.CosineAnnealingLR(opt, T_max=max(1, total_steps // every), **spec)
    else:
        raise ValueError(f"unknown scheduler {name!r}; known: cyclic, exponential, onecycle, step, cosine")
    return sched, every
