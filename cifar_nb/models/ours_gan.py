"""The first design of our GAN, now the ablation "first design" of ours-generator (cifar_nb/ablations.py): a
DCGAN-shaped generator and a spectrally normalised discriminator, trained with hinge loss, differentiable
augmentation and an EMA of the generator's weights. One module holding `.generator` and `.discriminator`, so that
`budget.count_params(model)` counts G + D, as for the reports' GANs.

What it scored, and why it was replaced: at full budget on the CIFAR-10 JPEG stand-in (50,000 steps, seed 0) its
EMA generator reached FD-cls 118.2, against 43.6 for report C's plain DCGAN. Its discriminator's hinge loss sat
near 2 from step ~1,000 on: D scored real and generated images alike and gave G little to learn from. Report C's
network with DiffAugment and G's EMA (the recipe now registered) does far better at any budget we screened.

    G: z [n, 128] -> linear -> 160 x 4 x 4, BN, ReLU
       -> 4x4 transposed conv, stride 2, + BN + ReLU: 96 x 8 x 8 -> 48 x 16 x 16 -> 24 x 32 x 32
       -> 3x3 conv (with bias) -> 3 channels, tanh; centre-cropped to the dataset's size (AddNIST: 28 x 28)
    D: every layer spectrally normalised (torch.nn.utils.parametrizations.spectral_norm), LeakyReLU(0.2),
       no BatchNorm: 3x3 conv 3 -> 16 at full size
       -> 4x4 conv stride 2 to 32, 3x3 conv 32 -> 32     (16 x 16)
       -> 4x4 conv stride 2 to 64, 3x3 conv 64 -> 64     (8 x 8)
       -> 4x4 conv stride 2 to 192                       (4 x 4; AddNIST 3 x 3)
       -> sum over positions -> linear 192 -> one logit (any image size)

Why (each part is a well-tested remedy for what limits a small GAN on 50,000 images):
- Spectral normalisation of D (Miyato et al. 2018) with the hinge loss (Lim and Ye 2017; SNGAN, BigGAN) keeps D
  1-Lipschitz layer by layer, so no BatchNorm is needed in D and its gradients to G stay informative.
- DiffAugment (Zhao et al. 2020; cifar_nb/engine/augment/diffaug.py) on every image D sees, real and fake, in both
  updates: D over-fits the 50,000 training images within a few epochs at this size, and differentiable colour,
  translation and cutout augmentation is the remedy that leaves G's target distribution un-augmented.
- An EMA of G's weights (decay 0.999, torch.optim.swa_utils.AveragedModel with BatchNorm buffers averaged too;
  Yazici et al. 2019) is what is sampled and scored: it smooths the oscillation of the adversarial game.
- The widths spend the parameters where a 32x32 generator needs them: G's 4x4 and 8x8 layers hold most of its
  weights (the linear projection alone 330k), D puts channels where they are cheap in FLOPs (4x4 and 8x8) and
  keeps its full-resolution layers narrow, because a D forward pass is run three times per step and D's backward
  twice (D's update, and G's through D) but G's once.

Parameters: G 666,907 + D 284,673 (weights as trained; the spectral norms' u/v vectors are buffers) = 951,580,
the same at 28x28 (the crop has no weights). The budget is 1,000,000.

Cost of one training step (one D update on a real and a fake batch and one G update, each at the run's batch
size), counted by torch.utils.flop_counter.FlopCounterMode: convolutions and matrix products (the spectral norms'
power iterations included), not elementwise work such as DiffAugment's; tests/test_ours.py re-measures it:

    run               batch   params (G+D)   GFLOP per step   MFLOP per image   x C per step
    C-generator        128       595,840         14.0             110              1.00
    ours-generator      64       951,580         19.8             309              1.41

Ours trains at batch 64 so that a step, not an image, costs about as much as C's: 1.41 x C per step (the limit is
1.5 x), 2.8 x C per image. 50,000 steps then show the discriminator 3.2 M real images (64 epochs), C's 6.4 M.
Timed once on this 2-core CPU (fp32, 1 thread, another run busy beside it; rough): 0.30 s per step against C's
0.24 s (1.26 x).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from cifar_nb.models.dcgan import LatentGAN, init_weights


class Generator(nn.Module):
    def __init__(self, latent_dim: int, widths: tuple[int, ...], image_size: int, out_channels: int = 3):
        super().__init__()
        ups = len(widths) - 1
        self.base = math.ceil(image_size / 2 ** ups)          # 4 for 32 and for 28 (made at 32, then cropped)
        self.made, self.image_size, self.latent_dim = self.base * 2 ** ups, image_size, latent_dim
        self.project = nn.Linear(latent_dim, widths[0] * self.base ** 2, bias=False)
        layers = [nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.Conv2d(widths[-1], out_channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.widths = widths

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.reshape(len(z), self.latent_dim)).view(len(z), self.widths[0], self.base, self.base)
        x = self.body(x)
        if self.made != self.image_size:                      # centre crop to the dataset's size
            a = (self.made - self.image_size) // 2
            x = x[..., a:a + self.image_size, a:a + self.image_size]
        return x


class Discriminator(nn.Module):
    def __init__(self, widths: tuple[int, ...], in_channels: int = 3, slope: float = 0.2, sn: bool = True):
        super().__init__()
        act = lambda: nn.LeakyReLU(slope, True)   # noqa: E731
        norm = spectral_norm if sn else (lambda layer: layer)   # sn=False: plain layers, for the ablation
        layers = [norm(nn.Conv2d(in_channels, widths[0], 3, 1, 1)), act()]
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [norm(nn.Conv2d(cin, cout, 4, 2, 1)), act()]
            if i < len(widths) - 2:                           # a 3x3 conv at each size but the last
                layers += [norm(nn.Conv2d(cout, cout, 3, 1, 1)), act()]
        self.body = nn.Sequential(*layers)
        self.linear = norm(nn.Linear(widths[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.body(x).sum(dim=(2, 3))).flatten()


class OursGAN(LatentGAN):
    """G + D. `num_classes` is accepted (every model takes it) and ignored: this GAN is unconditional."""

    def __init__(self, num_classes: int = 100, image_size: int = 32, in_channels: int = 3, latent_dim: int = 128,
                 g_widths: tuple[int, ...] = (160, 96, 48, 24), d_widths: tuple[int, ...] = (16, 32, 64, 192),
                 d_spectral_norm: bool = True):
        super().__init__()
        g_widths, d_widths = tuple(int(w) for w in g_widths), tuple(int(w) for w in d_widths)
        if len(g_widths) < 2 or len(d_widths) < 2:
            raise ValueError("g_widths and d_widths need at least two widths each")
        self.latent_dim, self.image_size, self.channels = latent_dim, image_size, in_channels
        self.generator = Generator(latent_dim, g_widths, image_size, in_channels)
        self.generator.apply(init_weights)                   # DCGAN's N(0, 0.02) for G (D: spectral norm's own)
        nn.init.normal_(self.generator.project.weight, 0.0, 0.02)
        self.discriminator = Discriminator(d_widths, in_channels, sn=d_spectral_norm)
