"""Training speed of the Part I classifiers: our loop against a plain PyTorch one, in one process.

    python benchmarks/train_speed.py [--device auto] [--steps 20] [--data-root DIR] [--dataset cifar10-jpeg]
                                     [--workers 2] [--compile] [--experiments A-classifier ...]

default     cifar_nb.engine.train.classifier.Loop.step with the runtime the queue uses here (cifar_nb.engine.runtime.default_runtime:
            bf16 autocast / channels_last / compile where they were measured faster on this kind of device, fp32
            eager on a CPU without native bf16); data resident on the device, augmentation batched on it.
fp32 eager  the same loop forced to fp32, eager, contiguous (the loop's CPU path before the runtime options).
naive       the textbook loop: a torchvision DataLoader (--workers processes) over PIL images with per-image
            torchvision.transforms.v2 doing the same augmentation recipe, fp32, eager.

Both train the experiment's network with its optimiser, scheduler and batch size. Only optimisation steps are
timed (after warm-up steps), not evaluation. E-classifier runs on AddNIST (its report's dataset), the others on
--dataset (default the CIFAR-10 JPEG stand-in: full CIFAR-100 is not available offline; the step cost is
the same for any 32x32 dataset but for the 10- vs 100-way linear layer). Results go to
benchmarks/results/<device>-train_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from cifar_nb import experiments
from cifar_nb.engine import data
from cifar_nb.engine.artifacts import device_name, device_slug
from cifar_nb.engine.augment import flip_probability
from cifar_nb.engine.runtime import Runtime, default_runtime
from cifar_nb.engine.train.classifier import Loop
from cifar_nb.engine.train.optim import build_optimizer, build_scheduler
from cifar_nb.models import build_for_config

RESULTS = Path(__file__).resolve().parent / "results"
# every classifier network of the book (the B ablations share B's network)
DEFAULT_EXPERIMENTS = ("A-classifier", "B-classifier", "C-classifier", "D-search-inbudget", "E-classifier",
                       "ours-classifier")


def pil_transform(spec: dict, info):
    """The augment spec as a per-image torchvision.transforms.v2 pipeline on PIL images (same order as
    cifar_nb.engine.augment: augmix, colour, rotation, affine, crop, flips, then tensor noise and normalisation)."""
    from torchvision.transforms import v2
    ts = []
    if spec.get("augmix"):
        ts.append(v2.AugMix(**(spec["augmix"] if isinstance(spec["augmix"], dict) else {})))
    if spec.get("color_jitter"):
        cj = dict(spec["color_jitter"])
        p = cj.pop("p", 1.0)
        ts.append(v2.RandomApply([v2.ColorJitter(**cj)], p=p))
    if spec.get("rotation"):
        ts.append(v2.RandomRotation(spec["rotation"]))
    if spec.get("affine"):
        af = dict(spec["affine"])
        p = af.pop("p", 1.0)
        af.setdefault("degrees", 0)   # optional in our spec, required by RandomAffine
        ts.append(v2.RandomApply([v2.RandomAffine(**af)], p=p))
    if spec.get("crop"):
        crop = v2.RandomCrop(info.image_size, padding=spec["crop"],
                             padding_mode="reflect" if spec.get("pad_mode") == "reflect" else "constant")
        ts.append(v2.RandomApply([crop], p=spec.get("crop_p", 1.0)))
    if spec.get("hflip") and flip_probability(spec["hflip"], info):     # "auto": only where a mirror keeps the label
        ts.append(v2.RandomHorizontalFlip(flip_probability(spec["hflip"], info)))
    if spec.get("vflip"):
        ts.append(v2.RandomVerticalFlip(spec["vflip"]))
    ts += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if spec.get("noise_var"):
        noise = v2.GaussianNoise(sigma=spec["noise_var"] ** 0.5, clip=False)
        ts.append(v2.RandomApply([noise], p=spec.get("noise_p", 1.0)))
    ts.append(v2.Normalize(info.mean, info.std))
    return v2.Compose(ts)


class PILDataset(torch.utils.data.Dataset):
    """Images kept as uint8 arrays and turned into PIL images one at a time, like torchvision's CIFAR."""

    def __init__(self, imageset, transform):
        self.images = imageset.images.cpu().permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = imageset.labels.cpu().tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fast(cfg, train_set, device, steps, warmup, use_compile, runtime=None):
    loop = Loop(cfg, train_set, device, use_compile=use_compile, runtime=runtime)
    for _ in range(warmup):
        loop.step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, _ = loop.step()
    loss.item()   # wait for the last step
    _sync(device)
    return steps / (time.perf_counter() - t0)


