"""Speed of the Part II generators: training steps/s against a plain PyTorch loop, and sampling images/s.

    python benchmarks/gen_speed.py [--device auto] [--steps N] [--warmup N] [--samples N] [--threads 1]
                                   [--workers 2] [--compile] [--variants bf16 ...] [--experiments A-generator ...]
                                   [--out PATH]

default     the trainer's own step (gan.train_step, diffusion.train_step) under the runtime the queue uses here
            (cifar_nb.engine.runtime.default_runtime: bf16 autocast / channels_last / compile where they were
            measured faster for the model family on this kind of device), on random uint8 images resident on
            the device; sampling images/s through the handle evaluation uses, under the same runtime (the DDPM's,
            on a CPU, timed over 5 sampler steps and scaled to its full T-step sampler: sample_extrapolated).
fp32 eager  the same step forced to fp32, eager, contiguous (the CPU path before the generators had runtimes).
naive       the same update (gan.update, diffusion.update), fp32 eager, fed by a plain torch DataLoader (--workers
            processes) over PIL images with per-image torchvision.transforms.v2: the resize where the recipe trains
            at another size (report A), the horizontal flip where it flips, ToImage, ToDtype, Normalize to [-1, 1].
--variants  also these runtime combinations, to choose default_runtime's per-family table.

Each experiment trains with its own recipe (network, batch size, optimiser, scheduler, tricks); only
optimisation steps are timed, after warm-up steps (a step costs the same whatever the pixels are). Every
measurement runs in a child process of its own with --threads intra-op threads (default 1, the queue's layout on
a CPU: one run per core), so a torch.compile crash costs one cell of the table and no run inherits another's
caches. Results go to benchmarks/results/<device>-gen_speed.json, or --out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch

from cifar_nb import experiments
from cifar_nb.budget import count_params
from cifar_nb.config import DATASET_SHAPES
from cifar_nb.engine.artifacts import device_name, device_slug
from cifar_nb.engine.augment import flip_probability
from cifar_nb.engine.runtime import FP32_EAGER, Runtime, default_runtime

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

EXPERIMENTS = [
    "A-generator",
    "C-generator",
    "E-generator",
    "B-generator",
    "ours-generator",
]
VARIANTS = {"fp32": {}, "bf16": dict(amp=True), "bf16+cl": dict(amp=True, channels_last=True),
            "bf16+compile": dict(amp=True, compile=True),
            "bf16+cl+compile": dict(amp=True, channels_last=True, compile=True), "fp32+cl": dict(channels_last=True),
            "fp32+compile": dict(compile=True)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trainer(kind):
    from cifar_nb.engine.train import diffusion, gan
    return {"gan": gan, "diffusion": diffusion}[kind]


def _info(cfg) -> SimpleNamespace:
    shape = DATASET_SHAPES[cfg.dataset]
    return SimpleNamespace(name=cfg.dataset, num_classes=shape["num_classes"], image_size=shape["image_size"],
                           channels=shape["in_channels"], mirror_invariant=cfg.dataset != "addnist")


def _config(exp_name, device):
    cfg = experiments.get(exp_name).config
    if cfg.kind == "diffusion" and device.type != "cuda":
        # a sample costs one network call per sampler step: on a CPU time 5 of them (bench_sampling scales)
        cfg = cfg.replace(train={**cfg.train, "sample_steps": 5})
    return cfg


def pil_transform(cfg, info):
    """The trainer's input pipeline as per-image torchvision.transforms.v2 on PIL images."""
    from torchvision.transforms import v2
    o = _trainer(cfg.kind).options(cfg)
    ts = []
    if o.get("resize") and o["resize"] != info.image_size:
        ts.append(v2.Resize(o["resize"], antialias=True))
    p = flip_probability(cfg.augment.get("hflip", 0.0), info) if cfg.kind == "gan" else o["hflip"]
    if p:
        ts.append(v2.RandomHorizontalFlip(p))
    return v2.Compose(ts + [v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.5] * info.channels, [0.5] * info.channels)])


def resident_batches(cfg, info, device):
    """Random uint8 batches (and labels) drawn from images resident on the device, as the trainers draw them."""
    n = max(4 * cfg.batch_size, 1024)
    g = torch.Generator(device).manual_seed(0)
    images = torch.randint(0, 256, (n, info.channels, info.image_size, info.image_size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0)).to(device)
    labels = torch.randint(0, info.num_classes, (n,), device=device, generator=g)
    while True:
        idx = torch.randint(0, n, (cfg.batch_size,), device=device, generator=g)
        yield images[idx], labels[idx], g


