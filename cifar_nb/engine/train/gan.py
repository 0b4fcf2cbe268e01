"""Training loop for the DCGANs of reports A, C and E and for our own GAN (kind "gan").

One step = one discriminator update on a real batch and a generated batch, then one generator update
on the same generated batch (the PyTorch DCGAN tutorial's loop). Loss: binary cross-entropy, computed
as BCEWithLogits on D's logits, which is sigmoid + BCE in one numerically stable op (safe under bf16
autocast); the generator uses the usual non-saturating target 1 for its fakes (ganhacks' "flip the
labels when training G"); `noisy_labels` is the other kind of flipping, some of D's targets swapped.
G and D get their own optimiser built from cfg.optimizer (the reports: Adam, betas (0.5, 0.999)) and
their own scheduler from cfg.scheduler (report A: StepLR). Our GAN (ours-generator) adds two knobs to report C's
recipe: DiffAugment on every image D sees (real and fake, in both updates; engine/augment/diffaug.py) and an EMA of
G's weights, which is then what is saved as the generator and sampled and scored; its first design
(models/ours_gan.py, now an ablation) also used the hinge loss.

    cfg.train keys         default   meaning
    real_label             1.0       D's target for real images (report C's "adjusted labels": 0.9)
    fake_label             0.0       D's target for generated images
    soft_labels            0.0       s: real targets drawn from [real_label - s, real_label], fake from
                                     [fake_label, fake_label + s] (report E: 0.1)
    noisy_labels           0.0       fraction of D's targets flipped to 1 - target (report E: 0.1)
    instance_noise         0.0       std of Gaussian noise added to every image D sees, at step 0 (E: 0.25)
    instance_noise_decay   1.0       that std is multiplied by this every step (E: 0.9997)
    resize                 None      train at this size: batches are bilinearly resized on the device
                                     (report A: 64)
    interpolation          "slerp"   latent interpolation in the figures: "slerp" (A) or "lerp" (C)
    fid_samples            10000     images generated for FD-cls/KID (and FID where possible)
    feature_steps          2000      steps of the FD-cls feature network (experiments.FEATURE_STEPS);
                                     in the config, so in its hash (previews: fewer)
    sample_batch           500       images per sampling batch
    log_every              eval_every // 10
    compile                False     True: torch.compile G and D whatever the runtime says (a runtime
                                     setting now, kept because it is in old configs' hashes)
    loss                   "bce"     "bce" (the above) or "hinge": D minimises mean(relu(1 - D(real))) +
                                     mean(relu(1 + D(fake))), G minimises -mean(D(fake)) (no targets: the
                                     label knobs above must keep their defaults)
    diffaug                None      DiffAugment policy, e.g. "color,translation,cutout", applied to real and
                                     fake images (before instance noise) whenever D sees them
    ema                    None      EMA decay of G's weights (e.g. 0.999; BatchNorm buffers averaged too):
                                     generator.pt holds the average (the trained G as "generator_live"), and
                                     samples, scores and figures come from it
    d_lr_mult              1.0       D's learning rate as a multiple of the optimizer's (G's): two time-scale
                                     updates (Heusel et al. 2017), e.g. lr 1e-4 with 4.0
d_real / d_fake are the mean sigmoid of D's logits whatever the loss (under hinge a score, not a probability).

How it runs is the run's Runtime (cifar_nb.engine.runtime; never part of the config): the caller's (ctx.runtime:
the queue, --fp32, CIFAR_NB_PRECISION=fp32) or the measured default for the model family on the device (on CUDA
bf16 autocast with channels_last). Its bf16 autocast, channels_last and torch.compile apply to G's and D's forward
passes on any device, in training and in sampling and scoring alike; the losses are computed in fp32 from logits
cast with .float(). A checkpoint resumes under any runtime.

cfg.augment takes only {"hflip": p} (p a probability, or "auto": 0.5 where a mirror image keeps its label, none
on AddNIST): images must stay in [-1, 1] for the tanh generator.
Targets, noise, latents and flips of step s come from a generator seeded by (seed, s), and the data
order of epoch e from one seeded by (seed, e), so a resumed run needs no RNG state to match an
uninterrupted one; the instance-noise level is a function of the step.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import replace
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cifar_nb.engine import data as datasets
from cifar_nb.engine.augment import flip_probability
from cifar_nb.engine.augment.diffaug import diff_augment, parse_policy
from cifar_nb.engine.artifacts import atomic_torch_save
from cifar_nb.engine.evaluate.generator import evaluate_generator
from cifar_nb.engine.runtime import Runtime, default_runtime, family_of
from cifar_nb.engine.train.batches import EpochBatches, mix_seed
from cifar_nb.engine.train.loop import Steps, run_steps
from cifar_nb.engine.train.optim import build_optimizer, build_scheduler
from cifar_nb.experiments import FEATURE_STEPS
from cifar_nb.models import build_for_config

DEFAULTS = dict(real_label=1.0, fake_label=0.0, soft_labels=0.0, noisy_labels=0.0, instance_noise=0.0,
                instance_noise_decay=1.0, resize=None, interpolation="slerp", fid_samples=10_000,
                sample_batch=500, log_every=None, compile=False, feature_steps=FEATURE_STEPS, loss="bce",
                diffaug=None, ema=None, d_lr_mult=1.0)
STATS = ("loss_d", "loss_g", "d_real", "d_fake")
LOSSES = ("bce", "hinge")
LABEL_KNOBS = ("real_label", "fake_label", "soft_labels", "noisy_labels")


def options(cfg) -> dict:
    unknown = set(cfg.train) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown gan train keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if set(cfg.augment) - {"hflip"}:
        raise ValueError(f"the GAN trainer takes only augment={{'hflip': p}} (images must stay in [-1, 1]); "
                         f"got {cfg.augment}")
    o = {**DEFAULTS, **cfg.train}
    for k in ("soft_labels", "noisy_labels"):
        if not 0 <= o[k] < 0.5:
            raise ValueError(f"train[{k!r}] must be in [0, 0.5), got {o[k]}")
    if o["interpolation"] not in ("slerp", "lerp"):
        raise ValueError(f"train['interpolation'] must be 'slerp' or 'lerp', got {o['interpolation']!r}")
    if o["loss"] not in LOSSES:
        raise ValueError(f"train['loss'] must be one of {LOSSES}, got {o['loss']!r}")
    if o["loss"] == "hinge" and any(o[k] != DEFAULTS[k] for k in LABEL_KNOBS):
        raise ValueError(f"the hinge loss has no targets: {', '.join(LABEL_KNOBS)} are BCE knobs and must keep "
                         "their defaults")
    parse_policy(o["diffaug"])      # raises on a policy it does not know
    if not (isinstance(o["d_lr_mult"], (int, float)) and o["d_lr_mult"] > 0):
        raise ValueError(f"train['d_lr_mult'] is D's learning rate over G's (the optimizer's lr), a number > 0; "
                         f"got {o['d_lr_mult']!r}")
    if o["ema"] is not None and not (isinstance(o["ema"], (int, float)) and 0 < o["ema"] < 1):
        raise ValueError(f"train['ema'] is an EMA decay of G's weights in (0, 1), e.g. 0.999, or None; "
                         f"got {o['ema']!r}")
    return o


def noise_level(o: dict, step: int) -> float:
    """Instance-noise std at (0-based) step `step`: instance_noise * decay^step."""
    return o["instance_noise"] * o["instance_noise_decay"] ** step


def d_targets(n: int, real: bool, o: dict, g: torch.Generator, device) -> torch.Tensor:
    """Discriminator targets for n real (or fake) images: fixed or soft labels, a fraction flipped."""
    u = torch.rand(n, generator=g, device=device)
    t = o["real_label"] - o["soft_labels"] * u if real else o["fake_label"] + o["soft_labels"] * u
    if o["noisy_labels"]:
        flip = torch.rand(n, generator=g, device=device) < o["noisy_labels"]
        t = torch.where(flip, 1 - t, t)
    return t


def to_unit_range(x_uint8: torch.Tensor, o: dict, hflip: float, g: torch.Generator) -> torch.Tensor:
    """uint8 batch on the device -> float in [-1, 1], resized and randomly flipped."""
    x = x_uint8.float() / 127.5 - 1
    if o["resize"] and x.shape[-1] != o["resize"]:
        x = F.interpolate(x, size=(o["resize"], o["resize"]), mode="bilinear", align_corners=False,
                          antialias=o["resize"] < x.shape[-1]).clamp(-1, 1)
    if hflip:
        flip = torch.rand(len(x), generator=g, device=x.device) < hflip
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def setup(cfg, info, device, runtime: Runtime | None = None) -> SimpleNamespace:
    """Model (seeded DCGAN init), optimisers and schedulers for `cfg`, on `device`, run under `runtime`
    (default: the measured default for cfg.model on `device`)."""
    o = options(cfg)
    rt = runtime or default_runtime(cfg.model, device)
    if o["compile"]:
        rt = replace(rt, compile=True)
    torch.manual_seed(cfg.seed)
    model = build_for_config(cfg, info.num_classes, info.image_size, info.channels).to(device)
    size = o["resize"] or info.image_size
    if model.image_size != size:
        raise ValueError(f"the model makes {model.image_size}x{model.image_size} images but trains on {size}x{size}:"
                         f" set train={{'resize': {model.image_size}}} or model_args image_size={size}")
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt_g = build_optimizer(model.generator.parameters(), cfg.optimizer)
    # two time-scale updates (Heusel et al. 2017): D may learn at a multiple of G's rate
    d_opt = {**cfg.optimizer, "lr": cfg.optimizer["lr"] * o["d_lr_mult"]} if o["d_lr_mult"] != 1 else cfg.optimizer
    opt_d = build_optimizer(model.discriminator.parameters(), d_opt)
    sched_g, every = build_scheduler(opt_g, cfg.scheduler, cfg.steps)
    sched_d, _ = build_scheduler(opt_d, cfg.scheduler, cfg.steps)
    ema = AveragedModel(model.generator, multi_avg_fn=get_ema_multi_avg_fn(float(o["ema"])), use_buffers=True) \
        if o["ema"] else None
    return SimpleNamespace(
        cfg=cfg, o=o, device=device, runtime=rt, model=model, opt_g=opt_g, opt_d=opt_d, sched_g=sched_g,
        sched_d=sched_d, every=every, hflip=flip_probability(cfg.augment.get("hflip", 0.0), info), ema=ema,
        policy=parse_policy(o["diffaug"]),
        G=torch.compile(model.generator) if rt.compile else model.generator,
        D=torch.compile(model.discriminator) if rt.compile else model.discriminator)


def train_step(s: SimpleNamespace, x_uint8: torch.Tensor, step: int, g: torch.Generator) -> dict:
    """One D update and one G update on a uint8 batch; returns the step's stats as 0-d tensors."""
    return update(s, to_unit_range(x_uint8, s.o, s.hflip, g), step, g)


