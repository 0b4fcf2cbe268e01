"""Speed of the Part II generators: training steps/s and sampling images/s on this machine.

    python benchmarks/gen_speed.py [--device auto] [--steps N] [--samples N] [--compile]
                                   [--experiments A-generator ...]

Each experiment trains with its own recipe (network, batch size, optimiser, scheduler, tricks) through its
trainer's own step, on random uint8 images resident on the device (a step costs the same whatever the
pixels are). Only optimisation steps are timed, after warm-up steps; sampling is timed separately through
the generator handle that evaluation uses. Results go to benchmarks/results/<device>-gen_speed.json.

Adding an experiment of a kind already here is one line in EXPERIMENTS; a new kind also needs a function
in BENCH: (cfg, info, images, device, steps, warmup, samples, compile) -> dict with train_steps_per_s,
sample_images_per_s (and anything else worth recording).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch

from cifar_nb import experiments
from cifar_nb.budget import count_params
from cifar_nb.config import DATASET_SHAPES
from cifar_nb.engine.artifacts import device_name

RESULTS = Path(__file__).resolve().parent / "results"

EXPERIMENTS = [
    "A-generator",
    "C-generator",
    "E-generator",
    "B-generator",
]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_gan(cfg, info, images, device, steps, warmup, samples, use_compile) -> dict:
    from cifar_nb.engine.train import gan
    cfg = cfg.replace(train={**cfg.train, "compile": use_compile})
    s = gan.setup(cfg, info, device)
    s.model.train()
    g = torch.Generator(device).manual_seed(0)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        idx = torch.randint(0, len(images), (cfg.batch_size,), device=device, generator=g)
        gan.train_step(s, images[idx], i, g)
    _sync(device)
    train_rate = steps / (time.perf_counter() - t0)
    handle = gan.GANGenerator(s.model, info.num_classes, device, s.o["sample_batch"], s.G, s.D)
    zg = torch.Generator().manual_seed(0)
    handle.decode(handle.sample_latents(min(samples, s.o["sample_batch"]), zg))        # warm-up
    handle.images_sampled, handle.sampling_s = 0, 0.0
    handle.decode(handle.sample_latents(samples, zg))
    return dict(train_steps_per_s=train_rate, sample_images_per_s=handle.images_sampled / handle.sampling_s,
                params=count_params(s.model), image_size=s.model.image_size)


def bench_diffusion(cfg, info, images, device, steps, warmup, samples, use_compile) -> dict:
    """Report B's DDPM. Sampling costs one network call per sampler step, so on the CPU only a few of the
    T steps are timed and the rate is scaled to the full T-step sampler (sample_extrapolated says so)."""
    from cifar_nb.engine.train import diffusion
    timed_steps = None if device.type == "cuda" else 5
    cfg = cfg.replace(train={**cfg.train, "compile": use_compile, "sample_steps": timed_steps})
    s = diffusion.setup(cfg, info, device)
    s.model.train()
    g = torch.Generator(device).manual_seed(0)
    labels = torch.randint(0, info.num_classes, (len(images),), device=device, generator=g)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        idx = torch.randint(0, len(images), (cfg.batch_size,), device=device, generator=g)
        diffusion.train_step(s, images[idx], labels[idx], i, g)
    _sync(device)
    train_rate = steps / (time.perf_counter() - t0)
    handle = diffusion.handle_for(s)
    T, zg = s.diffusion.T, torch.Generator().manual_seed(0)
    handle.decode(handle.sample_latents(min(samples, handle.batch_size), zg))       # warm-up
    handle.images_sampled, handle.sampling_s = 0, 0.0
    handle.decode(handle.sample_latents(samples, zg))
    per_step = handle.images_sampled * (timed_steps or T) / handle.sampling_s     # image-steps per second
    return dict(train_steps_per_s=train_rate, sample_images_per_s=per_step / T, sampler_steps=T,
                sample_steps_timed=timed_steps or T, sample_extrapolated=timed_steps is not None,
                params=count_params(s.model), image_size=info.image_size)


BENCH = {"gan": bench_gan, "diffusion": bench_diffusion}     # run kind -> benchmark function


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--samples", type=int, default=None, help="images sampled (default 5000 on CUDA, 200 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (CUDA only)")
    p.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>-gen_speed.json)")
    args = p.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    cuda = device.type == "cuda"
    steps = args.steps or (50 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    samples = args.samples or (5000 if cuda else 200)
    name = device_name(device)
    print(f"device: {name}; torch {torch.__version__}; {steps} timed steps after {warmup} warm-up steps; "
          f"{samples} images sampled")
    rows = []
    for exp_name in args.experiments:
        exp = experiments.get(exp_name)
        cfg = exp.config
        shape = DATASET_SHAPES[cfg.dataset]
        info = SimpleNamespace(name=cfg.dataset, num_classes=shape["num_classes"], image_size=shape["image_size"],
                               channels=shape["in_channels"])
        n = max(4 * cfg.batch_size, 1024)
        images = torch.randint(0, 256, (n, info.channels, info.image_size, info.image_size), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0)).to(device)
        r = BENCH[cfg.kind](cfg, info, images, device, steps, warmup, samples, args.compile)
        row = dict(experiment=exp_name, kind=cfg.kind, model=cfg.model, batch_size=cfg.batch_size,
                   steps_budget=cfg.steps, **r)
        row["full_run_h"] = cfg.steps / row["train_steps_per_s"] / 3600
        rows.append(row)
        print(f"  {exp_name}: {row['train_steps_per_s']:.3f} steps/s, {row['sample_images_per_s']:.1f} images/s",
              flush=True)

    head = (f"{'experiment':<20} {'model':<10} {'params':>9} {'batch':>5} {'steps/s':>9} {'images/s':>10} "
            f"{'full run':>9}")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['experiment']:<20} {r['model']:<10} {r['params']:>9,} {r['batch_size']:>5} "
              f"{r['train_steps_per_s']:>9.3f} {r['sample_images_per_s']:>10.1f} {r['full_run_h']:>8.2f}h")
    out = Path(args.out) if args.out else RESULTS / f"{slug(name)}-gen_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = dict(device=str(device), device_name=name, torch=torch.__version__,
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"), steps=steps, warmup=warmup,
                  samples=samples, compile=args.compile, threads=torch.get_num_threads(),
                  data="random uint8 images resident on the device", rows=rows)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
