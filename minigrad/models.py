"""Ready-made models (``mg.models``): the small networks people actually train.

lenet5()        LeNet-5 for 28x28 single-channel input (MNIST)          Sequential, 61,706 params
mlp()           Flatten + Linear/ReLU stack                              Sequential
vgg_small()     VGG-style 3x3 conv stack with BatchNorm, 32x32 input     Sequential (features, classifier)
resnet20()      CIFAR ResNet-20 (He et al. 2016, section 4.2)            Graph of residual-block Graphs
mobilenet_v2()  small MobileNetV2 (Sandler et al. 2018), 28x28 / 32x32   Sequential of inverted-residual Graphs
unet()          small U-Net (Ronneberger et al. 2015), output size = input size   Graph with Concat skips

mnist_model(name) -> (model, batch transform or None): the networks of ``minigrad train --model NAME``
(lenet5, mlp, mobilenet, resnet20, vgg_small) for (N, 1, 28, 28) MNIST input, as the CLI and the run report
build them.

State-dict names follow the PyTorch module tree each model mirrors, so torch weights with
the same structure load directly (``model.load_state_dict(...)``).
"""
from __future__ import annotations

import math
from collections import OrderedDict

from .runtime import random as mg_random
from .runtime.backend import to_backend
from . import nn
from .nn import (AdaptiveAvgPool2d, Add, BatchNorm2d, Concat, Conv2d, ConvTranspose2d, Dropout, Flatten, Graph,
                 Linear, MaxPool2d, ReLU, Sequential)

__all__ = ["lenet5", "mlp", "vgg_small", "resnet20", "basic_block", "mobilenet_v2", "inverted_residual", "unet",
           "mnist_model", "MNIST_MODELS"]

MNIST_MODELS = ("lenet5", "mlp", "mobilenet", "resnet20", "vgg_small")


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


# -- MobileNetV2 (Sandler et al. 2018), small: 28x28 / 32x32 inputs --------------------------------------
# (expand ratio t, output channels c, blocks n, stride of the first block s), as torchvision's table
MOBILENET_V2_SMALL_CONFIG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2))


def _make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's rounding of scaled widths: the nearest multiple of divisor, not below 90% of value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _activation(name: str):
    """A fresh activation layer: 'relu6' (MobileNetV2's), 'silu' or 'relu'."""
    kinds = {"relu6": "ReLU6", "silu": "SiLU", "relu": "ReLU"}
    if name not in kinds:
        raise ValueError(f"activation must be one of {', '.join(map(repr, kinds))}, got {name!r}")
    return getattr(nn, kinds[name])()


def _norm(name: str, channels: int, groups: int, dtype):
    """BatchNorm2d(channels) for 'batch', GroupNorm(groups, channels) for 'group'."""
    if name == "batch":
        return BatchNorm2d(channels, dtype=dtype)
    if name == "group":
        return nn.GroupNorm(groups, channels, dtype=dtype)
    raise ValueError(f"norm must be 'batch' or 'group', got {name!r}")


def _conv_norm_act(in_channels, out_channels, kernel_size, stride, groups, activation, norm, norm_groups, dtype):
    """torchvision's Conv2dNormActivation: Sequential(conv (no bias), norm, activation); padding keeps the size
    at stride 1. Names ``0.weight``, ``1.weight``, ``1.bias`` (+ BatchNorm buffers)."""
    return Sequential(Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                             groups=groups, bias=False, dtype=dtype),
                      _norm(norm, out_channels, norm_groups, dtype), _activation(activation))


def inverted_residual(in_channels: int, out_channels: int, stride: int, expand_ratio: int, activation="relu6",
                      norm="batch", norm_groups: int = 8, dtype="float32") -> Graph:
    """MobileNetV2's inverted residual block, a Graph with one node ``conv`` (torchvision's names):
    1x1 expand to in_channels * expand_ratio (left out when expand_ratio is 1) - norm - activation,
    3x3 depthwise (groups = channels, stride) - norm - activation, 1x1 linear projection - norm;
    plus the input (node ``add``) when stride is 1 and in_channels == out_channels.
    (N, C, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))
    """
    hidden = int(round(in_channels * expand_ratio))
    options = dict(activation=activation, norm=norm, norm_groups=norm_groups, dtype=dtype)
    layers = [_conv_norm_act(in_channels, hidden, 1, 1, 1, **options)] if expand_ratio != 1 else []
    layers += [_conv_norm_act(hidden, hidden, 3, stride, hidden, **options),
               Conv2d(hidden, out_channels, 1, bias=False, dtype=dtype), _norm(norm, out_channels, norm_groups, dtype)]
    g = Graph()
    x = g.input("x")
    h = g.add("conv", Sequential(*layers), x)
    if stride == 1 and in_channels == out_channels:
        h = g.add("add", Add(), x, h)
    g.output(h)
    return g