def update(s: SimpleNamespace, x: torch.Tensor, step: int, g: torch.Generator) -> dict:
    """train_step on a batch already in [-1, 1] at the training size (benchmarks/gen_speed.py's naive loop
    feeds it from a DataLoader)."""
    o, B, dev = s.o, len(x), s.device
    sigma = noise_level(o, step)
    x = x.contiguous(memory_format=s.runtime.memory_format)
    z = torch.randn(B, s.model.latent_dim, generator=g, device=dev)
    hinge = o["loss"] == "hinge"
    if not hinge:
        t_real, t_fake = d_targets(B, True, o, g, dev), d_targets(B, False, o, g, dev)
    noisy = (lambda im: im + sigma * torch.randn(im.shape, generator=g, device=dev)) if sigma > 0 else (lambda im: im)
    seen = (lambda im: noisy(diff_augment(im, s.policy, g))) if s.policy else noisy    # what D is shown
    bce = F.binary_cross_entropy_with_logits

    with s.runtime.autocast(dev):
        fake = s.G(z)
        logit_real = s.D(seen(x)).float()
        logit_fake = s.D(seen(fake.detach())).float()
    if hinge:
        loss_d = F.relu(1 - logit_real).mean() + F.relu(1 + logit_fake).mean()
    else:
        loss_d = bce(logit_real, t_real) + bce(logit_fake, t_fake)
    s.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    s.opt_d.step()

    with s.runtime.autocast(dev):
        logit_g = s.D(seen(fake)).float()
    # non-saturating BCE: G wants D to say "real"; hinge: G raises D's score of its images
    loss_g = -logit_g.mean() if hinge else bce(logit_g, torch.ones_like(logit_g))
    s.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    s.opt_g.step()
    if s.ema is not None:
        s.ema.update_parameters(s.model.generator)
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(logit_real.detach()).mean(), "d_fake": torch.sigmoid(logit_fake.detach()).mean()}


