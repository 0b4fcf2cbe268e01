"""Ablations of our own recipes: each variant takes one piece out of a registered experiment's recipe.

    python -m cifar_nb ablate ours-classifier --steps 1000 --dataset cifar10-jpeg

runs every variant at that reduced budget (a labelled check, not a full-budget result), and the "Beyond the
reports" chapter reads them back by the same configs (`config`), so the table can only show runs that exist.
A variant is a name and the config keys it changes, written FIELD.KEY as on the command line (--set).
"""
from __future__ import annotations

from cifar_nb import experiments
from cifar_nb.config import RunConfig

FULL_RECIPE = "full recipe"

ABLATIONS: dict[str, list[tuple[str, dict]]] = {
    "ours-classifier": [
        (FULL_RECIPE, {}),
        ("no weight EMA", {"train.ema": None}),
        ("no whitening stem (random init)", {"train.data_init": 0}),
        ("no label smoothing", {"train.label_smoothing": 0.0}),
        ("no flip test-time augmentation", {"train.tta": None}),
    ],
}


def variants(name: str) -> list[tuple[str, dict]]:
    if name not in ABLATIONS:
        raise ValueError(f"no ablations are defined for {name!r}; defined: {', '.join(ABLATIONS)}")
    return ABLATIONS[name]


def config(name: str, changes: dict, steps: int, dataset: str, seed: int = 0) -> RunConfig:
    """The recipe of `name` cut to `steps` on `dataset`, with one variant's FIELD.KEY changes applied."""
    cfg = experiments.get(name).make_config(steps=steps, dataset=dataset, seed=seed)
    for dotted, value in changes.items():
        field_name, key = dotted.split(".", 1)
        cfg = cfg.replace(**{field_name: {**getattr(cfg, field_name), key: value}})
    return cfg


def configs(name: str, steps: int, dataset: str, seed: int = 0) -> list[tuple[str, RunConfig]]:
    """(variant, config) for every ablation of `name`, the full recipe first."""
    return [(label, config(name, changes, steps, dataset, seed)) for label, changes in variants(name)]
