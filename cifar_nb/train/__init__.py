"""Training loops, one per run kind. Each is `train(ctx: RunContext) -> dict` of final metrics."""
from __future__ import annotations

import importlib

TRAINERS = {
    "classifier": "cifar_nb.train.classifier:train",
    "gan": "cifar_nb.train.gan:train",
    "diffusion": "cifar_nb.train.diffusion:train",
}


LOADERS = {"gan": "cifar_nb.train.gan:load_handle", "diffusion": "cifar_nb.train.diffusion:load_handle"}


def handle_loader_for(kind: str):
    """load_handle(cfg, generator.pt path, device) of a generator kind: its trained model as a sampling handle."""
    try:
        module, fn = LOADERS[kind].split(":")
    except KeyError:
        raise ValueError(f"no generator loader for run kind {kind!r}; known: {sorted(LOADERS)}") from None
    return getattr(importlib.import_module(module), fn)


def trainer_for(kind: str):
    try:
        module, fn = TRAINERS[kind].split(":")
    except KeyError:
        raise ValueError(f"no trainer for run kind {kind!r}; known: {sorted(TRAINERS)}") from None
    return getattr(importlib.import_module(module), fn)
