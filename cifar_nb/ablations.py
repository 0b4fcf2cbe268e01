"""Ablations of our own recipes: each variant takes one piece out of a registered experiment's recipe.

    python -m cifar_nb ablate ours-classifier --steps 1000 --dataset cifar10-jpeg

runs every variant at that reduced budget (a labelled check, not a full-budget result), and the "Beyond the
reports" chapter reads them back by the same configs (`config`), so the table can only show runs that exist.
A variant is a name and the config keys it changes, written FIELD.KEY as on the command line (--set), or a whole
FIELD (no dot) where a variant is another design rather than one piece taken out.
"""
from __future__ import annotations

from cifar_nb import experiments
from cifar_nb.config import RunConfig

FULL_RECIPE = "full recipe"

# A variant's `where`: the datasets it means something on, None for all. Where the dataset switches a piece of the
# recipe off already ("auto" channel shuffling on photographs), taking it out is no variant. The spec names them;
# the engine's DatasetInfo.channel_order_invariant says the same (tests/test_beyond.py checks they agree).
EVERYWHERE = None
CHANNEL_SYMMETRIC = ("addnist",)
# report E's own dataset: its augmentation was chosen for handwritten digits, which stay legible turned and sheared
DIGITS = ("addnist",)
# report E's geometric augmentation, with its numbers (experiments.py's E-classifier); since it passed AddNIST's
# validation split it is the recipe there, and the crop is the variant
E_AFFINE = "report E's affine augmentation, in place of the crop"
CROP = "our 2-pixel crop, in place of report E's affine augmentation"
CROP_AUGMENT = experiments.get("ours-classifier").config.augment      # the recipe's augmentation on photographs
BEFORE_E_AFFINE = "the 2-pixel crop on AddNIST too, before report E's augmentation passed the validation split"
FIRST_GAN_DESIGN = "first design (SN discriminator, hinge loss, batch 64)"
# report C's training as it is, but for the EMA of G, which the recipe adds beside DiffAugment
NO_DIFFAUGMENT = "no DiffAugment (report C's training, with the EMA)"

ABLATIONS: dict[str, list[tuple[str, dict, tuple | None]]] = {
    "ours-classifier": [
        (FULL_RECIPE, {}, EVERYWHERE),
        ("no weight EMA", {"train.ema": None}, EVERYWHERE),
        ("no whitening stem (random init)", {"train.data_init": 0}, EVERYWHERE),
        ("no label smoothing", {"train.label_smoothing": 0.0}, EVERYWHERE),
        ("no test-time augmentation", {"train.tta": None}, EVERYWHERE),
        ("expansion before the pool (at every place)", {"model_args.pool_first": False}, EVERYWHERE),
        ("no channel shuffling", {"augment.channel_shuffle": 0}, CHANNEL_SYMMETRIC),
        # flip TTA's "auto" is none on AddNIST
        ("no channel symmetries (shuffling, test-time orders)", {"augment.channel_shuffle": 0, "train.tta": "auto"},
         CHANNEL_SYMMETRIC),
        # the recipe this chapter first ran: both of the above
        ("first recipe (expansion before the pool, no channel symmetries)",
         {"model_args.pool_first": False, "augment.channel_shuffle": 0, "train.tta": "auto"}, CHANNEL_SYMMETRIC),
        (E_AFFINE, {"augment.affine": experiments.get("E-classifier").config.augment["affine"], "augment.crop": 0},
         DIGITS),
        (CROP, {"augment": CROP_AUGMENT}, DIGITS),
    ],
    "ours-generator": [
        (FULL_RECIPE, {}, EVERYWHERE),
        ("no G weight EMA", {"train.ema": None}, EVERYWHERE),
        (NO_DIFFAUGMENT, {"train.diffaug": None}, EVERYWHERE),
        # the two suspects of the full recipe's collapse (D pinned at its 0.9/0.1 targets from ~13k steps):
        # a discriminator that learns too fast, and two-sided label smoothing (Salimans et al. 2016 warn
        # against smoothing the fake label)
        ("D at half the learning rate", {"train.d_lr_mult": 0.5}, EVERYWHERE),
        ("labels 1/0 (no label smoothing)", {"train.real_label": 1.0, "train.fake_label": 0.0}, EVERYWHERE),
        # the design this chapter first ran (models/ours_gan.py): a spectrally normalised D without BatchNorm,
        # the hinge loss, colour in DiffAugment too, batch 64
        (FIRST_GAN_DESIGN,
         {"model": "ours_gan", "model_args": {}, "batch_size": 64, "augment": {"hflip": "auto"},
          "train": {"loss": "hinge", "diffaug": "color,translation,cutout", "ema": 0.999,
                    "feature_steps": experiments.FEATURE_STEPS}}, EVERYWHERE),
    ],
}


