"""Ready-made models (``mg.models``): the small networks people actually train.

lenet5()      LeNet-5 for 28x28 single-channel input (MNIST)          Sequential, 61,706 params
mlp()         Flatten + Linear/ReLU stack                              Sequential
vgg_small()   VGG-style 3x3 conv stack with BatchNorm, 32x32 input     Sequential (features, classifier)
resnet20()    CIFAR ResNet-20 (He et al. 2016, section 4.2)            Graph of residual-block Graphs

mnist_model(name) -> (model, batch transform or None): the networks of ``minigrad train --model NAME``
(lenet5, mlp, resnet20, vgg_small) for (N, 1, 28, 28) MNIST input, as the CLI and the run report build them.

State-dict names follow the PyTorch module tree each model mirrors, so torch weights with
the same structure load directly (``model.load_state_dict(...)``).
"""
from __future__ import annotations

import math
from collections import OrderedDict

from .runtime import random as mg_random
from .runtime.backend import to_backend
from .nn import (AdaptiveAvgPool2d, Add, BatchNorm2d, Conv2d, Dropout, Flatten, Graph, Linear, MaxPool2d,
                 ReLU, Sequential)

__all__ = ["lenet5", "mlp", "vgg_small", "resnet20", "basic_block", "mnist_model", "MNIST_MODELS"]

MNIST_MODELS = ("lenet5", "mlp", "resnet20", "vgg_small")


def lenet5(num_classes: int = 10, dtype="float32") -> Sequential:
    """LeNet-5 for (N, 1, 28, 28): conv5(pad 2)-relu-pool, conv5-relu-pool, 400-120-84-num_classes.

    (N, 1, 28, 28) -> (N, 6, 28, 28) -> (N, 6, 14, 14) -> (N, 16, 10, 10) -> (N, 16, 5, 5) -> (N, 400)
    """
    return Sequential(
        Conv2d(1, 6, 5, padding=2, dtype=dtype), ReLU(), MaxPool2d(2),
        Conv2d(6, 16, 5, dtype=dtype), ReLU(), MaxPool2d(2),
        Flatten(),
        Linear(400, 120, dtype=dtype), ReLU(),
        Linear(120, 84, dtype=dtype), ReLU(),
        Linear(84, num_classes, dtype=dtype),
    )


def mlp(in_features: int = 784, hidden=(256,), num_classes: int = 10, dtype="float32") -> Sequential:
    """Flatten, then Linear-ReLU for each width in ``hidden``, then Linear(…, num_classes).

    (N, *) -> (N, in_features) -> ... -> (N, num_classes)
    """
    if isinstance(hidden, int):
        hidden = (hidden,)
    layers = [Flatten()]
    width = in_features
    for size in hidden:
        layers += [Linear(width, size, dtype=dtype), ReLU()]
        width = size
    layers.append(Linear(width, num_classes, dtype=dtype))
    return Sequential(*layers)


VGG_SMALL_CONFIG = (32, 32, "M", 64, 64, "M", 128, 128, "M")


def vgg_small(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5, dtype="float32",
              config=VGG_SMALL_CONFIG) -> Sequential:
    """A small VGG for (N, C, 32, 32): [conv3x3(no bias)-BN-ReLU]x2-maxpool at 32, 64, 128 channels,
    then Flatten-Dropout-Linear(2048, 256)-ReLU-Dropout-Linear(256, num_classes).

    Names mirror torchvision's VGG: ``features.<i>.*``, ``classifier.<i>.*``.
    (N, C, 32, 32) -> features -> (N, 128, 4, 4) -> classifier -> (N, num_classes)
    """
    features, channels, size = [], in_channels, 32
    for item in config:
        if item == "M":
            features.append(MaxPool2d(2))
            size //= 2
        else:
            features += [Conv2d(channels, item, 3, padding=1, bias=False, dtype=dtype),
                         BatchNorm2d(item, dtype=dtype), ReLU()]
            channels = item
    flat = channels * size * size
    classifier = Sequential(Flatten(), Dropout(dropout), Linear(flat, 256, dtype=dtype), ReLU(),
                            Dropout(dropout), Linear(256, num_classes, dtype=dtype))
    return Sequential(OrderedDict(features=Sequential(*features), classifier=classifier))


