"""Report B's class-conditional noise predictor: a small U-Net built from depthwise-separable blocks.

The report's words (§5) and the code it cites fix most of the network; its diagram was lost, so the rest
is our reading, listed here.

From the report
  * a U-Net (Ronneberger et al.) that predicts the noise in x_t, conditioned on the label and the timestep;
  * residual blocks made of depthwise-separable convolutions (depthwise 3x3, then pointwise 1x1);
  * "U-Net blocks" of 6 repeated residual blocks;
  * skip connections joined by concatenation, after which the channel count is reduced;
  * label and timestep pass through small encoders, and a decoder feature map x becomes
    `c_emb * x + t_emb` -- the method of TeaPearce/Conditional_Diffusion_MNIST, which the report cites;
  * its limitations section names sinusoidal time embeddings, swish and attention as things it did NOT
    use, so there are none here.
Our choices (the diagram's gaps), each following the cited minimal implementation where it has one
  * three resolutions, 32 -> 16 -> 8; five U-Net blocks in all (two down, one middle, two up), so 30
    residual blocks; the decoder runs at the first encoder's width, as in the cited ContextUnet;
  * a residual block is two (depthwise 3x3 -> pointwise 1x1 -> norm -> GELU) layers, added to the input
    and scaled by 1/sqrt(2) (the cited ResidualConvBlock with its 3x3 convs made depthwise-separable);
  * GroupNorm with gcd(8, width) groups (8 at width 136, 4 at 68 and 140), as in Ho et al.'s DDPM and the Hugging Face
    blog the report used, rather than the cited code's BatchNorm, whose running averages mix all noise
    levels (the parameter count is the same either way);
  * down-sampling by 2x2 max-pool and up-sampling by a 2x2 stride-2 transposed convolution that also
    reduces the concatenated channels (the cited UnetDown/UnetUp);
  * the label enters as a one-hot vector and the timestep as the scalar t/T, each through an MLP
    Linear-GELU-Linear (the cited EmbedFC), at the two decoder stages, as in the cited ContextUnet;
  * a stem conv3x3 -> GroupNorm -> GELU lifts the image to the first width; the output head is
    conv3x3 -> GroupNorm -> GELU -> conv3x3 on [decoder output, stem output] (the cited `out`);
  * widths (68, 136, 140) for (encoder 1, encoder 2, middle). With the diagram gone the parameter count
    is the only number left to check the widths against, so we searched widths in steps of 4 for the
    count: these give exactly the report's 996,863 at CIFAR-100 shape (978,143 with 10 classes, where
    only the label encoders shrink). An exact match says the count is reachable with this reading,
    not that it is the report's network.
No classifier-free guidance: the report does not mention it, so there is no context dropout.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, c), c)


class DSConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1: a 3x3 conv's reach at about 1/9 of its parameters."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in), nn.Conv2d(c_in, c_out, 1),
                         _norm(c_out), nn.GELU())


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(DSConv(c, c), DSConv(c, c))

    def forward(self, x):
        return (x + self.body(x)) / math.sqrt(2)   # keeps the variance flat through 6 stacked blocks


class UNetBlock(nn.Sequential):
    """A 1x1 projection when the width changes, then `depth` residual blocks (6 in the report)."""

    def __init__(self, c_in: int, c_out: int, depth: int):
        proj = [nn.Conv2d(c_in, c_out, 1)] if c_in != c_out else []
        super().__init__(*proj, *[ResidualBlock(c_out) for _ in range(depth)])


class Embed(nn.Sequential):
    """The small label/time encoder of the cited code (EmbedFC): Linear-GELU-Linear, output as (B,C,1,1)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))

    def forward(self, x):
        return super().forward(x)[:, :, None, None]


class ConditionalUNet(nn.Module):
    """eps_theta(x_t, t, y): predicts the noise in x_t. `t` is the timestep as a float in (0, 1] (t/T)."""

    def __init__(self, num_classes: int = 100, image_size: int = 32, in_channels: int = 3,
                 channels: tuple = (68, 136, 140), depth: int = 6):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"ConditionalUNet pools twice, so image_size must be divisible by 4, got {image_size}")
        if len(channels) != 3:
            raise ValueError(f"channels gives the widths of (encoder 1, encoder 2, middle), got {channels!r}")
        C, C2, M = channels
        self.num_classes, self.image_size, self.in_channels = num_classes, image_size, in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1), _norm(C), nn.GELU())
        self.down1 = UNetBlock(C, C, depth)                 # 32x32, then pooled to 16
        self.down2 = UNetBlock(C, C2, depth)                # 16x16, then pooled to 8
        self.mid = UNetBlock(C2, M, depth)                  # 8x8
        self.c_emb1, self.t_emb1 = Embed(num_classes, M), Embed(1, M)
        self.c_emb2, self.t_emb2 = Embed(num_classes, C), Embed(1, C)
        # concatenate the skip, then reduce the channels while doubling the resolution
        self.up1 = nn.Sequential(nn.ConvTranspose2d(M + C2, C, 2, stride=2), UNetBlock(C, C, depth))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * C, C, 2, stride=2), UNetBlock(C, C, depth))
        self.head = nn.Sequential(nn.Conv2d(2 * C, C, 3, padding=1), _norm(C), nn.GELU(),
                                  nn.Conv2d(C, in_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = F.one_hot(y, self.num_classes).to(x.dtype)
        t = t.to(x.dtype).view(-1, 1)
        h0 = self.stem(x)
        h1 = F.max_pool2d(self.down1(h0), 2)
        h2 = F.max_pool2d(self.down2(h1), 2)
        h = self.mid(h2)
        h = self.c_emb1(c) * h + self.t_emb1(t)             # condition: scale by label, shift by time
        h = self.up1(torch.cat([h, h2], 1))
        h = self.c_emb2(c) * h + self.t_emb2(t)
        h = self.up2(torch.cat([h, h1], 1))
        return self.head(torch.cat([h, h0], 1))