def mobilenet_v2(num_classes: int = 10, in_channels: int = 1, width_mult: float = 1.0, activation="relu6",
                 norm="batch", norm_groups: int = 8, stem_channels: int = 16, last_channel: int = 256,
                 stem_stride: int = 2, dropout: float = 0.2, config=MOBILENET_V2_SMALL_CONFIG,
                 dtype="float32") -> Sequential:
    """A small MobileNetV2 for 28x28 (MNIST) and 32x32 (CIFAR) inputs.

    features: conv3x3(stem_channels, stem_stride)-norm-act, the inverted residual blocks of ``config``
    ((t, c, n, s) rows as in the paper), conv1x1(last_channel)-norm-act; then global average pool, Flatten,
    classifier Dropout-Linear(last_channel, num_classes). Widths are scaled by ``width_mult`` and rounded to
    multiples of 8 (last_channel only grows), so GroupNorm's ``norm_groups`` (default 8) divides every width.
    activation: 'relu6' (the paper's), 'silu' or 'relu'; norm: 'batch' (BatchNorm2d) or 'group' (GroupNorm).
    Names mirror torchvision's MobileNetV2: ``features.<i>.conv.<j>...``, ``classifier.1.weight``.
    Default, 1 -> 10 classes, 134,250 parameters: (N, 1, 28, 28) -> stem 14x14x16 -> 7x7x24 -> 4x4x32 -> 2x2x64
    -> 2x2x256 -> (N, 10); (N, C, 32, 32) -> 16x16 -> 8x8 -> 4x4 -> 2x2. ``stem_stride=1`` keeps the full
    resolution in the first stage (4x the work of the blocks; the usual choice for CIFAR).
    """
    _activation(activation), _norm(norm, 8, 1, dtype)        # bad names fail here, before any layer is built
    options = dict(activation=activation, norm=norm, norm_groups=norm_groups, dtype=dtype)
    channels = _make_divisible(stem_channels * width_mult)
    last = _make_divisible(last_channel * max(1.0, width_mult))
    features = [_conv_norm_act(in_channels, channels, 3, stem_stride, 1, **options)]
    for t, c, n, s in config:
        width = _make_divisible(c * width_mult)
        for index in range(n):
            features.append(inverted_residual(channels, width, s if index == 0 else 1, t, **options))
            channels = width
    features.append(_conv_norm_act(channels, last, 1, 1, 1, **options))
    model = Sequential(OrderedDict(features=Sequential(*features), pool=AdaptiveAvgPool2d(1), flatten=Flatten(),
                                   classifier=Sequential(Dropout(dropout), Linear(last, num_classes, dtype=dtype))))
    for layer in model.modules():
        if isinstance(layer, Conv2d):
            _kaiming_normal_fan_out(layer)
    return model


# -- U-Net (Ronneberger et al. 2015), small ------------------------------------------------------------
def _double_conv(in_channels: int, out_channels: int, dtype) -> Sequential:
    """[conv3x3 (no bias) - BatchNorm2d - ReLU] x 2, same size. (N, C, H, W) -> (N, out_channels, H, W)"""
    return Sequential(Conv2d(in_channels, out_channels, 3, padding=1, bias=False, dtype=dtype),
                      BatchNorm2d(out_channels, dtype=dtype), ReLU(),
                      Conv2d(out_channels, out_channels, 3, padding=1, bias=False, dtype=dtype),
                      BatchNorm2d(out_channels, dtype=dtype), ReLU())


def unet(in_channels: int = 1, out_channels: int = 1, base: int = 16, depth: int = 2, upsample="transpose",
         mode="nearest", dtype="float32") -> Graph:
    """A small U-Net, a Graph: (N, in_channels, H, W) -> (N, out_channels, H, W), H and W divisible by 2**depth
    (28x28 and 32x32 at depth 2).

    encoder: ``down<i>`` double conv to base * 2**i channels (its output kept for the skip), ``pool<i>``
    MaxPool2d(2), for i < depth; ``bottleneck`` double conv to base * 2**depth.
    decoder, i = depth-1 .. 0: ``up<i>`` halves the channels and doubles the size, ConvTranspose2d(k=2, s=2)
    for upsample='transpose' or Sequential(Upsample(scale_factor=2, mode), conv3x3) for 'upsample' (mode
    'nearest' or 'bilinear', align_corners=False); ``cat<i>`` Concat(dim=1) with the skip of ``down<i>``;
    ``dec<i>`` double conv back to base * 2**i channels. ``head``: conv1x1 to out_channels (no activation).
    Double conv: [conv3x3 (no bias) - BatchNorm2d - ReLU] x 2.
    """
    if upsample not in ("transpose", "upsample"):
        raise ValueError(f"upsample must be 'transpose' or 'upsample', got {upsample!r}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, got {depth!r}")
    g = Graph()
    h = g.input("x")
    skips, channels = [], in_channels
    for i in range(depth):
        h = g.add(f"down{i}", _double_conv(channels, base * 2 ** i, dtype), h)    # (N, base*2^i, H/2^i, W/2^i)
        skips.append(h)
        h = g.add(f"pool{i}", MaxPool2d(2), h)
        channels = base * 2 ** i
    h = g.add("bottleneck", _double_conv(channels, base * 2 ** depth, dtype), h)  # (N, base*2^depth, ...)
    channels = base * 2 ** depth
    for i in reversed(range(depth)):
        width = base * 2 ** i
        if upsample == "transpose":
            up = ConvTranspose2d(channels, width, 2, stride=2, dtype=dtype)
        else:
            resize = (nn.Upsample(scale_factor=2, mode=mode, align_corners=False) if mode == "bilinear"
                      else nn.Upsample(scale_factor=2, mode=mode))
            up = Sequential(resize, Conv2d(channels, width, 3, padding=1, dtype=dtype))
        h = g.add(f"up{i}", up, h)                                     # (N, width, H/2^i, W/2^i)
        h = g.add(f"cat{i}", Concat(dim=1), h, skips[i])               # (N, 2 * width, H/2^i, W/2^i)
        h = g.add(f"dec{i}", _double_conv(2 * width, width, dtype), h)
        channels = width
    g.output(g.add("head", Conv2d(base, out_channels, 1, dtype=dtype), h))
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
    if name == "mobilenet":
        return mobilenet_v2(num_classes=10, in_channels=1), None
    if name == "resnet20":
        return resnet20(num_classes=10, in_channels=1), None
    if name == "vgg_small":          # built for 32x32: the digits padded by 2 pixels of background
        return vgg_small(num_classes=10, in_channels=1), Pad(2, fill=-MNIST_MEAN / MNIST_STD)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MNIST_MODELS)}")
