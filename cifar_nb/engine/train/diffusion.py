"""Training loop for report B's class-conditional DDPM (kind "diffusion").

Report B's recipe: epsilon-prediction MSE, T = 1000, sigmoid (or linear) betas, Adam lr 0.003 decayed by
0.995 per epoch, batch 256 (128 in its schedule comparison), 50,000 steps, no weight EMA.

    cfg.train keys        default     meaning
    beta_schedule         "sigmoid"   "sigmoid" (Jabri et al. 2022) or "linear" (Ho et al. 2020)
    timesteps             1000        T
    ema                   None        EMA decay of the weights (e.g. 0.999); None = off, as in report B
    sample_steps          None        sampler steps; None = all T. Fewer = respaced preview, labelled so
    clip_x0               False       sample through a clipped x_0 prediction (not in report B; see
                                      models/ddpm_schedule.py for why it matters with sigmoid betas)
    fid_samples           10000       images generated for FD/KID
    feature_steps         2000        steps of the FD-cls feature network (experiments.FEATURE_STEPS);
                                      in the config, so in its hash (previews: fewer)
    sample_batch          500         images per sampling batch
    log_every             eval_every // 10
    compile               False       True: torch.compile the network whatever the runtime says (a runtime
                                      setting now, kept because it is in old configs' hashes)
    hflip                 0.0         random horizontal flip probability (report B: none)

How it runs is the run's Runtime (cifar_nb.engine.runtime; never part of the config): the caller's (ctx.runtime:
the queue, --fp32, CIFAR_NB_PRECISION=fp32) or the measured default for the model family on the device (on CUDA
bf16 autocast with channels_last). Training's forward pass runs under its autocast, memory format and compile on
any device (the MSE is taken in fp32); sampling takes the memory format and compile but stays in float32, network
included (see decode). A checkpoint resumes under any runtime.
The noise, timesteps and flips of step s are drawn from a generator seeded by (seed, s), and the data
order of epoch e from one seeded by (seed, e), so a resumed run needs no RNG state to match an
uninterrupted one.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from types import SimpleNamespace

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cifar_nb.engine import data as datasets
from cifar_nb.engine.artifacts import atomic_torch_save
from cifar_nb.engine.evaluate.generator import evaluate_generator
from cifar_nb.engine.runtime import Runtime, default_runtime, family_of
from cifar_nb.engine.train.batches import EpochBatches, mix_seed
from cifar_nb.engine.train.loop import Steps, run_steps
from cifar_nb.engine.train.optim import build_optimizer, build_scheduler
from cifar_nb.experiments import FEATURE_STEPS
from cifar_nb.models import build_for_config
from cifar_nb.models.ddpm_schedule import Diffusion

DEFAULTS = dict(beta_schedule="sigmoid", timesteps=1000, ema=None, sample_steps=None, clip_x0=False,
                fid_samples=10_000, sample_batch=500, log_every=None, compile=False, hflip=0.0, feature_steps=FEATURE_STEPS)



def options(cfg) -> dict:
    unknown = set(cfg.train) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown diffusion train keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if cfg.augment:
        raise ValueError("the diffusion trainer takes no augment spec (images must stay in [-1, 1]); "
                         "use train={'hflip': p} for flips")
    return {**DEFAULTS, **cfg.train}


class DDPMGenerator:
    """Report B's DDPM as a sampling.GeneratorHandle. latents = the starting noise x_T, shape (n, C, H, W).

    decode(latents, labels, seed) runs the ancestral sampler from x_T, in batches, with per-step noise
    drawn on the sampling device from a generator seeded by `seed`: the same (latents, labels, seed)
    give the same images. There is no discriminator, so `score` is None (evaluation then cherry-picks
    by a classifier's confidence).

    `runtime` (default: the measured default for the model's family on `device`) gives the network's memory
    format (the model should already be in it; load_handle puts it there) and compile; its amp is dropped (decode).
    """

    conditional = True
    score = None
    sampling_mode = "eval"

    def __init__(self, model, diffusion: Diffusion, num_classes: int, image_shape: tuple, device,
                 sample_steps: int | None = None, batch_size: int = 500, clip_x0: bool = False,
                 runtime: Runtime | None = None):
        self.model, self.diffusion, self.num_classes = model.eval(), diffusion, num_classes
        rt = runtime or default_runtime(family_of(model), device)
        self.runtime = replace(rt, amp=False)        # float32 sampling, network included: see decode
        self.net = torch.compile(self.model) if rt.compile else self.model
        self.latent_shape, self.image_size = tuple(image_shape), image_shape[-1]
        self.device, self.sample_steps, self.batch_size = torch.device(device), sample_steps, batch_size
        self.clip_x0 = clip_x0
        self.images_sampled, self.sampling_s = 0, 0.0

    @property
    def sampler(self) -> str:
        T, clip = self.diffusion.T, ", x_0 clipped (not report B's sampler)" if self.clip_x0 else ""
        if self.sample_steps is None or self.sample_steps >= T:
            return f"DDPM ancestral, {T} steps, sigma_t^2 = beta_t{clip}"
        return (f"PREVIEW: respaced DDPM ancestral, {self.sample_steps} of {T} steps (not report B's sampler)"
                + clip)

    def sample_latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((n, *self.latent_shape), generator=generator, device=generator.device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """Images in [-1, 1], float32, on the sampling device, in batches of `batch_size`."""
        g = torch.Generator(self.device).manual_seed(seed)
        latents = latents.to(self.device)
        if labels is None:
            labels = torch.randint(0, self.num_classes, (len(latents),), generator=g, device=self.device)
        labels = labels.to(self.device)
        out, t0 = [], time.perf_counter()
        # float32, not bf16, even where training autocasts: the sigmoid schedule's first step divides by
        # sqrt(1 - 0.999), so bf16's ~0.4% error in the predicted noise would reach x_{T-1} multiplied by ~32
        for s in range(0, len(latents), self.batch_size):
            out.append(self.diffusion.sample(self.net, latents[s:s + self.batch_size],
                                             labels[s:s + self.batch_size], g, self.sample_steps, self.clip_x0))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.images_sampled += len(latents)
        self.sampling_s += time.perf_counter() - t0
        return torch.cat(out)


def setup(cfg, info, device, runtime: Runtime | None = None) -> SimpleNamespace:
    """Network (seeded init), schedule, optimiser, LR scheduler and optional EMA for `cfg`, on `device`, run under
    `runtime` (default: the measured default for cfg.model on `device`)."""
    o = options(cfg)
    rt = runtime or default_runtime(cfg.model, device)
    if o["compile"]:
        rt = replace(rt, compile=True)
    torch.manual_seed(cfg.seed)
    model = build_for_config(cfg, info.num_classes, info.image_size, info.channels).to(device)
    if rt.channels_last:      # the weights' format: convolutions then give channels_last outputs
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model.parameters(), cfg.optimizer)
    sched, every = build_scheduler(opt, cfg.scheduler, cfg.steps)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(o["ema"]), use_buffers=True) if o["ema"] else None
    return SimpleNamespace(
        cfg=cfg, o=o, info=info, device=device, runtime=rt, model=model, opt=opt, sched=sched, every=every, ema=ema,
        diffusion=Diffusion.named(o["beta_schedule"], o["timesteps"], device),
        fwd=torch.compile(model) if rt.compile else model)


def train_step(s: SimpleNamespace, x_uint8: torch.Tensor, labels: torch.Tensor, step: int,
               g: torch.Generator) -> torch.Tensor:
    """One optimisation step on a uint8 batch (`step` = steps done before it); returns the loss, 0-d."""
    x0 = x_uint8.float() / 127.5 - 1                 # uint8 [0, 255] -> [-1, 1]
    if s.o["hflip"]:
        flip = torch.rand(len(x0), device=x0.device, generator=g) < s.o["hflip"]
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
    return update(s, x0, labels, step, g)


def update(s: SimpleNamespace, x0: torch.Tensor, labels: torch.Tensor, step: int, g: torch.Generator) -> torch.Tensor:
    """train_step on a batch already in [-1, 1] (benchmarks/gen_speed.py's naive loop feeds it from a DataLoader)."""
    with s.runtime.autocast(s.device):
        loss = s.diffusion.loss(s.fwd, x0, labels, g)
    s.opt.zero_grad(set_to_none=True)
    loss.backward()
    s.opt.step()
    if s.ema is not None:
        s.ema.update_parameters(s.model)
    if s.sched is not None and (step + 1) % s.every == 0:
        s.sched.step()
    return loss.detach()


def handle_for(s: SimpleNamespace) -> "DDPMGenerator":
    """The trained weights (the EMA where there is one) as a sampling handle under the run's runtime."""
    info = s.info
    return DDPMGenerator(s.ema.module if s.ema is not None else s.model, s.diffusion, info.num_classes,
                         (info.channels, info.image_size, info.image_size), s.device, s.o["sample_steps"],
                         s.o["sample_batch"], s.o["clip_x0"], runtime=s.runtime)


def train(ctx) -> dict:
    cfg, device = ctx.config, ctx.device
    options(cfg)                                     # refuse bad keys before loading anything
    data = datasets.load(cfg.dataset, "train", root=ctx.data_root, device=device)
    N, B = len(data), cfg.batch_size
    if B > N:
        raise ValueError(f"batch_size {B} is larger than the training set ({N} images)")
    s = setup(cfg, data.info, device, ctx.runtime)
    ctx.runtime = s.runtime                          # what env.json records
    model, opt, sched, ema, o = s.model, s.opt, s.sched, s.ema, s.o

    batches = EpochBatches(N, B, cfg.seed, device)
    g = torch.Generator(device)
    model.train()

    def step(done):
        idx = batches.indices(done)
        g.manual_seed(mix_seed(cfg.seed, done))
        return {"loss": train_step(s, data.images[idx], data.labels[idx], done, g)}

    def report(done, sums, n):
        mean = (sums["loss"] / n).item()           # the only host sync, once per log interval
        if not math.isfinite(mean):
            raise FloatingPointError(f"diffusion loss became {mean} by step {done}; lower the lr")
        ctx.log(step=done, loss=mean, lr=opt.param_groups[0]["lr"])

    def state():
        return {"model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict() if sched is not None else None,
                "ema": ema.state_dict() if ema is not None else None, "torch_rng": torch.get_rng_state()}

    def restore(state):
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if sched is not None:
            sched.load_state_dict(state["sched"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["torch_rng"])
        return state["step"]

    trained = run_steps(ctx, Steps(total=cfg.steps, step=step, every=o["log_every"] or max(1, cfg.eval_every // 10),
                                   report=report, state=state, restore=restore))

    handle = handle_for(s)
    info = data.info
    atomic_torch_save(ctx.run_dir / "generator.pt", {
        "state_dict": (ema.module if ema is not None else model).state_dict(), "model": cfg.model,
        "model_args": dict(cfg.model_args), "num_classes": info.num_classes, "image_size": info.image_size,
        "in_channels": info.channels, "beta_schedule": o["beta_schedule"], "timesteps": o["timesteps"],
        "ema": o["ema"]})
    metrics = {
        "final_loss": ctx.history[-1]["loss"] if ctx.history else None,
        "train_steps_per_s": trained.steps_per_s,
        "beta_schedule": o["beta_schedule"], "timesteps": o["timesteps"], "ema": o["ema"],
        "sampler": handle.sampler, "clip_x0": o["clip_x0"],
        "sample_steps": o["sample_steps"] or o["timesteps"],
    }
    metrics.update(evaluate(ctx, handle, o["fid_samples"], o["sample_batch"]))
    if handle.images_sampled:
        # every decode evaluation made (samples, interpolations), at sample_steps sampler steps
        metrics["sample_images_per_s"] = handle.images_sampled / handle.sampling_s
    return metrics


def load_handle(cfg, path, device, sampling_mode: str = "eval", runtime: Runtime | None = None) -> DDPMGenerator:
    """A finished run's sampling network (the EMA weights where it kept one) from <run_dir>/generator.pt, under
    `runtime` (default: the measured default for cfg.model on `device`)."""
    if sampling_mode != "eval":
        raise ValueError("the DDPM samples in eval mode only: its U-Net keeps no batch statistics to choose between")
    o, saved = options(cfg), torch.load(path, map_location="cpu", weights_only=True)
    rt = runtime or default_runtime(cfg.model, device)
    model = build_for_config(cfg, saved["num_classes"], saved["image_size"], saved["in_channels"])
    model.load_state_dict(saved["state_dict"])
    shape = (saved["in_channels"], saved["image_size"], saved["image_size"])
    return DDPMGenerator(model.to(device, memory_format=rt.memory_format),
                         Diffusion.named(o["beta_schedule"], o["timesteps"], device), saved["num_classes"], shape,
                         device, o["sample_steps"], o["sample_batch"], o["clip_x0"], runtime=rt)


def evaluate(ctx, handle: DDPMGenerator, n_samples: int, batch_size: int) -> dict:
    """FID where possible, FD-cls + KID always, and the figures: the metrics module, shared by every
    generator in the book. Report B interpolated between two images' latents (here x_T, by SLERP, which
    keeps Gaussian noise at its norm), conditioned on the nearer image's label."""
    return evaluate_generator(handle, ctx, n_samples=n_samples, batch_size=batch_size, interpolation="slerp")
