"""Report A's classifier, "MyCNN": a small ResNet that mixes basic residual blocks and bottlenecks.

The report gives only words: residual blocks and bottleneck structures (He et al. 2016), batch norm and
ReLU in every conv layer, "inspired by" the CIFAR-100 ResNet of Sung's repository (the layout of
weiaicunzai/pytorch-cifar100's resnet.py), and a count of 99,440 parameters. Its figure is lost. What we chose:

- The cited code's layout, kept whole: a 3x3 stem conv (stride 1, CIFAR-sized input) with BN-ReLU, four
  stages of [2, 2, 2, 2] blocks (ResNet-18's plan), strides 1, 2, 2, 2, global average pool, one linear layer.
  Its blocks too: BasicBlock = two 3x3 convs; Bottleneck = 1x1 reduce, 3x3, 1x1 expand x4; convs without
  bias, each followed by BN; a 1x1 conv + BN shortcut wherever the shape changes; ReLU after the sum.
- "Residual and bottleneck": stages 1-2 use basic blocks and stages 3-4 bottlenecks.
- The cited code's widths (64, 128, 256, 512) cannot fit 100k parameters; a base width of 5 (widths
  5, 10, 20, 40; bottleneck outputs 80 and 160) is the width of this layout closest to the report's count:
  99,405 parameters at 100 classes, 35 (0.04%) fewer than the report's 99,440. No regular layout we tried
  matched it exactly.
"""
from __future__ import annotations

import torch.nn as nn


def conv_bn(cin, cout, k, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(conv_bn(cin, width, 3, stride), nn.ReLU(inplace=True), conv_bn(width, cout, 3))
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            conv_bn(cin, width, 1), nn.ReLU(inplace=True),
            conv_bn(width, width, 3, stride), nn.ReLU(inplace=True),
            conv_bn(width, cout, 1))
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class ResNetBottleneck(nn.Module):
    def __init__(self, num_classes=100, image_size=32, in_channels=3, base_width=5, blocks=(2, 2, 2, 2),
                 bottleneck_stages=(False, False, True, True)):
        super().__init__()
        if len(blocks) != len(bottleneck_stages):
            raise ValueError("blocks and bottleneck_stages need one entry per stage")
        self.stem = nn.Sequential(conv_bn(in_channels, base_width, 3), nn.ReLU(inplace=True))
        layers, c = [], base_width
        for i, (n, bottleneck) in enumerate(zip(blocks, bottleneck_stages)):
            block, width = (Bottleneck if bottleneck else BasicBlock), base_width * 2 ** i
            for j in range(n):
                layers.append(block(c, width, stride=2 if (i > 0 and j == 0) else 1))
                c = width * block.expansion
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)   # any input size: 32x32 CIFAR and 28x28 AddNIST alike
        self.fc = nn.Linear(c, num_classes)
        self.feature_dim = c

    def features(self, x):
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))
