"""Convolutional networks: a VGG-style CNN and a small ResNet, any activation, optional batch norm.

A *unit* of a convolutional layer is a channel: the probes of ``relulab.nn.probes`` reduce over
every dimension except dim 1, so a channel is dead when its local derivative is 0 at every
position of every example. Every activation is its own module built by ``activations.build``
(so ``zero_grad`` applies to each), and ``hidden_weights()`` lists, in forward order, the
convolution whose output feeds each activation (the layer a "layer" row of a study refers to).

``depth`` and ``width`` mean what they mean in the architectures' names:

- ``vgg(depth, width)``: ``depth`` 3x3 convolutions in up to five stages; stage k has
  ``width * 2**min(k, 3)`` channels and ends in a 2x2 max pool while the image is larger than
  1x1. Convolutions are spread over the stages as evenly as possible, later stages taking the
  extra ones: depth 8 with width 64 is VGG11 (64, M, 128, M, 256, 256, M, 512, 512, M, 512,
  512, M), 10 is VGG13, 13 is VGG16. The head is a global average followed by one linear layer
  (the common CIFAR variant; on 32x32 inputs the last map is already 1x1).
- ``resnet(depth, width)``: He et al.'s basic-block ResNet with the CIFAR stem (one 3x3
  convolution, no max pool). ``depth`` counts weighted layers, 2 + 2 x blocks, spread over up to
  four stages of ``width * 2**k`` channels (stride 2 from the second stage on): depth 18 with
  width 64 is ResNet18 (2, 2, 2, 2 blocks).

With batch norm, each convolution is followed by ``BatchNorm2d`` and has no bias (the norm's
shift replaces it); without, convolutions carry a bias. Global averaging is a mean over the
spatial dimensions rather than ``AdaptiveAvgPool2d``, whose CUDA backward has no deterministic
implementation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from relulab.nn import activations
from relulab.nn.models import initialise

ARCHS = ("vgg", "resnet")


def _spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``min(parts, total)`` near-equal counts, later parts taking extras."""
    parts = min(parts, total)
    base, extra = divmod(total, parts)
    return [base + (1 if i >= parts - extra else 0) for i in range(parts)]


def vgg_stages(depth: int) -> list[int]:
    """Convolutions per stage of a VGG-style net of ``depth`` convolutions."""
    if depth < 1:
        raise ValueError(f"a VGG-style net needs depth >= 1 convolution, not {depth}")
    return _spread(depth, 5)


def resnet_stages(depth: int) -> list[int]:
    """Residual blocks per stage of a ResNet of ``depth`` weighted layers (2 + 2 x blocks)."""
    if depth < 4 or depth % 2:
        raise ValueError(
            f"a ResNet's depth counts its weighted layers, 2 + 2 x residual blocks: an even "
            f"number >= 4 (18 is ResNet18), not {depth}"
        )
    return _spread((depth - 2) // 2, 4)


def _activation(name: str, zero_grad: float | None, generator: torch.Generator | None):
    return activations.build(name, zero_grad, generators=None if generator is None else [generator])


def _conv(cin: int, cout: int, kernel: int, stride: int, batch_norm: bool, init: str) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=not batch_norm)
    initialise(conv, init)
    return conv


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class VGG(nn.Module):
    """VGG-style CNN: conv -> [BN] -> activation, max pool after each stage, mean, linear."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        classes: int,
        depth: int = 8,
        width: int = 64,
        activation: str = "relu",
        zero_grad: float | None = None,
        batch_norm: bool = False,
        init: str = "default",
        rrelu_generator: torch.Generator | None = None,
    ):
        super().__init__()
        channels, height, width_px = in_shape
        layers: list[nn.Module] = []
        self._convs: list[nn.Conv2d] = []
        for stage, convs in enumerate(vgg_stages(depth)):
            out = width * 2 ** min(stage, 3)
            for _ in range(convs):
                conv = _conv(channels, out, 3, 1, batch_norm, init)
                self._convs.append(conv)
                layers += [conv, _norm(out, batch_norm)]
                layers.append(_activation(activation, zero_grad, rrelu_generator))
                channels = out
            if min(height, width_px) > 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                height, width_px = math.ceil(height / 2), math.ceil(width_px / 2)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)
        initialise(self.head, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def hidden_weights(self) -> list[nn.Parameter]:
        return [conv.weight for conv in self._convs]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: act(bn(conv(act(bn(conv(x))))) + shortcut(x))."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        activation: str,
        zero_grad: float | None,
        batch_norm: bool,
        init: str,
        rrelu_generator: torch.Generator | None,
    ):
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, stride, batch_norm, init)
        self.norm1 = _norm(cout, batch_norm)
        self.act1 = _activation(activation, zero_grad, rrelu_generator)
        self.conv2 = _conv(cout, cout, 3, 1, batch_norm, init)
        self.norm2 = _norm(cout, batch_norm)
        self.act2 = _activation(activation, zero_grad, rrelu_generator)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                _conv(cin, cout, 1, stride, batch_norm, init), _norm(cout, batch_norm)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """Basic-block ResNet with the CIFAR stem, global mean and one linear layer."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        classes: int,
        depth: int = 18,
        width: int = 64,
        activation: str = "relu",
        zero_grad: float | None = None,
        batch_norm: bool = False,
        init: str = "default",
        rrelu_generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.stem = _conv(in_shape[0], width, 3, 1, batch_norm, init)
        self.stem_norm = _norm(width, batch_norm)
        self.stem_act = _activation(activation, zero_grad, rrelu_generator)
        blocks: list[BasicBlock] = []
        channels = width
        for stage, count in enumerate(resnet_stages(depth)):
            out = width * 2**stage
            for block in range(count):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(
                    BasicBlock(
                        channels,
                        out,
                        stride,
                        activation,
                        zero_grad,
                        batch_norm,
                        init,
                        rrelu_generator,
                    )
                )
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, classes)
        initialise(self.head, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem_act(self.stem_norm(self.stem(x)))
        return self.head(self.blocks(h).mean(dim=(2, 3)))

    def hidden_weights(self) -> list[nn.Parameter]:
        weights = [self.stem.weight]
        for block in self.blocks:
            weights += [block.conv1.weight, block.conv2.weight]
        return weights


def build(arch: str, **kwargs) -> VGG | ResNet:
    """``VGG(**kwargs)`` or ``ResNet(**kwargs)``."""
    if arch == "vgg":
        return VGG(**kwargs)
    if arch == "resnet":
        return ResNet(**kwargs)
    raise ValueError(f"unknown convolutional architecture {arch!r}; allowed: {', '.join(ARCHS)}")


def seeded(arch: str, seed: int, **kwargs) -> VGG | ResNet:
    """``build(arch, **kwargs)`` with initial weights fixed by ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(arch, **kwargs)


def activation_modules(model: nn.Module) -> list[nn.Module]:
    """The model's activation modules in registration order (= forward order for these nets)."""
    return [m for m in model.modules() if activations.is_activation(m)]
