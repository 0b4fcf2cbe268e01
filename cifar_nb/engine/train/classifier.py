"""The classifier training loop shared by every Part I report.

One loop, driven by the RunConfig: the optimiser, scheduler, augmentation and loss knobs come from the
config; what differs between reports lives there, not here.

Data: each split is loaded once as uint8 tensors on the training device. Batches are drawn without
replacement (a new permutation each epoch, from a torch.Generator on the device; the last partial batch
of an epoch is dropped so every step has the same shape) and augmented on the device by augment.GpuAugment.
Nothing in the hot loop leaves the device: losses and hits accumulate as tensors and are read out only when
the run evaluates.

Counting: a step is one optimiser update. The run evaluates every `eval_every` steps and at the last step.

What is measured, at each evaluation, with the model in eval mode and without augmentation:
    test_loss, test_acc    the whole test split ("val_*" instead when train["eval_split"] == "val")
    train_loss, train_acc  a fixed subset of the training split (train["train_eval_size"], default 10,000
                           images, the same subset for every seed), measured exactly like the test split,
                           so that the gap between the two is over-fitting and nothing else
    stream_loss, stream_acc  the running mean over the steps since the last evaluation, on the augmented
                           batches, in train mode, with the training loss (label smoothing included): what a
                           training curve made inside the loop shows
Eval losses are plain cross-entropy, without label smoothing. Final metrics: the last evaluation, plus
test_loss/test_acc on the test split (always), and best_<split>_acc/best_<split>_step, best_train_acc.

train knobs (cfg.train):
    label_smoothing   cross-entropy label smoothing (report E: 0.02)
    val_size          hold out this many training images as a validation split (report D: 10,000). The split
                      is seeded by split_seed (default 0), not by the run's seed, so all seeds and all search
                      trials see the same split.
    eval_split        "test" (default) or "val": what the periodic evaluation uses. "val" needs val_size, or a
                      dataset with its own val split (AddNIST).
    ema               EMA decay of the weights (e.g. 0.999; None, the default, for none): an
                      AveragedModel of the net, buffers (BatchNorm statistics) included, updated after every step.
                      Every evaluation, the final metrics and weights.pt are then the average's; the stream_*
                      figures stay the trained net's own.
    tta               test-time augmentation at every evaluation: None (the default), "hflip" (the mean of the
                      logits of each image and its mirror image), "auto" ("hflip" where a mirror image keeps
                      its label, DatasetInfo.mirror_invariant, none on AddNIST), or "symmetries" (the mean over
                      every view the dataset declares label-preserving: the mirror image where "auto" flips, and
                      all orders of the channels where DatasetInfo.channel_order_invariant, AddNIST's 3! = 6)
    data_init         N: before training, hand the model's init_from_data() N training images drawn at random
                      (seeded by the run's seed; files in class order would bias a prefix), normalised (our
                      classifier sets its first convolution to whiten their 3x3 patches); 0 or absent (the
                      default) for none. A model without init_from_data refuses it.
    train_eval_size, eval_batch_size. (compile, channels_last and amp are accepted for old configs but are
    runtime settings, cifar_nb.engine.runtime: they override its measured defaults and never belong in a new config.)

Resuming: the checkpoint holds the model (and its EMA), optimiser, scheduler, step, the data generator and the
global RNG (dropout draws from it), the epoch's permutation and the running sums, so on a CPU an interrupted and
resumed run ends with exactly the metrics of an uninterrupted one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cifar_nb.engine import augment, data
from cifar_nb.engine.artifacts import atomic_torch_save
from cifar_nb.engine.runtime import Runtime, default_runtime
from cifar_nb.engine.train.loop import Steps, run_steps
from cifar_nb.engine.train.optim import build_optimizer, build_scheduler
from cifar_nb.models import build_for_config

TRAIN_KEYS = ("label_smoothing", "val_size", "split_seed", "eval_split", "train_eval_size", "eval_batch_size",
              "ema", "tta", "data_init", "compile", "channels_last", "amp")
TTA = (None, "hflip", "auto", "symmetries")


def _train_knobs(cfg) -> dict:
    t = dict(cfg.train)
    unknown = sorted(set(t) - set(TRAIN_KEYS))
    if unknown:
        raise ValueError(f"unknown classifier train key(s) {unknown}; known: {', '.join(TRAIN_KEYS)}")
    ema = t.get("ema")
    if ema is not None and not (isinstance(ema, (int, float)) and 0 < ema < 1):
        raise ValueError(f"train['ema'] is an EMA decay in (0, 1), e.g. 0.999, or None; got {ema!r}")
    if t.get("tta") not in TTA:
        raise ValueError(f"train['tta'] must be one of {TTA}, got {t.get('tta')!r}")
    n = t.get("data_init") or 0
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"train['data_init'] is a number of training images (>= 0), got {n!r}")
    return t


def _splits(cfg, t, root, device):
    """(train, eval ImageSet, eval split name, test ImageSet)."""
    name = t.get("eval_split", "test")
    if name not in ("test", "val"):
        raise ValueError(f"train['eval_split'] must be 'test' or 'val', got {name!r}")
    train = data.load(cfg.dataset, "train", root=root, device=device)
    test = data.load(cfg.dataset, "test", root=root, device=device)
    val = None
    if t.get("val_size"):
        train, val = data.train_val_split(train, int(t["val_size"]), seed=int(t.get("split_seed", 0)))
    elif name == "val":
        val = _own_val(cfg, root, device)
    return train, (val if name == "val" else test), name, test


def _own_val(cfg, root, device):
    if "val" not in data.describe(cfg.dataset, root).splits:
        raise ValueError(f"a validation split needs train['val_size'] (a held-out part of the training split): "
                         f"{cfg.dataset} has no validation split of its own")
    return data.load(cfg.dataset, "val", root=root, device=device)


def held_out(cfg, split, root, device):
    """The images a run of `cfg` never trained on, by split name: "test", or "val" (the part of the training split
    that train['val_size'] held out, else the dataset's own validation split)."""
    if split == "test":
        return data.load(cfg.dataset, "test", root=root, device=device)
    if split != "val":
        raise ValueError(f"a classifier is evaluated on 'val' or 'test', not {split!r}")
    t = _train_knobs(cfg)
    if t.get("val_size"):
        train = data.load(cfg.dataset, "train", root=root, device=device)
        return data.train_val_split(train, int(t["val_size"]), seed=int(t.get("split_seed", 0)))[1]
    return _own_val(cfg, root, device)


def evaluate_weights(cfg, weights: dict, imageset, runtime: Runtime, batch_size=1024):
    """(loss, accuracy) of a finished run's weights.pt on `imageset`, as the run's own evaluations measured:
    the evaluated weights (the EMA's where the run kept one), its test-time views, eval mode."""
    info, t = imageset.info, _train_knobs(cfg)
    model = build_for_config(cfg, info.num_classes, info.image_size, info.channels)
    model.load_state_dict(weights)
    model = model.to(imageset.images.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return evaluate(model, imageset, info, batch_size, runtime.channels_last, runtime.amp,
                    augment.tta_views(t.get("tta"), info))


class Batches:
    """Epochs of random batches of indices, drawn on the device; drops each epoch's last partial batch."""

    def __init__(self, n, batch_size, generator):
        self.n, self.bs, self.g = n, batch_size, generator
        self.perm, self.pos = None, n

    def next(self):
        if self.pos + self.bs > self.n:
            self.perm = torch.randperm(self.n, generator=self.g, device=self.g.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.bs]
        self.pos += self.bs
        return idx

    def state_dict(self):
        return {"perm": self.perm, "pos": self.pos, "generator": self.g.get_state()}

    def load_state_dict(self, s):
        self.perm, self.pos = s["perm"], s["pos"]
        self.g.set_state(s["generator"].cpu())


@torch.no_grad()
def evaluate(model, imageset, info, batch_size=1024, channels_last=False, amp=False, tta=False):
    """(mean cross-entropy, accuracy) over a whole ImageSet, eval mode, no augmentation. tta: False, True (the
    image and its mirror image) or a list of tta_views(); the logits of the views are averaged."""
    views = tta if isinstance(tta, list) else [(False, None), (True, None)] if tta else [(False, None)]
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=imageset.labels.device)
    hits = torch.zeros((), dtype=torch.long, device=imageset.labels.device)
    for i in range(0, len(imageset), batch_size):
        x = augment.normalize(imageset.images[i:i + batch_size], info)
        y = imageset.labels[i:i + batch_size]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = sum(model(_view(x, flip, order)).float() for flip, order in views) / len(views)
        loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        hits += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = max(1, len(imageset))
    return loss.item() / n, hits.item() / n


def _view(x, flip, order):
    x = x.flip(3) if flip else x
    return x[:, list(order)] if order is not None else x


def _rng_state(device):
    s = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        s["cuda"] = torch.cuda.get_rng_state(device)
    return s


def _set_rng_state(s, device):
    torch.set_rng_state(s["cpu"].cpu())
    if device.type == "cuda" and "cuda" in s:
        torch.cuda.set_rng_state(s["cuda"].cpu(), device)


class Loop:
    """What one optimisation step needs: the model, optimiser, scheduler, augmentation and batch sampler.
    train() drives it; benchmarks/train_speed.py times its step() alone."""

    def __init__(self, cfg, train_set, device, use_compile=False, runtime: Runtime | None = None):
        t, device = _train_knobs(cfg), torch.device(device)
        cuda = device.type == "cuda"
        if runtime is None:
            legacy = {k: t.get(k) for k in ("amp", "channels_last", "compile")}
            runtime = default_runtime(cfg.model, device, **legacy)
        if use_compile:
            runtime = Runtime(runtime.amp, runtime.channels_last, True, runtime.threads)
        self.runtime = runtime
        self.cfg, self.device, self.train_set, info = cfg, device, train_set, train_set.info
        self.channels_last = runtime.channels_last
        self.amp = runtime.amp
        self.smoothing = float(t.get("label_smoothing", 0.0))
        if len(train_set) < cfg.batch_size:
            raise ValueError(f"batch_size {cfg.batch_size} is larger than the training split ({len(train_set)} images)")

        torch.manual_seed(cfg.seed)   # model init, and dropout during training, draw from the global RNG
        model = build_for_config(cfg, info.num_classes, info.image_size, info.channels).to(device)
        if t.get("data_init"):
            if not hasattr(model, "init_from_data"):
                raise ValueError(f"train['data_init'] asks model {cfg.model!r} for a data-dependent init, which it "
                                 "does not have (no init_from_data method)")
            pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed))
            pick = pick[:int(t["data_init"])]
            model.init_from_data(augment.normalize(train_set.images[pick.to(train_set.images.device)], info))
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        # the weights' EMA (train["ema"]): what every evaluation and weights.pt use; the net itself trains
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(float(t["ema"])), use_buffers=True) \
            if t.get("ema") else None
        self.eval_model = self.ema.module if self.ema is not None else self.model
        self.tta = augment.tta_views(t.get("tta"), info)
        self.opt = build_optimizer(self.model.parameters(), cfg.optimizer)
        self.sched, self.sched_every = build_scheduler(self.opt, cfg.scheduler, cfg.steps)
        self.aug = augment.GpuAugment(cfg.augment, info)
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(cfg.seed + 1_000_003)   # a stream apart from the init's
        self.batches = Batches(len(train_set), cfg.batch_size, self.gen)
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.fwd = torch.compile(self.model) if runtime.compile else self.model
        self.step_count = 0
        self.model.train()

    def step(self):
        """One optimisation step; returns (loss, hits) as device tensors (no sync)."""
        idx = self.batches.next()
        x = self.aug(self.train_set.images[idx], self.gen)
        y = self.train_set.labels[idx]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.fwd(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.smoothing)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step_count += 1
        if self.sched is not None and self.step_count % self.sched_every == 0:
            self.sched.step()
        return loss.detach(), (logits.argmax(1) == y).sum()

    def evaluate(self, imageset, batch_size=1024):
        return evaluate(self.eval_model, imageset, self.train_set.info, batch_size, self.channels_last, self.amp,
                        self.tta)

    def state_dict(self):
        s = {"step": self.step_count, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
             "scheduler": self.sched.state_dict() if self.sched is not None else None,
             "batches": self.batches.state_dict(), "rng": _rng_state(self.device)}
        if self.ema is not None:
            s["ema"] = self.ema.state_dict()
        return s

    def load_state_dict(self, s):
        self.model.load_state_dict(s["model"])
        if self.ema is not None:
            self.ema.load_state_dict(s["ema"])
        self.opt.load_state_dict(s["optimizer"])
        if self.sched is not None:
            self.sched.load_state_dict(s["scheduler"])
        self.batches.load_state_dict(s["batches"])
        _set_rng_state(s["rng"], self.device)
        self.step_count = s["step"]