def time_naive(cfg, train_set, device, steps, warmup, workers):
    info = train_set.info
    torch.manual_seed(cfg.seed)
    model = build_for_config(cfg, info.num_classes, info.image_size, info.channels).to(device).train()
    opt = build_optimizer(model.parameters(), cfg.optimizer)
    sched, every = build_scheduler(opt, cfg.scheduler, cfg.steps)
    loader = torch.utils.data.DataLoader(PILDataset(train_set, pil_transform(cfg.augment, info)),
                                         batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    smoothing = float(cfg.train.get("label_smoothing", 0.0))
    it, n = iter(loader), 0

    def step():
        nonlocal it, n
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y, label_smoothing=smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += 1
        if sched is not None and n % every == 0:
            sched.step()
        return loss

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    _sync(device)
    rate = steps / (time.perf_counter() - t0)
    del it, loader
    return rate



def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=20, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--data-root", default=None, help="default: $CIFAR_NB_DATA")
    p.add_argument("--dataset", default="cifar10-jpeg", help="for A, B, C (E always uses addnist)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the naive loop")
    p.add_argument("--compile", action="store_true", help="torch.compile the default loop's model")
    p.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    p.add_argument("--variants", nargs="*", choices=sorted(VARIANTS),
                   help="also time these runtime combinations (each in a child process), to choose the defaults")
    p.add_argument("--experiments", nargs="+", default=list(DEFAULT_EXPERIMENTS))
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>-train_speed.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    name = device_name(device)
    rows, sets = [], {}
    load_before = _loadavg()
    print(f"device: {name}; torch {torch.__version__}; {args.steps} timed steps after {args.warmup} warm-up steps")
    for exp_name in args.experiments:
        exp = experiments.get(exp_name)
        dataset = "addnist" if exp.config.dataset == "addnist" else args.dataset
        if dataset not in sets:
            sets[dataset] = data.load(dataset, "train", root=args.data_root, device=device)
        train_set = sets[dataset]
        cfg = exp.make_config(dataset=dataset)
        n_params = sum(p.numel() for p in build_for_config(
            cfg, train_set.info.num_classes, train_set.info.image_size, train_set.info.channels).parameters())
        rt = default_runtime(cfg.model, device, compile=True if args.compile else None)
        fast = time_fast(cfg, train_set, device, args.steps, args.warmup, False, runtime=rt)
        fp32 = fast if rt == Runtime(threads=rt.threads) else \
            time_fast(cfg, train_set, device, args.steps, args.warmup, False, runtime=Runtime())
        naive = time_naive(cfg, train_set, device, args.steps, args.warmup, args.workers)
        variants = {}
        for v in (args.variants or []):
            variants[v] = _time_variant(cfg, train_set, device, args.steps, args.warmup, v)
            print(f"    {v}: {variants[v] if variants[v] is None else round(variants[v], 3)} steps/s", flush=True)
        row = dict(experiment=exp_name, model=cfg.model, dataset=train_set.info.display_name, params=n_params,
                   batch_size=cfg.batch_size, augment=cfg.augment, runtime=rt.as_record(),
                   steps_per_s=fast, fp32_eager_steps_per_s=fp32, naive_steps_per_s=naive,
                   speedup_vs_fp32_eager=fast / fp32, speedup_vs_naive=fast / naive,
                   full_10k_steps_min=10_000 / fast / 60, naive_10k_steps_min=10_000 / naive / 60,
                   variants_steps_per_s=variants)
        rows.append(row)
        print(f"  {exp_name}: default {fast:.3f} steps/s ({rt.as_record()['precision']}), fp32 eager {fp32:.3f}, "
              f"naive {naive:.3f} steps/s", flush=True)

    head = f"{'experiment':<14} {'model':<18} {'params':>7} {'batch':>5} {'path':<14} {'default/s':>9} " \
           f"{'fp32/s':>8} {'naive/s':>8} {'x fp32':>6} {'x naive':>7} {'10k':>7}"
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        path = r["runtime"]["precision"] + ("+cl" if r["runtime"]["channels_last"] else "") + \
            ("+compile" if r["runtime"]["compile"] else "")
        print(f"{r['experiment']:<14} {r['model']:<18} {r['params']:>7,} {r['batch_size']:>5} {path:<14} "
              f"{r['steps_per_s']:>9.3f} {r['fp32_eager_steps_per_s']:>8.3f} {r['naive_steps_per_s']:>8.3f} "
              f"{r['speedup_vs_fp32_eager']:>6.2f} {r['speedup_vs_naive']:>7.2f} {_hm(r['full_10k_steps_min']):>7}")
    out = Path(args.out) if args.out else RESULTS / f"{device_slug(name)}-train_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    import torchvision
    record = dict(device=str(device), device_name=name, torch=torch.__version__, torchvision=torchvision.__version__,
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"), steps=args.steps, warmup=args.warmup,
                  naive_workers=args.workers, compile=args.compile, threads=torch.get_num_threads(),
                  cpu_count=os.cpu_count(), load_average_before=load_before, load_average_after=_loadavg(), rows=rows)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out} (load average {load_before} before, {record['load_average_after']} after, "
          f"{os.cpu_count()} cores)")
    return 0


VARIANTS = {"bf16": dict(amp=True), "bf16+cl": dict(amp=True, channels_last=True), "fp32+cl": dict(channels_last=True),
            "bf16+compile": dict(amp=True, compile=True), "fp32+compile": dict(compile=True)}


def _time_variant(cfg, train_set, device, steps, warmup, name):
    """steps/s of one runtime combination, in a child process: torch.compile has aborted the whole process on
    one CPU here ("double free or corruption"), and a crash must cost one cell of the table, not the run."""
    import subprocess
    code = ("import sys,json,torch; from cifar_nb import data, experiments; from cifar_nb.engine.runtime import Runtime; "
            "sys.path.insert(0, %r); from train_speed import time_fast; torch.set_num_threads(%d); "
            "exp=experiments.get(%r); tr=data.load(%r,'train'); cfg=exp.make_config(dataset=%r); "
            "print(json.dumps(time_fast(cfg, tr, torch.device(%r), %d, %d, False, runtime=Runtime(**%r))))"
            % (str(Path(__file__).resolve().parent), torch.get_num_threads(), cfg.experiment, cfg.dataset,
               cfg.dataset, str(device), steps, warmup, VARIANTS[name]))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        print(f"    {name} failed (exit {p.returncode}): {(p.stderr.strip().splitlines() or ['?'])[-1][:200]}")
        return None
    return float(p.stdout.strip().splitlines()[-1])


def _loadavg():
    """1-minute load average: other processes on the machine make the timings worth less."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _hm(minutes: float) -> str:
    return f"{int(minutes // 60)}h{int(minutes % 60):02d}m"


if __name__ == "__main__":
    sys.exit(main())
