"""Report D's search space of plain CNNs: 8 families of our design, each a stack of conv stages and FC layers.

Report D trained 8 CNN architectures ("CNN1".."CNN8") with a hyper-parameter search and kept three:
CNN6 (2,494,022 parameters), CNN7 (3,004,917) and CNN2 (10,393,946). Its architecture figure was lost,
so these families are ours. They follow what the report does say: convolutions with stride 1 that keep
the spatial size, 2x2 pooling with stride 2 that halves it, batch norm and dropout against over-fitting,
fully connected layers on the flattened maps, 100 outputs. We sized CNN2, CNN6 and CNN7 to land near the
report's parameter counts (within 1%), so that the winners have the report's scale; they are not
reconstructions of the report's networks.

Notation: a number is a conv layer with that many output channels, P is a 2x2 pooling (then dropout),
"|" separates the FC hidden layers (each Linear -> activation -> dropout). Parameters at width 1,
3x3 kernels, batch norm on, 32x32x3 input, 100 classes:

    family  conv stages                          FC hidden   map before FC   params
    cnn1    32 P 64 P 128 P                      1024        128 x 4 x 4      2,294,148
    cnn2    64 64 P 128 128 P 256 256 P          2048 384    256 x 4 x 4     10,362,276
    cnn3    64 P 128 P 256 P 512 P               1024 512    512 x 2 x 2      4,226,212
    cnn4    32 32 P 64 64 P                      512 256      64 x 8 x 8      2,320,452
    cnn5    64 P 128 P 256 256 P 512 512 P 512 512   256     512 x 2 x 2      9,773,476
    cnn6    32 64 P 128 128 P 256 256 P          320         256 x 4 x 4      2,470,084
    cnn7    64 64 P 128 128 P 256 256 P          448         256 x 4 x 4      3,026,660
    cnn8    64 128 P 128 256 P 256 512 P 512 P   1024        512 x 2 x 2      6,850,980

The families differ in depth (4 to 8 conv layers), in where pooling sits (two pools leaving an 8x8 map,
three, or four leaving 2x2; cnn5 keeps convolving after its last pool) and in how much of the model is
the FC head (most of it in cnn2, cnn4, cnn6; little in cnn5).

Searched per model (one choice applies to every layer): activation ReLU or LeakyReLU (slope 0.01,
PyTorch's default; the report only says "small"), max or average pooling, kernel size 1, 2, 3, 4, 5 or 7
(the report's list; padding keeps the size, asymmetric for even kernels), batch norm on or off, dropout
rate. `width` multiplies every conv and hidden FC width, so the same families shrink for the in-budget
search; `fit_width` finds the widest copy of a family within a parameter budget.
"""
from __future__ import annotations

import torch
import torch.nn as nn

FAMILIES = {
    "cnn1": "32 P 64 P 128 P | 1024",
    "cnn2": "64 64 P 128 128 P 256 256 P | 2048 384",
    "cnn3": "64 P 128 P 256 P 512 P | 1024 512",
    "cnn4": "32 32 P 64 64 P | 512 256",
    "cnn5": "64 P 128 P 256 256 P 512 512 P 512 512 | 256",
    "cnn6": "32 64 P 128 128 P 256 256 P | 320",
    "cnn7": "64 64 P 128 128 P 256 256 P | 448",
    "cnn8": "64 128 P 128 256 P 256 512 P 512 P | 1024",
}
KERNEL_SIZES = (1, 2, 3, 4, 5, 7)
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _scaled(c: int, width: float) -> int:
    return max(1, round(c * width))


def _conv(cin: int, cout: int, k: int, bias: bool) -> nn.Module:
    if k % 2:
        return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)
    # an even kernel cannot be centred: pad one more pixel on the right/bottom so the size is kept
    lo, hi = (k - 1) // 2, k // 2
    return nn.Sequential(nn.ZeroPad2d((lo, hi, lo, hi)), nn.Conv2d(cin, cout, k, bias=bias))


class SearchCNN(nn.Module):
    """One member of a family. Defaults: CNN6 as report D chose it (ReLU), our 3x3/max-pool/BN/0.2 reading."""

    def __init__(self, num_classes: int = 100, image_size: int = 32, in_channels: int = 3,
                 family: str = "cnn6", width: float = 1.0, kernel_size: int = 3, activation: str = "relu",
                 pool: str = "max", batch_norm: bool = True, dropout: float = 0.2):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
        if kernel_size not in KERNEL_SIZES:
            raise ValueError(f"kernel_size must be one of {KERNEL_SIZES}, got {kernel_size!r}")
        if activation not in ACTIVATIONS or pool not in POOLS:
            raise ValueError(f"activation must be in {sorted(ACTIVATIONS)} and pool in {sorted(POOLS)}, "
                             f"got {activation!r}, {pool!r}")
        if not 0 < width:
            raise ValueError(f"width must be positive, got {width!r}")
        conv_spec, fc_spec = FAMILIES[family].split("|")
        act = ACTIVATIONS[activation]

        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for tok in conv_spec.split():
            if tok == "P":
                if size < 2:
                    raise ValueError(f"{family} pools too often for {image_size}x{image_size} images")
                layers += [POOLS[pool](2, 2), nn.Dropout(dropout)]
                size //= 2
                continue
            out = _scaled(int(tok), width)
            layers.append(_conv(c, out, kernel_size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(act())
            c = out
        self.features = nn.Sequential(*layers)

        head: list[nn.Module] = [nn.Flatten()]
        f = c * size * size
        for tok in fc_spec.split():
            out = _scaled(int(tok), width)
            head += [nn.Linear(f, out), act(), nn.Dropout(dropout)]
            f = out
        head.append(nn.Linear(f, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def param_count(**kwargs) -> int:
    """Trainable parameters of SearchCNN(**kwargs), built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = SearchCNN(**kwargs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fit_width(max_params: int, **kwargs) -> float:
    """The largest width (to 1/1024) whose model has at most `max_params` parameters.

    The count grows monotonically with width (channel counts are rounded widths), so bisection works.
    """
    kwargs.pop("width", None)
    lo, hi = 0.0, 1.0
    if param_count(width=1.0, **kwargs) <= max_params:
        return 1.0
    if param_count(width=1 / 1024, **kwargs) > max_params:
        raise ValueError(f"{kwargs.get('family', 'cnn6')} does not fit {max_params:,} parameters at any width")
    for _ in range(10):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if param_count(width=mid, **kwargs) <= max_params else (lo, mid)
    return max(lo, 1 / 1024)
