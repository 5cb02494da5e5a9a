"""PyTorch twins of mg.models: the same architectures as torch module trees whose state-dict
names equal minigrad's, so weights copy across with load_state_dict in either direction."""
from collections import OrderedDict

import numpy as np
import torch
from torch import nn


def lenet5(num_classes=10):
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, num_classes))


def mlp(in_features=784, hidden=(256,), num_classes=10):
    layers, width = [nn.Flatten()], in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def vgg_small(num_classes=10, in_channels=3, dropout=0.5, config=(32, 32, "M", 64, 64, "M", 128, 128, "M")):
    features, channels = [], in_channels
    for item in config:
        if item == "M":
            features.append(nn.MaxPool2d(2))
        else:
            features += [nn.Conv2d(channels, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
            channels = item
    classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * 16, 256), nn.ReLU(),
                               nn.Dropout(dropout), nn.Linear(256, num_classes))
    return nn.Sequential(OrderedDict(features=nn.Sequential(*features), classifier=classifier))


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet20(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        channels = 16
        for stage, width in enumerate((16, 32, 64), start=1):
            blocks = []
            for index in range(3):
                blocks.append(BasicBlock(channels, width, 2 if stage > 1 and index == 0 else 1))
                channels = width
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return self.fc(torch.flatten(h.mean((2, 3), keepdim=True), 1))


def randomize_batchnorm(model, seed=0):
    """Non-trivial BN affine parameters and running statistics (fresh ones make eval mode an identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                module.num_batches_tracked.fill_(3)
    return model


def to_numpy_state(model):
    """A torch model's state dict as NumPy arrays (what mg's load_state_dict takes)."""
    return OrderedDict((k, v.detach().cpu().numpy()) for k, v in model.state_dict().items())


def from_numpy_state(state):
    return OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in state.items())