def naive_batches(cfg, info, device, workers):
    """Float batches in [-1, 1] from a DataLoader over PIL images, epoch after epoch."""
    sys.path.insert(0, str(HERE))
    from train_speed import PILDataset
    n = max(4 * cfg.batch_size, 1024)
    images = torch.randint(0, 256, (n, info.channels, info.image_size, info.image_size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, info.num_classes, (n,), generator=torch.Generator().manual_seed(1))
    loader = torch.utils.data.DataLoader(PILDataset(SimpleNamespace(images=images, labels=labels),
                                                    pil_transform(cfg, info)),
                                         batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    g = torch.Generator(device).manual_seed(0)
    while True:
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True), g


def bench_sampling(s, cfg, info, device, samples) -> dict:
    """images/s of the sampling handle evaluation uses; the DDPM's rate is scaled to its full T-step sampler."""
    trainer = _trainer(cfg.kind)
    if cfg.kind == "gan":
        G = s.ema.module if s.ema is not None else s.model.generator
        handle = trainer.GANGenerator(s.model, info.num_classes, device, s.o["sample_batch"], G,
                                      s.model.discriminator, runtime=s.runtime)
    else:
        handle = trainer.handle_for(s)
    zg = torch.Generator().manual_seed(0)
    handle.decode(handle.sample_latents(min(samples, handle.batch_size), zg))        # warm-up
    handle.images_sampled, handle.sampling_s = 0, 0.0
    handle.decode(handle.sample_latents(samples, zg))
    rate = handle.images_sampled / handle.sampling_s
    if cfg.kind == "gan":
        return dict(sample_images_per_s=rate)
    timed, T = s.o["sample_steps"] or s.diffusion.T, s.diffusion.T
    return dict(sample_images_per_s=rate * timed / T, sampler_steps=T, sample_steps_timed=timed,
                sample_extrapolated=timed != T)


def measure(experiment: str, device: str, runtime: dict, steps: int, warmup: int, samples: int = 0,
            naive: bool = False, workers: int = 0, threads: int = 1) -> dict:
    """steps/s of one loop (and the sampling rate when samples > 0); what each child process runs."""
    torch.set_num_threads(threads)
    device = torch.device(device)
    cfg = _config(experiment, device)
    info, trainer = _info(cfg), _trainer(cfg.kind)
    s = trainer.setup(cfg, info, device, Runtime(threads=threads, **runtime))
    s.model.train()
    feed = naive_batches(cfg, info, device, workers) if naive else resident_batches(cfg, info, device)

    def step(i):
        x, y, g = next(feed)
        if cfg.kind == "gan":
            return (trainer.update(s, x, i, g) if naive else trainer.train_step(s, x, i, g))["loss_d"]
        return trainer.update(s, x, y, i, g) if naive else trainer.train_step(s, x, y, i, g)

    for i in range(warmup):
        step(i)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        loss = step(i)
    loss.item()                                      # wait for the last step
    _sync(device)
    out = dict(steps_per_s=steps / (time.perf_counter() - t0), params=count_params(s.model),
               image_size=s.model.image_size if cfg.kind == "gan" else info.image_size)
    if samples:
        out.update(bench_sampling(s, cfg, info, device, samples))
    return out


def in_child(**kwargs) -> dict | None:
    """measure(**kwargs) in a child process; None (and the error's last line) if it fails."""
    code = ("import sys, json; sys.path.insert(0, %r); import gen_speed; "
            "print(json.dumps(gen_speed.measure(**json.loads(sys.argv[1]))))" % str(HERE))
    p = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True,
                       timeout=1800)
    if p.returncode != 0:
        print(f"    failed (exit {p.returncode}): {(p.stderr.strip().splitlines() or ['?'])[-1][:200]}", flush=True)
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def path_name(rt: dict) -> str:
    return ("bf16" if rt["amp"] else "fp32") + ("+cl" if rt["channels_last"] else "") + \
        ("+compile" if rt["compile"] else "")



