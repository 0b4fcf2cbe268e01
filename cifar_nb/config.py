"""What a run computes, as one hashable value: `RunConfig`.

Everything that changes a run's numbers is a field here (or inside one of its dicts), so the config's hash
names the run's folder, and two runs with the same hash are the same run. Where a run executes (device,
precision, threads: cifar_nb.engine.runtime) and where its data lives are not, so they never change the hash.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

# The folder that holds the cifar_nb package: results/, benchmarks/ and the notebooks live there.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

RUN_KINDS = ("classifier", "gan", "diffusion")

# The shape a model is built for, per dataset known by name: a fact of the dataset, needed to count a
# config's parameters without touching any file.
DATASET_SHAPES = {
    "cifar100": dict(num_classes=100, image_size=32, in_channels=3),
    "cifar10": dict(num_classes=10, image_size=32, in_channels=3),
    "cifar10-jpeg": dict(num_classes=10, image_size=32, in_channels=3),
    "addnist": dict(num_classes=20, image_size=28, in_channels=3),
}


def dataset_shape(dataset: str) -> dict:
    """num_classes, image_size and in_channels of a dataset known by name (CIFAR-100's for any other)."""
    return DATASET_SHAPES.get(dataset, dict(num_classes=100, image_size=32, in_channels=3))


@dataclass
class RunConfig:
    """Everything that decides what a run computes. Kind-specific knobs live in the dicts."""

    experiment: str
    kind: str                                   # classifier | gan | diffusion
    model: str                                  # a name in cifar_nb.models.MODELS
    model_args: dict = field(default_factory=dict, metadata={"cli": "the model's constructor arguments"})
    dataset: str = field(default="cifar100", metadata={
        "cli": "cifar100 (the default), cifar10, cifar10-jpeg, addnist, imagefolder:<path>"})
    steps: int = field(default=1000, metadata={"cli": "optimisation steps"})
    batch_size: int = field(default=128, metadata={"cli": "images per step"})
    seed: int = 0
    optimizer: dict = field(default_factory=dict, metadata={"cli": 'e.g. {"name": "adam", "lr": 1e-3}'})
    scheduler: dict = field(default_factory=dict, metadata={"cli": 'e.g. {"name": "exponential", ...}, or none'})
    augment: dict = field(default_factory=dict, metadata={"cli": "see cifar_nb.engine.augment"})
    train: dict = field(default_factory=dict, metadata={
        "cli": "the trainer's knobs (label_smoothing, val_size, GAN tricks, fid_samples ...)"})
    eval_every: int = field(default=500, metadata={"cli": "steps between evaluations (generators: between logs x10)"})
    out_of_budget: bool = False

    def __post_init__(self):
        if self.kind not in RUN_KINDS:
            raise ValueError(f"kind must be one of {RUN_KINDS}, got {self.kind!r}")
        for name in ("steps", "batch_size", "eval_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown RunConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def with_changes(self, changes: dict) -> "RunConfig":
        """This config with changes written as on the command line: "FIELD.KEY" for one key of a dict field
        (`--set train.ema=0.999`), or a whole "FIELD" where a variant is another design rather than one piece."""
        cfg = self
        for dotted, value in changes.items():
            if "." not in dotted:
                cfg = cfg.replace(**{dotted: value})
                continue
            field_name, key = dotted.split(".", 1)
            cfg = cfg.replace(**{field_name: {**getattr(cfg, field_name), key: value}})
        return cfg

    @property
    def hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# The preview policy: a preview is a smoke test of the whole pipeline on 2 CPU cores, never a measurement.
# Enough steps to draw a curve and exercise every figure; everything else as small as still works.

PREVIEW_STEPS = {"classifier": 60, "gan": 60, "diffusion": 60}
PREVIEW_BATCH_SIZE = {"classifier": 64, "gan": 32, "diffusion": 32}
PREVIEW_SEEDS = (0, 1)
PREVIEW_FID_SAMPLES = 256        # images generated for FD-cls/KID (the protocol: 10,000)
PREVIEW_SAMPLE_STEPS = 20        # respaced DDPM sampler (report B samples with all 1,000)
PREVIEW_TRAIN_EVAL = 1000        # training images scored at each evaluation (default 10,000)
PREVIEW_FEATURE_STEPS = 60       # FD-cls feature classifier steps (the protocol: 2,000)


def derive(cfg: RunConfig, seed: int, dataset: str | None = None, steps: int | None = None,
           batch_size: int | None = None, fid_samples: int | None = None, preview: bool = False) -> RunConfig:
    """The run a notebook or the CLI asks for: a report's recipe `cfg` with its overrides, and in a preview the
    preview policy above. The one place where a recipe becomes another run's config."""
    changes: dict = {"seed": seed}
    if dataset is not None:
        changes["dataset"] = dataset
    if steps is not None and steps != cfg.steps:
        changes["steps"] = steps
        changes["eval_every"] = min(cfg.eval_every, max(1, steps // (3 if preview else 5)))
    if preview and cfg.kind == "classifier":
        changes["train"] = dict(cfg.train, train_eval_size=PREVIEW_TRAIN_EVAL)   # cheaper evaluations
    if batch_size is not None:
        changes["batch_size"] = batch_size
    if cfg.kind in ("gan", "diffusion"):
        train = dict(cfg.train)
        if fid_samples is not None:
            train["fid_samples"] = fid_samples
        if preview and cfg.kind == "diffusion":
            train["sample_steps"] = PREVIEW_SAMPLE_STEPS
        if preview:
            train["feature_steps"] = PREVIEW_FEATURE_STEPS
        changes["train"] = train
    return cfg.replace(**changes)