SAMPLING_MODES = ("eval", "train")


class GANGenerator:
    """A trained DCGAN as a sampling.GeneratorHandle: latents are N(0, I) vectors of length latent_dim, scored
    by D's probability sigmoid(D(x)). A GAN has no decoder noise, so `seed` is ignored.

    sampling_mode "eval" (ours): G's BatchNorm uses its running statistics, so an image depends on its latent
    only. "train": BatchNorm normalises with each batch's own statistics, as the PyTorch DCGAN tutorial samples
    (it never calls netG.eval()); an image then depends on the batch it is drawn in. Train mode runs on a copy,
    so sampling never moves the model's running statistics.

    `runtime` (default: the measured default for the model's family on `device`) sets the precision of G's and
    D's forward passes and compiles them; the model should already be in its memory format (load_handle puts it
    there)."""

    conditional = False

    def __init__(self, model, num_classes: int, device, batch_size: int = 500, G=None, D=None,
                 sampling_mode: str = "eval", runtime: Runtime | None = None):
        if sampling_mode not in SAMPLING_MODES:
            raise ValueError(f"sampling_mode must be one of {SAMPLING_MODES}, got {sampling_mode!r}")
        self.model, self.num_classes, self.device = model.eval(), num_classes, torch.device(device)
        self.runtime = runtime or default_runtime(family_of(model), self.device)
        self.G, self.D = G or model.generator, D or model.discriminator
        self.sampling_mode = sampling_mode
        if sampling_mode == "train":
            self.G = copy.deepcopy(model.generator).train()
        if self.runtime.compile:
            self.G, self.D = torch.compile(self.G), torch.compile(self.D)
        self.latent_shape, self.image_size, self.batch_size = (model.latent_dim,), model.image_size, batch_size
        self.images_sampled, self.sampling_s = 0, 0.0

    def sample_latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((n, *self.latent_shape), generator=generator, device=generator.device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, labels=None, seed: int = 0) -> torch.Tensor:
        latents, out, t0 = latents.to(self.device), [], time.perf_counter()
        for i in range(0, len(latents), self.batch_size):
            with self.runtime.autocast(self.device):
                out.append(self.G(latents[i:i + self.batch_size]).float().clamp(-1, 1))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.images_sampled += len(latents)
        self.sampling_s += time.perf_counter() - t0
        return torch.cat(out)

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        images, out = images.to(self.device), []
        for i in range(0, len(images), self.batch_size):
            x = images[i:i + self.batch_size].contiguous(memory_format=self.runtime.memory_format)
            with self.runtime.autocast(self.device):
                out.append(torch.sigmoid(self.D(x).float()))
        return torch.cat(out)