def _loadavg():
    """1-minute load average: other processes on the machine make the timings worth less."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50 on CUDA, 5 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10 on CUDA, 2 on CPU)")
    p.add_argument("--samples", type=int, default=None, help="images sampled (default 5000 on CUDA, 200 on CPU)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of each child process (default 1)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the naive loop")
    p.add_argument("--compile", action="store_true", help="torch.compile the default path's networks")
    p.add_argument("--variants", nargs="*", choices=sorted(VARIANTS), default=[],
                   help="also time these runtime combinations, to choose the defaults")
    p.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>-gen_speed.json)")
    args = p.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    cuda = device.type == "cuda"
    steps = args.steps or (50 if cuda else 5)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 2)
    samples = args.samples or (5000 if cuda else 200)
    name = device_name(device)
    common = dict(device=str(device), steps=steps, warmup=warmup, threads=args.threads)
    load_before = _loadavg()
    print(f"device: {name}; torch {torch.__version__}; {args.threads} thread(s) per process; {steps} timed steps "
          f"after {warmup} warm-up steps; {samples} images sampled")
    rows = []
    for exp_name in args.experiments:
        cfg = experiments.get(exp_name).config
        rt = default_runtime(cfg.model, device, threads=args.threads, compile=True if args.compile else None)
        rec = rt.as_record()
        knobs = dict(amp=rt.amp, channels_last=rt.channels_last, compile=rt.compile)
        print(f"  {exp_name} ({cfg.model}, batch {cfg.batch_size}): default {path_name(rec)} ...", flush=True)
        fast = in_child(experiment=exp_name, runtime=knobs, samples=samples, **common)
        if fast is None:
            continue
        fp32 = fast if knobs == FP32_EAGER else in_child(experiment=exp_name, runtime=FP32_EAGER, **common)
        naive = in_child(experiment=exp_name, runtime=FP32_EAGER, naive=True, workers=args.workers, **common)
        variants = {}
        for v in args.variants:
            r = in_child(experiment=exp_name, runtime=VARIANTS[v], **common)
            variants[v] = r and r["steps_per_s"]
            print(f"    {v}: " + (f"{1000 / variants[v]:.0f} ms/step" if variants[v] else "failed"), flush=True)
        if fp32 is None or naive is None:
            print(f"  {exp_name}: no row (a row compares all three loops)", flush=True)
            continue
        rate, fp32_rate, naive_rate = fast["steps_per_s"], fp32["steps_per_s"], naive["steps_per_s"]
        row = dict(experiment=exp_name, kind=cfg.kind, model=cfg.model, params=fast["params"],
                   image_size=fast["image_size"], batch_size=cfg.batch_size, steps_budget=cfg.steps, runtime=rec,
                   steps_per_s=rate, fp32_eager_steps_per_s=fp32_rate, naive_steps_per_s=naive_rate,
                   speedup_vs_fp32_eager=rate / fp32_rate, speedup_vs_naive=rate / naive_rate,
                   **{k: v for k, v in fast.items() if k.startswith("sampl")},
                   full_run_h=cfg.steps / rate / 3600, variants_steps_per_s=variants)
        rows.append(row)

    head = (f"{'experiment':<15} {'model':<9} {'batch':>5} {'path':<13} {'default/s':>9} {'fp32/s':>7} "
            f"{'naive/s':>7} {'x fp32':>6} {'x naive':>7} {'images/s':>9} {'full run':>8}")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['experiment']:<15} {r['model']:<9} {r['batch_size']:>5} {path_name(r['runtime']):<13} "
              f"{r['steps_per_s']:>9.3f} {r['fp32_eager_steps_per_s']:>7.3f} {r['naive_steps_per_s']:>7.3f} "
              f"{r['speedup_vs_fp32_eager']:>6.2f} {r['speedup_vs_naive']:>7.2f} {r['sample_images_per_s']:>9.1f} "
              f"{r['full_run_h']:>7.1f}h")
    out = Path(args.out) if args.out else RESULTS / f"{device_slug(name)}-gen_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    import torchvision
    record = dict(device=str(device), device_name=name, torch=torch.__version__, torchvision=torchvision.__version__,
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"), steps=steps, warmup=warmup,
                  samples=samples, compile=args.compile, threads=args.threads, naive_workers=args.workers,
                  cpu_count=os.cpu_count(), load_average_before=load_before, load_average_after=_loadavg(),
                  data="random uint8 images (resident on the device; PIL images for the naive loop)", rows=rows)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
