"""Evaluating generators: FID, its offline substitute FD-cls + KID, interpolations, nearest neighbours, figures.

Scores, and when each one is computed:

* FID: torch-fidelity's Fréchet Inception Distance ('inception-v3-compat', the standard TF-Inception
  weights) between the generated images and the CIFAR-100 test set (10,000 images). It needs the weights
  file and the real CIFAR-100 test set. Nothing here downloads: where either is missing, `compute_fid`
  raises `MetricUnavailable` naming the file and where to put it, and `evaluate_generator` records
  fid=None with that reason.
* FD-cls + KID: always computed, offline-safe. The same Fréchet distance (and torch-fidelity's KID),
  but in the penultimate features of a small classifier this project trains on the generator's own
  dataset (report C's DenseNet, `load_feature_net`; trained as a run of its own by cifar_nb.runs). It is
  a different number from FID and is never called FID; it compares runs of this book with each other,
  not with the reports.
* Nearest training neighbours in pixel space (always) and in LPIPS-AlexNet distance (report A's
  "LPIPS 0.146", where torchvision's AlexNet weights are in the torch hub cache).

A trainer hands its model over as a `GeneratorHandle` (cifar_nb.sampling, which also draws the samples and
the interpolations) and calls `evaluate_generator` once at the end.
"""
from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from .artifacts import atomic_write_bytes
from .sampling import GeneratorHandle, generate, interpolation_grid, resize_uint8

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"   # what torch-fidelity downloads
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
INCEPTION_ENV = "CIFAR_NB_INCEPTION_WEIGHTS"
FID_REFERENCE = "CIFAR-100 test, 10,000 images"
FID_METRIC = f"FID (torch-fidelity {torch_fidelity.__version__}, inception-v3-compat, 2048-d pool features)"
KID_SUBSET_SIZE = 1000   # images per KID subset (capped by the smaller set)
KID_SUBSETS = 100


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (missing weights or reference data); the message says what to do."""


# ---------------------------------------------------------------------------------------------
# FD-cls: a project classifier's penultimate features, plugged into torch-fidelity

class TensorImages(Dataset):
    """uint8 [N, 3, H, W] images as the Dataset torch-fidelity reads."""

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images = images.cpu()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


@dataclass
class FeatureNet:
    """A trained classifier seen as a feature extractor: penultimate features = the input of its last
    nn.Linear (every classifier here ends in one)."""

    model: nn.Module
    preprocess: Callable[[torch.Tensor], torch.Tensor]   # uint8 batch on the model's device -> its input
    image_size: int
    name: str = "fd-cls"          # torch-fidelity registry name
    description: str = ""
    run_hash: str | None = None
    test_acc: float | None = None

    def __post_init__(self):
        linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("FeatureNet needs a classifier ending in an nn.Linear head")
        self.head = linears[-1]
        self.model.eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images -> (penultimate features, logits), float32."""
        x = resize_uint8(x.to(next(self.model.parameters()).device), self.image_size)
        grabbed = []
        hook = self.head.register_forward_pre_hook(lambda m, inp: grabbed.append(inp[0].flatten(1)))
        try:
            logits = self.model(self.preprocess(x))
        finally:
            hook.remove()
        return grabbed[-1].float(), logits.float()

    def confidence(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Max softmax probability per image, on the CPU."""
        return torch.cat([self(images[i:i + batch_size])[1].softmax(1).amax(1).cpu()
                          for i in range(0, len(images), batch_size)])


_FEATURE_NETS: dict[str, FeatureNet] = {}


class ClassifierFeatures(FeatureExtractorBase):
    """torch-fidelity's view of a registered FeatureNet (looked up by the registry name)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        self.fnet = _FEATURE_NETS[name]
        self.net = self.fnet.model   # a submodule, so torch-fidelity's .cuda() moves it

    @staticmethod
    def get_provided_features_list():
        return ("penultimate", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "penultimate"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return None

    def forward(self, x):
        feats, logits = self.fnet(x)
        out = {"penultimate": feats.double(), "logits": logits.double()}   # float64 statistics
        return tuple(out[k] for k in self.features_list)


def register_feature_net(fnet: FeatureNet) -> str:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    _FEATURE_NETS[fnet.name] = fnet
    if fnet.name not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(fnet.name, ClassifierFeatures)
    return fnet.name


def _fidelity(gen: torch.Tensor, ref: torch.Tensor, device, **kw) -> dict:
    return torch_fidelity.calculate_metrics(
        input1=TensorImages(gen), input2=TensorImages(ref), cuda=torch.device(device).type == "cuda",
        cache=False, save_cpu_ram=True, verbose=False, **kw)   # save_cpu_ram: no DataLoader workers


def fd_cls(gen: torch.Tensor, ref: torch.Tensor, fnet: FeatureNet, device="cpu",
           kid_subset_size: int = KID_SUBSET_SIZE, kid_subsets: int = KID_SUBSETS, seed: int = 0, batch_size: int = 256) -> dict:
    """FD-cls (Fréchet distance in `fnet`'s penultimate features) and KID, by torch-fidelity.

    gen, ref: uint8 [N, 3, H, W]; gen is resized to the reference size first. KID's subset size is
    capped by the smaller set and reported.
    """
    gen = resize_uint8(gen, ref.shape[-1])
    sub = min(kid_subset_size, len(gen), len(ref))
    m = _fidelity(gen, ref, device, feature_extractor=register_feature_net(fnet), fid=True, kid=True,
                  kid_subset_size=sub, kid_subsets=kid_subsets, rng_seed=seed, batch_size=batch_size)
    return {"fd_cls": m[torch_fidelity.KEY_METRIC_FID], "kid_mean": m[torch_fidelity.KEY_METRIC_KID_MEAN],
            "kid_std": m[torch_fidelity.KEY_METRIC_KID_STD], "kid_subset_size": sub, "kid_subsets": kid_subsets,
            "fd_cls_samples": len(gen)}


def load_feature_net(res, data_root=None, device="cpu") -> FeatureNet:
    """The FD-cls feature network of a finished feature run (`res`, a RunResult of experiments.feature_config):
    its final weights from <run_dir>/weights.pt, normalised as it was trained. runs.feature_net_for trains or
    reuses that run; this only loads it."""
    from . import augment, data
    from .models import build_for_config
    cfg, dataset, steps = res.config, res.config.dataset, res.config.steps
    weights = res.run_dir / "weights.pt"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: the classifier trainer should save its final weights "
                                f"there. Delete {res.run_dir} and run again.")
    info = data.describe(dataset, data_root)
    model = build_for_config(cfg, info.num_classes, info.image_size, info.channels)
    state = torch.load(weights, map_location="cpu", weights_only=False)
    if isinstance(state, nn.Module):
        model = state
    else:
        if isinstance(state.get("model"), dict):   # {"model": state_dict, ...} also accepted
            state = state["model"]
        model.load_state_dict(state)
    acc = res.metrics.get("test_acc")
    return FeatureNet(model.to(device), lambda x: augment.normalize(x, info), info.image_size,
                      name=f"fd-cls-{cfg.hash}", run_hash=cfg.hash, test_acc=acc,
                      description=f"DenseNet (report C's net) trained {steps} steps on {info.display_name}"
                                  + (f", test accuracy {acc:.3f}" if acc is not None else ""))


# ---------------------------------------------------------------------------------------------
# FID (gated on the Inception weights and the real CIFAR-100 test set)

def hub_checkpoints() -> Path:
    """Where torch.hub (torchvision, torch-fidelity) caches weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()).expanduser().resolve() / "checkpoints"


def inception_weights_file(path=None) -> Path:
    """The Inception weights file to give torch-fidelity, or MetricUnavailable saying where to put it."""
    given = path or os.environ.get(INCEPTION_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            where = "inception_weights=" if path else f"${INCEPTION_ENV}="
            raise MetricUnavailable(f"FID: {where}{given} is not a file. Point it at torch-fidelity's Inception "
                                    f"weights {INCEPTION_FILE}.")
        return p
    p = hub_checkpoints() / INCEPTION_FILE
    if p.is_file():
        return p
    raise MetricUnavailable(
        f"FID needs torch-fidelity's Inception-v3 weights {INCEPTION_FILE} (feature extractor "
        f"'inception-v3-compat'), which are not in the torch hub cache {p.parent}/ and are not downloaded "
        f"here. Either put the file there (TORCH_HOME moves that cache; the file is {INCEPTION_URL}), or give "
        f"its path explicitly: set {INCEPTION_ENV}=/path/to/{INCEPTION_FILE} or pass inception_weights=... to "
        "evaluate_generator / compute_fid (it reaches torch-fidelity as feature_extractor_weights_path).")


def is_cifar100(info) -> bool:
    """Real CIFAR-100 (torchvision's pickles, or a lossless ImageFolder copy the data module vouches for)."""
    return not info.standin and info.num_classes == 100 and info.display_name.startswith("CIFAR-100")


def check_fid_reference(ref) -> None:
    """FID is only ever computed against the real CIFAR-100 test set, all 10,000 images."""
    info = ref.info
    if not is_cifar100(info) or len(ref) != 10_000:
        raise MetricUnavailable(
            f"FID reference must be the real CIFAR-100 test set (10,000 images); got {info.display_name!r} "
            f"with {len(ref)} images. Put the CIFAR-100 python pickles (cifar-100-python/) under the data root.")


def compute_fid(images: torch.Tensor, data_root=None, device="cpu", inception_weights=None, reference=None,
                batch_size: int = 200) -> dict:
    """FID of uint8 images vs the CIFAR-100 test set (torch-fidelity, inception-v3-compat)."""
    weights = inception_weights_file(inception_weights)   # cheap check first, before loading any data
    if reference is None:
        from . import data
        try:
            reference = data.load("cifar100", "test", root=data_root)
        except Exception as e:   # DataError / FileNotFoundError: the full CIFAR-100 is not here
            raise MetricUnavailable(f"FID needs the real CIFAR-100 test set: {e}") from e
    check_fid_reference(reference)
    ref = reference.images.cpu()
    m = _fidelity(resize_uint8(images, ref.shape[-1]), ref, device, feature_extractor="inception-v3-compat",
                  feature_extractor_weights_path=str(weights), fid=True, batch_size=batch_size)
    return {"fid": m[torch_fidelity.KEY_METRIC_FID], "fid_samples": len(images), "fid_reference": FID_REFERENCE,
            "fid_metric": FID_METRIC}


# ---------------------------------------------------------------------------------------------
# nearest training neighbours: pixel L2 and LPIPS

def alexnet_weights_file() -> Path:
    from torchvision.models import AlexNet_Weights
    return hub_checkpoints() / AlexNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]


def lpips_model(device="cpu", random_backbone: bool = False) -> nn.Module:
    """lpips.LPIPS(net='alex'). Its linear heads ship with the package; the AlexNet backbone comes from
    torchvision's hub cache, which is checked first (lpips would otherwise try to download it).
    random_backbone=True is for tests of the plumbing only: its distances are not LPIPS."""
    try:
        import lpips
    except ImportError as e:   # the GPU machines have no lpips unless a lease installs it
        raise MetricUnavailable(f"LPIPS needs the lpips package, which is not installed here ({e}); "
                                "pip install lpips (the lease kit carries its wheel)") from None
    if not random_backbone and not alexnet_weights_file().is_file():
        f = alexnet_weights_file()
        raise MetricUnavailable(
            f"LPIPS (net='alex') needs torchvision's ImageNet AlexNet weights {f.name}, which are not in the "
            f"torch hub cache {f.parent}/ and are not downloaded here. Put the file there (TORCH_HOME moves "
            f"that cache; the file is https://download.pytorch.org/models/{f.name}).")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torchvision's 'pretrained=' deprecation, inside lpips
        net = lpips.LPIPS(net="alex", pnet_rand=random_backbone, verbose=False)
    return net.eval().requires_grad_(False).to(device)


def _lpips_embed(net, x: torch.Tensor) -> torch.Tensor:
    """Vectors whose squared L2 distance is exactly LPIPS: sum over layers of the spatial mean of
    sum_c w_c (f0 - f1)^2 on unit-normalised features, with w_c >= 0 the package's linear weights."""
    import lpips
    parts = []
    for k, f in enumerate(net.net(net.scaling_layer(x))):
        w = net.lins[k].model[-1].weight.clamp_min(0)            # [1, C, 1, 1]
        f = lpips.normalize_tensor(f) * w.sqrt() / math.sqrt(f.shape[2] * f.shape[3])
        parts.append(f.flatten(1))
    return torch.cat(parts, 1)


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, train: torch.Tensor, k: int = 1, metric: str = "pixel",
                       device="cpu", chunk: int = 2048, lpips_net: nn.Module | None = None):
    """The k nearest training images of each query (uint8 [q, 3, H, W] and [N, 3, H, W], same size).

    metric "pixel": RMS pixel difference on [0, 1] (L2 / sqrt(3HW)); "lpips": LPIPS distance (pass
    lpips_model()). Candidates come from one matrix product per training chunk on `device`; the returned
    distances are then recomputed exactly for the chosen pairs (LPIPS by the package's own forward).
    Returns (distances float [q, k], indices long [q, k]) on the CPU, nearest first.
    """
    device = torch.device(device)
    if metric == "pixel":
        embed = lambda x: x.to(device).float().div(255).flatten(1)
    elif metric == "lpips":
        if lpips_net is None:
            raise ValueError("metric='lpips' needs lpips_net=lpips_model(device)")
        embed = lambda x: _lpips_embed(lpips_net, x.to(device).float() / 127.5 - 1)
    else:
        raise ValueError(f"metric must be 'pixel' or 'lpips', got {metric!r}")
    k = min(k, len(train))
    q = torch.cat([embed(queries[i:i + chunk]) for i in range(0, len(queries), chunk)])
    q2 = q.pow(2).sum(1, keepdim=True)
    best_d = torch.full((len(q), 0), float("inf"), device=device)
    best_i = torch.zeros((len(q), 0), dtype=torch.long, device=device)
    for s in range(0, len(train), chunk):
        t = embed(train[s:s + chunk])
        d = (q2 + t.pow(2).sum(1)[None] - 2 * q @ t.T).clamp_min(0)
        idx = torch.arange(s, s + len(t), device=device).expand(len(q), -1)
        best_d, pos = torch.cat([best_d, d], 1).topk(k, dim=1, largest=False)
        best_i = torch.cat([best_i, idx], 1).gather(1, pos)
    best_i = best_i.cpu()
    nb = train[best_i.flatten().to(train.device)].cpu()              # [q*k, 3, H, W]
    qq = queries.cpu().repeat_interleave(k, 0)
    if metric == "pixel":
        dist = (qq.float() - nb.float()).div(255).pow(2).flatten(1).mean(1).sqrt()
    else:
        dist = torch.cat([lpips_net(qq[i:i + chunk].to(device).float() / 127.5 - 1,
                                    nb[i:i + chunk].to(device).float() / 127.5 - 1).flatten().cpu()
                          for i in range(0, len(qq), chunk)])
    dist = dist.cpu().view(-1, k)
    order = dist.argsort(1)        # the exact distances may reorder near-ties
    return dist.gather(1, order), best_i.gather(1, order)


