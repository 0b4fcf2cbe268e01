"""The DCGANs of reports A, C and E (Radford et al. 2015): one module holding `.generator` and
`.discriminator`, so that `budget.count_params(model)` counts G + D, as the reports do.

    G: z [n, latent] -> ConvT 4x4 stride 1 (1x1 -> 4x4) -> ConvT 4x4 stride 2 (x2) ... -> 3 x S x S, tanh
       every hidden layer ConvT (no bias) + BatchNorm + ReLU
    D: the mirror image: Conv 4x4 stride 2 (/2) ... -> Conv 4x4 stride 1 (4x4 -> 1x1) -> one logit
       every hidden layer Conv (no bias) + BatchNorm + LeakyReLU(0.2); no BatchNorm on the first layer
       (Radford et al.) unless `d_first_bn`

This is the PyTorch DCGAN tutorial's network, which both LabML's implementation (cited by report A) and
most DCGAN code follow. `widths` are the generator's hidden channels from the latent side down; the
discriminator uses them reversed. `base_width` b gives the usual doubling ladder, b*2^(L-1) ... 2b, b,
with L = log2(image_size / 4) hidden layers (3 at 32x32, 4 at 64x64). The discriminator returns a logit;
the reports' final sigmoid is folded into the loss (BCEWithLogits = sigmoid + BCE, stable in bf16), and
`D(x) = sigmoid(logit)` is what the trainer logs and uses as a score.

How each report's network was pinned down (G + D trainable parameters):

* Report C, 595,840 claimed -> 595,840, exactly: latent 128, base width 32 (G 128-64-32, D 32-64-128) and
  BatchNorm on every discriminator layer including the first (`d_first_bn=True`). A search over
  latent/width/bias/BatchNorm variants of this family found no other plausible exact match (without the
  first-layer BatchNorm it is 595,776). The report says "five convolutional layers"; the matching
  network has four convolutions per side (five layers if the output activation, or the input, is
  counted), and with five convolutions no sensible width reaches 595,840.
* Report E, 998,553 claimed -> 937,464 (-6.1%): latent 110 and base width 44 as the report states
  ("DCGAN scaled to 32x32"): G 176-88-44, D 44-88-176. No network built from these numbers can have
  998,553 parameters: with every hidden width a multiple of 44 and the latent 110 (both multiples of
  11), every weight, BatchNorm and hidden bias term is a multiple of 11, leaving only the 3 output biases
  of G and the 1 of D, so the total is 0, 1, 3 or 4 mod 11; 998,553 is 6 mod 11, whatever the number of
  layers, kernel sizes or biases. The report's network must contain a width the report does not mention
  (or its count is not of trainable parameters). We keep the stated latent and width and the plain
  scaled DCGAN, and the book reports the gap.
* Report A, 1,000,052 claimed (52 over the 1,000,000 budget) -> 998,170: the tutorial network at 64x64
  with the usual latent of 100 (the report's n_l is not given), "pruned" as the report says. Uniform
  pruning of the tutorial's ngf = ndf = 64 to 23 gives 1,011,862, still over; pruning the widest layer of
  each network (G's first, D's last) from 184 to 181 channels brings it to 998,170, inside the budget
  and 0.19% below the report's own count. No uniform-ladder version of this network (latent 8..512,
  G and D base widths 4..129 chosen separately, with or without biases and first-layer BatchNorm) has
  exactly 1,000,052, so the report's pruning was not uniform either.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# The three reports' networks, as model_args (also what experiments.py uses).
REPORT_ARGS = {
    "A": dict(image_size=64, latent_dim=100, widths=(181, 92, 46, 23)),
    "C": dict(latent_dim=128, base_width=32, d_first_bn=True),
    "E": dict(latent_dim=110, base_width=44),
}


def ladder(image_size: int, base_width: int) -> tuple[int, ...]:
    """Hidden widths b*2^(L-1) ... 2b, b for a generator that doubles from 4x4 up to `image_size`."""
    n = math.log2(image_size / 4) if image_size >= 8 else 0
    if n != int(n) or n < 1:
        raise ValueError(f"DCGAN image_size must be a power of two >= 8 (got {image_size}); resize the data "
                         "with train={'resize': 32} (or 64) and pass model_args={'image_size': ...}")
    return tuple(base_width * 2 ** i for i in reversed(range(int(n))))


def init_weights(m: nn.Module) -> None:
    """DCGAN initialisation (Radford et al.): conv weights N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Sequential):
    def __init__(self, latent_dim: int, widths: tuple[int, ...], out_channels: int = 3, crop: int = 0):
        layers, c = [], latent_dim
        for i, w in enumerate(widths):
            stride, pad = (1, 0) if i == 0 else (2, 1)      # 1x1 -> 4x4, then doubling
            layers += [nn.ConvTranspose2d(c, w, 4, stride, pad, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)]
            c = w
        layers += [nn.ConvTranspose2d(c, out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        super().__init__(*layers)
        self.latent_dim, self.crop = latent_dim, crop

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = super().forward(z.reshape(len(z), self.latent_dim, 1, 1))
        c = self.crop
        return x[..., c:x.shape[-2] - c, c:x.shape[-1] - c] if c else x


class Discriminator(nn.Sequential):
    def __init__(self, widths: tuple[int, ...], in_channels: int = 3, first_bn: bool = False, pad: int = 0):
        layers, c = [], in_channels
        for i, w in enumerate(widths):
            layers.append(nn.Conv2d(c, w, 4, 2, 1, bias=False))
            if i > 0 or first_bn:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2, True))
            c = w
        layers.append(nn.Conv2d(c, 1, 4, 1, 0, bias=False))    # 4x4 -> 1x1: one logit per image
        super().__init__(*layers)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="replicate")
        return super().forward(x).flatten()