def train(ctx) -> dict:
    cfg, device = ctx.config, ctx.device
    data = datasets.load(cfg.dataset, "train", root=ctx.data_root, device=device)
    info = data.info
    N, B = len(data), cfg.batch_size
    if B > N:
        raise ValueError(f"batch_size {B} is larger than the training set ({N} images)")
    s = setup(cfg, info, device, ctx.runtime)
    ctx.runtime = s.runtime                          # what env.json records
    o, model = s.o, s.model

    batches = EpochBatches(N, B, cfg.seed, device)
    g = torch.Generator(device)
    model.train()

    def step(done):
        g.manual_seed(mix_seed(cfg.seed, done))
        stats = train_step(s, data.images[batches.indices(done)], done, g)
        if s.sched_g is not None and (done + 1) % s.every == 0:
            s.sched_g.step()
            s.sched_d.step()
        return stats

    def report(done, sums, n):
        row = {k: (sums[k] / n).item() for k in STATS}    # the only host sync, once per interval
        if not all(math.isfinite(v) for v in row.values()):
            raise FloatingPointError(f"GAN losses became non-finite by step {done}: {row}")
        ctx.log(step=done, **row, lr=s.opt_g.param_groups[0]["lr"], noise=noise_level(o, done - 1))

    def state():
        st = {"model": model.state_dict(), "opt_g": s.opt_g.state_dict(), "opt_d": s.opt_d.state_dict(),
              "sched_g": s.sched_g.state_dict() if s.sched_g is not None else None,
              "sched_d": s.sched_d.state_dict() if s.sched_d is not None else None,
              "torch_rng": torch.get_rng_state()}
        if s.ema is not None:
            st["ema"] = s.ema.state_dict()
        return st

    def restore(state):
        model.load_state_dict(state["model"])
        if s.ema is not None:
            s.ema.load_state_dict(state["ema"])
        s.opt_g.load_state_dict(state["opt_g"])
        s.opt_d.load_state_dict(state["opt_d"])
        if s.sched_g is not None:
            s.sched_g.load_state_dict(state["sched_g"])
            s.sched_d.load_state_dict(state["sched_d"])
        torch.set_rng_state(state["torch_rng"])
        return state["step"]

    trained = run_steps(ctx, Steps(total=cfg.steps, step=step, every=o["log_every"] or max(1, cfg.eval_every // 10),
                                report=report, state=state, restore=restore))

    # with an EMA, the average is the generator: saved as such, sampled and scored (load_handle reads it back)
    sampled = s.ema.module.eval() if s.ema is not None else model.generator
    extra = {"generator_live": model.generator.state_dict(), "ema": o["ema"]} if s.ema is not None else {}
    atomic_torch_save(ctx.run_dir / "generator.pt", {
        "state_dict": sampled.state_dict(), "discriminator": model.discriminator.state_dict(),
        "model": cfg.model, "model_args": dict(cfg.model_args), "latent_dim": model.latent_dim,
        "image_size": model.image_size, "num_classes": info.num_classes, "in_channels": info.channels, **extra})
    # the handle compiles its own G and D where the runtime compiles: eval mode is another graph anyway
    handle = GANGenerator(model, info.num_classes, device, o["sample_batch"], sampled, model.discriminator,
                          runtime=s.runtime)
    last = ctx.history[-1] if ctx.history else {}
    metrics = {**{f"final_{k}": last.get(k) for k in STATS},
               "train_steps_per_s": trained.steps_per_s,
               "final_instance_noise": noise_level(o, cfg.steps - 1) if o["instance_noise"] else 0.0,
               "train_image_size": model.image_size}
    metrics.update(evaluate(ctx, handle, o["fid_samples"], o["sample_batch"], o["interpolation"]))
    if handle.images_sampled:
        metrics["sample_images_per_s"] = handle.images_sampled / handle.sampling_s
    return metrics


WEIGHTS = ("average", "live")


def load_handle(cfg, path, device, sampling_mode: str = "eval", runtime: Runtime | None = None,
                weights: str = "average") -> GANGenerator:
    """A finished run's generator (and its discriminator, which ranks the cherry-picked samples) from
    <run_dir>/generator.pt, as the handle training scored it with, under `runtime` (default: the measured
    default for cfg.model on `device`). weights="live": a run trained with an EMA of G sampled from the trained
    G's own weights instead of the average (what the average adds is the difference)."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    o, saved = options(cfg), torch.load(path, map_location="cpu", weights_only=True)
    if weights == "live" and "generator_live" not in saved:
        raise ValueError(f"{path} holds no live generator: the run kept no EMA of G (train['ema'] is None), so its "
                         "generator is the live one already; score it with the default weights")
    rt = runtime or default_runtime(cfg.model, device)
    model = build_for_config(cfg, saved["num_classes"], saved["image_size"], saved["in_channels"])
    model.generator.load_state_dict(saved["generator_live" if weights == "live" else "state_dict"])
    model.discriminator.load_state_dict(saved["discriminator"])
    return GANGenerator(model.to(device, memory_format=rt.memory_format), saved["num_classes"], device,
                        o["sample_batch"], sampling_mode=sampling_mode, runtime=rt)


def evaluate(ctx, handle: GANGenerator, n_samples: int, batch_size: int, interpolation: str) -> dict:
    """FID where possible, FD-cls + KID always, nearest neighbours and the figures (the metrics module,
    shared by every generator in the book); cherry-picking ranks samples by D's score."""
    return evaluate_generator(handle, ctx, n_samples=n_samples, batch_size=batch_size, interpolation=interpolation)