def _kaiming_normal_fan_out(conv: Conv2d):
    """He et al. init used for ResNets: N(0, 2 / fan_out), fan_out = out_channels * kh * kw."""
    out_channels, _, kh, kw = conv.weight.shape
    std = math.sqrt(2.0 / (out_channels * kh * kw))
    sample = mg_random.generator().standard_normal(conv.weight.shape) * std
    conv.weight.data = to_backend(sample.astype(conv.weight.dtype), conv.weight.backend)


def basic_block(in_channels: int, out_channels: int, stride: int = 1, dtype="float32") -> Graph:
    """ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    shortcut: identity, or (option B) Sequential(conv1x1 stride s, BN) named ``downsample``
    when the stride or channel count changes. (N, C, H, W) -> (N, out_channels, H/s, W/s).
    """
    g = Graph()
    x = g.input("x")
    h = g.add("conv1", Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False, dtype=dtype), x)
    h = g.add("bn1", BatchNorm2d(out_channels, dtype=dtype), h)
    h = g.add("relu1", ReLU(), h)
    h = g.add("conv2", Conv2d(out_channels, out_channels, 3, padding=1, bias=False, dtype=dtype), h)
    h = g.add("bn2", BatchNorm2d(out_channels, dtype=dtype), h)
    shortcut = x
    if stride != 1 or in_channels != out_channels:
        shortcut = g.add("downsample", Sequential(
            Conv2d(in_channels, out_channels, 1, stride, bias=False, dtype=dtype),
            BatchNorm2d(out_channels, dtype=dtype)), x)
    h = g.add("add", Add(), h, shortcut)
    g.output(g.add("relu2", ReLU(), h))
    return g


def resnet20(num_classes: int = 10, in_channels: int = 3, dtype="float32") -> Graph:
    """CIFAR ResNet-20 (He et al. 2016): conv3x3(16)-BN-ReLU, three stages of 3 basic blocks at
    16/32/64 channels (stride 2 entering stages 2 and 3, 1x1 conv + BN projection shortcuts),
    global average pool, Linear(64, num_classes). 272,474 parameters for 10 classes.

    Names mirror a torchvision-style module tree: ``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
    ``layer2.0.downsample.0``, ``fc``. (N, 3, 32, 32) -> 32x32x16 -> 16x16x32 -> 8x8x64 -> (N, 10)
    """
    g = Graph()
    x = g.input("x")
    h = g.add("conv1", Conv2d(in_channels, 16, 3, padding=1, bias=False, dtype=dtype), x)
    h = g.add("bn1", BatchNorm2d(16, dtype=dtype), h)
    h = g.add("relu", ReLU(), h)
    channels = 16
    for stage, width in enumerate((16, 32, 64), start=1):
        blocks = []
        for index in range(3):
            stride = 2 if stage > 1 and index == 0 else 1
            blocks.append(basic_block(channels, width, stride, dtype=dtype))
            channels = width
        h = g.add(f"layer{stage}", Sequential(*blocks), h)
    h = g.add("avgpool", AdaptiveAvgPool2d(1), h)
    h = g.add("flatten", Flatten(), h)
    g.output(g.add("fc", Linear(64, num_classes, dtype=dtype), h))
    for layer in g.modules():
        if isinstance(layer, Conv2d):
            _kaiming_normal_fan_out(layer)
    return g


def mnist_model(name: str):
    """(model, batch transform or None) of ``minigrad train --model NAME`` for (N, 1, 28, 28) MNIST input;
    ValueError naming the choices for another name."""
    from .data import MNIST_MEAN, MNIST_STD
    from .data.transforms import Pad
    if name == "lenet5":
        return lenet5(), None
    if name == "mlp":
        return mlp(784, (256, 128), 10), None
    if name == "resnet20":
        return resnet20(num_classes=10, in_channels=1), None
    if name == "vgg_small":          # built for 32x32: the digits padded by 2 pixels of background
        return vgg_small(num_classes=10, in_channels=1), Pad(2, fill=-MNIST_MEAN / MNIST_STD)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MNIST_MODELS)}")