# Earlier recipes of ours, by the changes that turn the registered recipe back into them: a run is found by its
# config, so the ablations measured on an earlier recipe stay readable after a piece of it changed (the tables'
# `base`). Each label says what the earlier recipe had.
EARLIER_RECIPES: dict[str, dict[str, dict]] = {
    "ours-classifier": {BEFORE_E_AFFINE: {"augment": CROP_AUGMENT}},
}


def earlier(name: str, base: str | None) -> dict:
    """The changes that turn `name`'s registered recipe back into an earlier one (EARLIER_RECIPES), {} for None."""
    if base is None:
        return {}
    known = EARLIER_RECIPES.get(name, {})
    if base not in known:
        raise ValueError(f"{name} has no earlier recipe {base!r}; earlier recipes: {', '.join(known) or 'none'}")
    return known[base]


def variants(name: str, dataset: str | None = None, only=None, base: str | None = None) -> list[tuple[str, dict]]:
    """(label, FIELD.KEY changes) of every ablation of `name`; with a dataset, only those that mean something on
    it and change the recipe there (`base`: an earlier recipe's label, EARLIER_RECIPES); with `only` (labels),
    only those, and the full recipe first always."""
    if name not in ABLATIONS:
        raise ValueError(f"no ablations are defined for {name!r}; defined: {', '.join(ABLATIONS)}")
    todo = [(label, changes) for label, changes, where in ABLATIONS[name]
            if where is EVERYWHERE or dataset is None or dataset in where]
    if dataset is not None:     # a variant that is the recipe itself here is no variant
        recipe = experiments.get(name).make_config(dataset=dataset).with_changes(earlier(name, base))
        todo = [(label, c) for label, c in todo if label == FULL_RECIPE or recipe.with_changes(c) != recipe]
    if only is not None:
        unknown = sorted(set(only) - {label for label, _ in todo})
        if unknown:
            raise ValueError(f"no ablation of {name}{f' on {dataset}' if dataset else ''} is labelled "
                             f"{', '.join(map(repr, unknown))}; labels: {', '.join(label for label, _ in todo)}")
        todo = [(label, c) for label, c in todo if label == FULL_RECIPE or label in only]
    return todo


def config(name: str, changes: dict, steps: int, dataset: str, seed: int = 0, base: str | None = None) -> RunConfig:
    """The recipe of `name` (or an earlier one, `base`) cut to `steps` on `dataset`, with one variant's FIELD.KEY
    changes applied."""
    recipe = experiments.get(name).make_config(steps=steps, dataset=dataset, seed=seed)
    return recipe.with_changes(earlier(name, base)).with_changes(changes)


def configs(name: str, steps: int, dataset: str, seed: int = 0, only=None,
            base: str | None = None) -> list[tuple[str, RunConfig]]:
    """(variant, config) for every ablation of `name` on `dataset` (or those in `only`), the full recipe first."""
    return [(label, config(name, changes, steps, dataset, seed, base))
            for label, changes in variants(name, dataset, only, base)]