class LatentGAN(nn.Module):
    """A GAN's G and D held in one module (so the budget counts both), sampled through G from standard normal
    latents of size `self.latent_dim`; DCGAN and ours_gan.OursGAN build their own pair."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images in [-1, 1] from standard normal latents (on the model's device)."""
        device = next(self.parameters()).device
        return self.generator(torch.randn(n, self.latent_dim, generator=generator, device=device))


class DCGAN(LatentGAN):
    """G + D. `num_classes` is accepted (every model takes it) and ignored: these GANs are unconditional."""

    def __init__(self, num_classes: int = 100, image_size: int = 32, in_channels: int = 3,
                 latent_dim: int = 110, base_width: int = 44, widths: tuple[int, ...] | None = None,
                 d_first_bn: bool = False):
        super().__init__()
        # a size between powers of two (AddNIST's 28) is made at the next one up: G's images centre-cropped, D's
        # inputs edge-padded back; no weight changes, so the parameter count is the same
        made = 2 ** math.ceil(math.log2(image_size)) if image_size >= 8 else image_size
        if made - image_size > made // 4:
            raise ValueError(f"DCGAN image_size {image_size} is too far below a power of two ({made}): resize the "
                             "data with train={'resize': 32} (or 64) and pass model_args={'image_size': ...}")
        if widths is None:
            widths = ladder(made, base_width)
        widths = tuple(int(w) for w in widths)
        if ladder(made, 1) != tuple(2 ** i for i in reversed(range(len(widths)))):
            raise ValueError(f"{len(widths)} hidden widths make {4 * 2 ** len(widths)}x{4 * 2 ** len(widths)} "
                             f"images, not {made}x{made}; give {len(ladder(made, 1))} widths")
        self.latent_dim, self.image_size, self.channels, self.widths = latent_dim, image_size, in_channels, widths
        if (made - image_size) % 2:
            raise ValueError(f"DCGAN image_size {image_size}: {made} - {image_size} must be even to crop centrally")
        border = (made - image_size) // 2
        self.generator = Generator(latent_dim, widths, in_channels, crop=border)
        self.discriminator = Discriminator(widths[::-1], in_channels, d_first_bn, pad=border)
        self.apply(init_weights)