# ---------------------------------------------------------------------------------------------
# the entry point

def evaluate_generator(handle: GeneratorHandle, ctx=None, *, dataset: str | None = None, run_dir=None,
                       data_root=None, device=None, seed: int | None = None, progress: bool | None = None,
                       n_samples: int = 10_000, feature_net: FeatureNet | None = None, inception_weights=None,
                       interpolation: str = "slerp", nn_samples: int = 1000, lpips: bool = True,
                       batch_size: int = 500, n_grid: int = 64, train_set=None, test_set=None,
                       strict: bool = False) -> dict:
    """Score a trained generator and write its figures into `run_dir`. Returns a flat JSON-able dict.

    Always: FD-cls + KID against the test split of `dataset` (offline-safe), pixel nearest neighbours,
    four figures (samples_random.png, interpolation.png, samples_cherry.png, nearest_neighbours.png) and
    samples.npz (the first `n_grid` samples). When possible: FID vs CIFAR-100 test (only for a generator
    trained on CIFAR-100) and LPIPS nearest neighbours; otherwise fid / lpips_nn are None and
    fid_status / lpips_status say why. strict=True raises instead.

    Usage, at the end of a GAN or DDPM trainer (the RunContext gives dataset, run_dir, data_root,
    device, seed and progress; any of them can also be passed by keyword, and must be without ctx):

        from cifar_nb.metrics import evaluate_generator
        scores = evaluate_generator(handle, ctx, n_samples=10_000, interpolation="slerp")
        return dict(final_metrics, **scores)

    FD-cls is measured in `feature_net`, by default the RunContext's: cifar_nb.runs.run trains or reuses the
    feature run of the config's train["feature_steps"] before training the generator, and hands it in. Scoring
    never starts a run of its own.
    `train_set` / `test_set` are pre-loaded splits (data.ImageSet-like: .images uint8, .info); by
    default they are loaded with cifar_nb.data.
    """
    from .figures import image_grid, save_figure
    if ctx is not None:
        dataset = dataset or ctx.config.dataset
        run_dir = run_dir or ctx.run_dir
        data_root = data_root if data_root is not None else ctx.data_root
        device = device or ctx.device
        seed = ctx.config.seed if seed is None else seed
        progress = ctx.progress if progress is None else progress
    if dataset is None or run_dir is None:
        raise ValueError("evaluate_generator needs a RunContext, or dataset= and run_dir=")
    if interpolation not in ("slerp", "lerp"):
        raise ValueError(f"interpolation must be 'slerp' or 'lerp', got {interpolation!r}")
    device, run_dir = torch.device(device or "cpu"), Path(run_dir)
    seed, progress = seed or 0, True if progress is None else progress
    if train_set is None or test_set is None:
        from . import data
        if train_set is None:
            train_set = data.load(dataset, "train", root=data_root)
        if test_set is None:
            test_set = data.load(dataset, "test", root=data_root)
    info = test_set.info
    size = int(test_set.images.shape[-1])
    if feature_net is None:
        feature_net = getattr(ctx, "feature_net", None)
    if feature_net is None:
        raise ValueError("evaluate_generator needs the FD-cls feature network: cifar_nb.runs.run hands it to a "
                         "generator run's RunContext; elsewhere pass feature_net=metrics.load_feature_net("
                         "runs.run(experiments.feature_config(dataset, steps)))")

    s = generate(handle, n_samples, seed=seed, batch_size=batch_size, progress=progress)
    images = torch.cat([resize_uint8(s.images[i:i + batch_size].to(device), size).cpu()
                        for i in range(0, n_samples, batch_size)])          # at the dataset's size
    gen_size = int(s.images.shape[-1])
    out = {"eval_seed": seed, "generated_image_size": gen_size, "eval_image_size": size,
           "resized_for_eval": f"bilinear antialiased {gen_size}->{size}" if gen_size != size else None,
           "torch_fidelity_version": torch_fidelity.__version__,
           "sampling_mode": getattr(handle, "sampling_mode", "eval")}

    out.update(fd_cls(images, test_set.images.cpu(), feature_net, device, seed=seed))
    out.update(fd_cls_metric=f"FD-cls: Fréchet distance in penultimate features of {feature_net.description} "
                             "(NOT FID; comparable only within this book)",
               fd_cls_reference=f"{info.display_name} test split, {len(test_set)} images",
               fd_cls_feature_run=feature_net.run_hash)

    # FID: the reports' metric, only where it means what they meant
    out.update(fid=None, fid_samples=None, fid_reference=FID_REFERENCE, fid_metric=FID_METRIC)
    try:
        if not is_cifar100(info):
            raise MetricUnavailable(f"FID not computed: the generator was trained on {info.display_name}, and "
                                    "FID is defined here against the CIFAR-100 test set")
        out.update(compute_fid(images, data_root, device, inception_weights, test_set))
        out["fid_status"] = "ok"
    except MetricUnavailable as e:
        if strict:
            raise
        out["fid_status"] = str(e)

    # nearest training neighbours of the first nn_samples samples (random, not cherry-picked)
    queries, train = images[:nn_samples], train_set.images
    d_pix, i_pix = nearest_neighbours(queries, train, k=5, metric="pixel", device=device)
    out.update(nn_samples=len(queries), nn_pixel_mean=d_pix[:, 0].mean().item(),
               nn_pixel_metric="RMS pixel difference (pixels in [0, 1]) to the nearest training image")
    nn_idx, nn_name = i_pix, "pixel L2"
    out.update(lpips_nn=None, lpips_status="not requested")
    if lpips:
        try:
            net = lpips_model(device)
            d_lp, i_lp = nearest_neighbours(queries, train, k=5, metric="lpips", device=device, lpips_net=net)
            out.update(lpips_nn=d_lp[:, 0].mean().item(), lpips_status="ok")
            nn_idx, nn_name = i_lp, "LPIPS (AlexNet)"
        except MetricUnavailable as e:
            if strict:
                raise
            out["lpips_status"] = str(e)

    # cherry-picking by a stated rule, never by hand
    n_pick = min(n_grid, n_samples)
    if s.scores is not None:
        rank, rule = s.scores, f"top {n_pick} of {n_samples:,} samples by the discriminator's score D(x)"
    else:
        rank = feature_net.confidence(images)
        rule = f"top {n_pick} of {n_samples:,} samples by the FD-cls classifier's max softmax confidence"
    pick = rank.argsort(descending=True)[:n_pick]
    out["cherry_pick_rule"] = rule

    grid = s.images[:n_pick]
    interp, _ = interpolation_grid(handle, 8, 10, mode=interpolation, seed=seed)
    n_show = min(8, len(queries))
    panel = torch.cat([queries[:n_show, None], train[nn_idx[:n_show].to(train.device)].cpu()], 1).flatten(0, 1)
    interp_title = {"slerp": "Spherical (SLERP)", "lerp": "Linear"}[interpolation] + " latent interpolation"
    if handle.conditional:
        interp_title += ", conditioned on the nearer endpoint's label"
    figures = {
        "figure_random": ("samples_random.png", image_grid(
            grid, nrow=8, title=f"Random samples, not cherry-picked (first {n_pick}, seed {seed})")),
        "figure_interpolation": ("interpolation.png", image_grid(interp.flatten(0, 1), nrow=10,
                                                               title=interp_title)),
        "figure_cherry": ("samples_cherry.png", image_grid(s.images[pick], nrow=8, title="Cherry-picked: " + rule)),
        "figure_nn": ("nearest_neighbours.png", image_grid(
            panel, nrow=panel.shape[0] // n_show,
            title=f"Left: random sample; right: its 5 nearest training images ({nn_name})")),
    }
    for key, (name, fig) in figures.items():
        save_figure(fig, run_dir / name)
        out[key] = name
    buf = io.BytesIO()
    np.savez_compressed(buf, images=grid.numpy(),
                        labels=(s.labels[:n_pick].numpy() if s.labels is not None else np.zeros(0, np.int64)))
    atomic_write_bytes(run_dir / "samples.npz", buf.getvalue())
    out["samples_file"] = "samples.npz"
    return out
