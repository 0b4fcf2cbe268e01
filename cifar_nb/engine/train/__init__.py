"""Training loops, one per run kind. Each is `train(ctx: RunContext) -> dict` of final metrics; a generator
kind also has `load_handle(cfg, weights, device, sampling_mode)`, its trained model as a sampling handle."""
from __future__ import annotations

from cifar_nb.engine.train import classifier, diffusion, gan

TRAINERS = {"classifier": classifier.train, "gan": gan.train, "diffusion": diffusion.train}
LOADERS = {"gan": gan.load_handle, "diffusion": diffusion.load_handle}


def _for_kind(table: dict, kind: str, what: str):
    try:
        return table[kind]
    except KeyError:
        raise ValueError(f"no {what} for run kind {kind!r}; known: {sorted(table)}") from None


def trainer_for(kind: str):
    return _for_kind(TRAINERS, kind, "trainer")


def handle_loader_for(kind: str):
    return _for_kind(LOADERS, kind, "generator loader")
