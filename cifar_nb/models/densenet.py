"""Report C's classifier: a DenseNet of 4 dense blocks x 5 layers with growth rate 8.

What the report says: each layer H is BN-ReLU-Conv3x3 (pre-activation, after He et al. 2016) and adds
k = 8 feature maps to the concatenation of everything before it in its block; transition layers between
blocks are a 1x1 conv and a 2x2 average pool; k0 is "the initial channel count"; 99,735 parameters. Its
figure is the DenseNet paper's. What we chose:

- Read literally: transitions are a bare 1x1 conv (no BN-ReLU in front, unlike the paper) + 2x2 avg pool,
  and after the last block the features go straight to a global average pool and a linear layer (the
  report names no final BN). Dense-layer and transition convs have no bias, as in the paper's code.
- Transitions halve the channels (floor), the DenseNet paper's compression theta = 0.5.
- The stem is a 3x3 conv with PyTorch's default bias, giving k0 = 39 channels. That is the one k0 for
  which this reading has exactly the report's 99,735 parameters at 100 classes; with theta = 0.5 no
  variant with the paper's BN in the transitions or a final BN does.
  Channels: 39 -> 79 | 39 -> 79 | 39 -> 79 | 39 -> 79 (each block adds 5 x 8 = 40; each transition halves).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.h = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                               nn.Conv2d(cin, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.h(x)], 1)


class DenseNet(nn.Module):
    def __init__(self, num_classes=100, image_size=32, in_channels=3, growth_rate=8, block_layers=(5, 5, 5, 5),
                 init_channels=39, compression=0.5):
        super().__init__()
        layers, c = [nn.Conv2d(in_channels, init_channels, 3, padding=1)], init_channels
        for i, n in enumerate(block_layers):
            for _ in range(n):
                layers.append(DenseLayer(c, growth_rate))
                c += growth_rate
            if i < len(block_layers) - 1:
                cout = int(c * compression)
                layers += [nn.Conv2d(c, cout, 1, bias=False), nn.AvgPool2d(2)]
                c = cout
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        self.feature_dim = c

    def features(self, x):
        return self.pool(self.body(x)).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))
