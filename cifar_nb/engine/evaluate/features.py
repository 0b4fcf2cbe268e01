"""FD-cls and KID: a classifier of this project as torch-fidelity's feature extractor (offline-safe; never
called FID)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from cifar_nb.engine import augment, data
from cifar_nb.engine.artifacts import sha256_file
from cifar_nb.engine.evaluate.sampling import resize_uint8
from cifar_nb.models import build_for_config

KID_SUBSET_SIZE = 1000   # images per KID subset (capped by the smaller set)
KID_SUBSETS = 100


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (missing weights or reference data); the message says what to do."""


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
    # the weights' digest: two FD-cls numbers compare only when measured in the same weights, and a feature run
    # retrained on another machine (its weights.pt is not in git) need not reproduce them bit for bit
    weights_sha256: str | None = None

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
                      weights_sha256=sha256_file(weights),
                      description=f"DenseNet (report C's net) trained {steps} steps on {info.display_name}"
                                  + (f", test accuracy {acc:.3f}" if acc is not None else ""))