def train(ctx) -> dict:
    cfg, device = ctx.config, torch.device(ctx.device)
    t = _train_knobs(cfg)
    eval_bs = int(t.get("eval_batch_size", 1024))
    train_set, eval_set, split, test_set = _splits(cfg, t, ctx.data_root, device)
    n_train_eval = min(len(train_set), int(t.get("train_eval_size", 10_000)))
    train_eval = train_set.subset(torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))
                                  [:n_train_eval].sort().values)
    loop = Loop(cfg, train_set, device, runtime=ctx.runtime)
    ctx.runtime = loop.runtime

    def step(_done):
        loss, hits = loop.step()
        return {"loss": loss, "hits": hits}

    def report(done, sums, n):
        # sums: training-mode loss and hits over the interval's augmented batches
        ev_loss, ev_acc = loop.evaluate(eval_set, eval_bs)
        tr_loss, tr_acc = loop.evaluate(train_eval, eval_bs)
        row = {"step": done, "lr": loop.opt.param_groups[0]["lr"], "train_loss": tr_loss, "train_acc": tr_acc,
               f"{split}_loss": ev_loss, f"{split}_acc": ev_acc,
               "stream_loss": sums["loss"].item() / n, "stream_acc": sums["hits"].item() / (n * cfg.batch_size)}
        ctx.log(**row)
        return {"loss": f"{row['stream_loss']:.3f}", split: f"{ev_acc:.3f}"}

    def restore(state):
        loop.load_state_dict(state["loop"])
        return loop.step_count

    run_steps(ctx, Steps(total=cfg.steps, step=step, every=cfg.eval_every, report=report,
                         state=lambda: {"loop": loop.state_dict()}, restore=restore))

    atomic_torch_save(ctx.run_dir / "weights.pt",
                      {k: v.detach().cpu().contiguous() for k, v in loop.eval_model.state_dict().items()})
    last = ctx.history[-1]
    best = max(ctx.history, key=lambda r: r[f"{split}_acc"])   # the first of ties
    metrics = {
        "train_acc": last["train_acc"], "train_loss": last["train_loss"],
        "stream_acc": last["stream_acc"], "stream_loss": last["stream_loss"],
        f"{split}_acc": last[f"{split}_acc"], f"{split}_loss": last[f"{split}_loss"],
        f"best_{split}_acc": best[f"{split}_acc"], f"best_{split}_step": best["step"],
        "best_train_acc": max(r["train_acc"] for r in ctx.history),
        "n_train": len(train_set), "n_train_eval": len(train_eval), f"n_{split}": len(eval_set),
    }
    if split != "test":
        metrics["test_loss"], metrics["test_acc"] = loop.evaluate(test_set, eval_bs)
        metrics["n_test"] = len(test_set)
    return metrics
