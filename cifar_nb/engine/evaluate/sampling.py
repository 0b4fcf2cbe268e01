"""Drawing from a trained generator: the interface trainers implement, batched sampling, interpolation.

cifar_nb.engine.evaluate.generator scores what these functions return; nothing here needs torch-fidelity or reference data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


class GeneratorHandle(Protocol):
    """What a trained generator exposes to evaluation. GAN and DDPM trainers implement this.

    conditional   True for report B's class-conditional DDPM, False for the DCGANs.
    num_classes   classes of the training set (labels 0..num_classes-1 for a conditional model).
    image_size    side of the images `decode` returns (report A's DCGAN: 64).
    latent_shape  per-sample latent shape: (110,) for a DCGAN with latent 110, (3, 32, 32) for the
                  DDPM's starting noise x_T.

    sample_latents(n, generator) -> Tensor [n, *latent_shape]. `generator` is a CPU torch.Generator, so
        a seed gives the same latents on every machine; the latents may stay on the CPU (decode moves
        them, and the labels it is given, to the model's device).
    decode(latents, labels=None, seed=0) -> Tensor [n, 3, image_size, image_size], float in [-1, 1], on
        the model's device, without gradients. Batches internally if n is large. `labels` is a long
        tensor [n] for a conditional model, None otherwise. `seed` seeds the decoder's own randomness
        (the DDPM's per-step ancestral noise) at the start of the call: two calls with the same seed and
        the same n must give sample i the same noise at every step. `interpolation_grid` relies on this:
        it decodes one column (the same t for every row) per call with a fixed seed, so all images of a
        row share their noise. A GAN ignores `seed`.
    score(images) -> Tensor [n] or None: higher means "more real" (a GAN: its discriminator's output on
        images as `decode` returns them). A model without such a score (the DDPM) returns None, or sets
        the attribute `score = None`.
    """

    conditional: bool
    num_classes: int
    image_size: int
    latent_shape: tuple

    def sample_latents(self, n: int, generator: torch.Generator) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor: ...

    def score(self, images: torch.Tensor) -> torch.Tensor | None: ...


# ---------------------------------------------------------------------------------------------
# interpolation

def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Straight line from a (t=0) to b (t=1); exact at both ends."""
    return torch.lerp(a, b, float(t))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-4) -> torch.Tensor:
    """Spherical interpolation per sample: a, b are [n, ...] (each sample flattened) or one vector.

    Follows the great circle between the directions of a and b; equal-norm endpoints keep their norm
    all along, which keeps Gaussian latents at the radius the generator was trained on. Nearly parallel
    (or anti-parallel) pairs, where the angle is ill-conditioned, fall back to lerp.
    """
    t = float(t)
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    shape = a.shape
    a2, b2 = (a.reshape(1, -1), b.reshape(1, -1)) if a.dim() == 1 else (a.flatten(1), b.flatten(1))
    cos = F.cosine_similarity(a2, b2, dim=1, eps=1e-12).clamp(-1, 1)
    omega = torch.acos(cos)[:, None]
    so = torch.sin(omega)
    out = (torch.sin((1 - t) * omega) * a2 + torch.sin(t * omega) * b2) / so.clamp_min(eps)
    out = torch.where(so > eps, out, torch.lerp(a2, b2, t))
    return out.reshape(shape)


@torch.no_grad()
def interpolation_grid(handle: GeneratorHandle, n_rows: int = 8, n_steps: int = 10,
                       generator: torch.Generator | None = None, mode: str = "slerp", seed: int = 0):
    """Decode `n_rows` latent interpolations of `n_steps` points each, endpoints included.

    Returns (images float [-1, 1] on the CPU, [n_rows, n_steps, 3, H, W]; labels [n_rows, n_steps] or
    None). A conditional model interpolates the starting noise and conditions every image on the label
    of the nearer endpoint (t < 0.5: the left image's label), as report B did.
    """
    if mode not in ("slerp", "lerp"):
        raise ValueError(f"mode must be 'slerp' or 'lerp', got {mode!r}")
    if n_steps < 2:
        raise ValueError(f"n_steps must be at least 2 (the two endpoints), got {n_steps}")
    generator = generator if generator is not None else torch.Generator().manual_seed(seed)
    interp = slerp if mode == "slerp" else lerp
    z0, z1 = handle.sample_latents(n_rows, generator), handle.sample_latents(n_rows, generator)
    y0 = y1 = None
    if handle.conditional:
        y0 = torch.randint(handle.num_classes, (n_rows,), generator=generator).to(z0.device)
        y1 = torch.randint(handle.num_classes, (n_rows,), generator=generator).to(z0.device)
    columns, labels = [], []
    for t in torch.linspace(0, 1, n_steps).tolist():
        y = None if y0 is None else (y0 if t < 0.5 else y1)
        # one call per column with one seed: every image of a row sees the same decoder noise
        columns.append(handle.decode(interp(z0, z1, t), y, seed=seed).float().cpu())
        labels.append(y)
    images = torch.stack(columns, dim=1)
    return images, (None if y0 is None else torch.stack(labels, dim=1).cpu())


# ---------------------------------------------------------------------------------------------
# sampling

def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 in [0, 255]."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of a uint8 batch (report A's 64x64 samples -> the dataset's 32x32)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


@dataclass
class Samples:
    images: torch.Tensor                # uint8 [n, 3, H, W] on the CPU, at the generator's own size
    labels: torch.Tensor | None         # long [n] for a conditional model
    scores: torch.Tensor | None         # handle.score, float [n], or None


@torch.no_grad()
def generate(handle: GeneratorHandle, n: int, seed: int = 0, batch_size: int = 500,
             progress: bool = False) -> Samples:
    """`n` samples drawn in batches on the model's device. A conditional model gets balanced labels
    (sample i has label i mod num_classes), like the class-balanced test sets it is compared with."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % handle.num_classes if handle.conditional else None
    score = getattr(handle, "score", None)        # a method, or None where the model has no score
    images, scores, use_score = [], [], callable(score)
    for i, start in enumerate(tqdm(range(0, n, batch_size), disable=not progress, desc="sampling")):
        b = min(batch_size, n - start)
        z = handle.sample_latents(b, g)
        y = labels[start:start + b].to(z.device) if labels is not None else None
        x = handle.decode(z, y, seed=(seed * 1_000_003 + i) % 2**62)   # fresh decoder noise per batch
        if use_score:
            s = score(x)
            use_score = s is not None
            if use_score:
                scores.append(s.float().flatten().cpu())
        images.append(to_uint8(x).cpu())
    return Samples(torch.cat(images), labels, torch.cat(scores) if use_score else None)
