"""Training loops, one per run kind. Each is `train(ctx: RunContext) -> dict` of final metrics."""
from __future__ import annotations

import importlib

TRAINERS = {
    "classifier": "cifar_nb.train.classifier:train",
    "gan": "cifar_nb.train.gan:train",
    "diffusion": "cifar_nb.train.diffusion:train",
}


def trainer_for(kind: str):
    try:
        module, fn = TRAINERS[kind].split(":")
    except KeyError:
        raise ValueError(f"no trainer for run kind {kind!r}; known: {sorted(TRAINERS)}") from None
    return getattr(importlib.import_module(module), fn)
