"""Nearest training neighbours of generated images: pixel L2 and LPIPS-AlexNet distance."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models import AlexNet_Weights

from cifar_nb.engine.artifacts import portable
from cifar_nb.engine.evaluate.features import MetricUnavailable
from cifar_nb.engine.evaluate.fid import hub_checkpoints


def alexnet_weights_file() -> Path:
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
            f"torch hub cache {portable(f.parent)}/ and are not downloaded here. Put the file there (TORCH_HOME moves "
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
