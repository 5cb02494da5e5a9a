"""mg.models.mobilenet_v2 and mg.models.unet: shapes for 28x28 and 32x32 inputs with every option, exact parity
with PyTorch twins built here (float64: output, input gradient, every parameter gradient and buffer to 1e-10),
finite differences on tiny instances, state-dict round trips, the simulated-CuPy path and a few training steps."""
import numpy as np
import pytest

import minigrad as mg

torch = pytest.importorskip("torch")
from support import torch_twins  # noqa: E402  (tests/support/torch_twins.py)

nn = torch.nn
ACTIVATIONS = ("relu6", "silu")
NORMS = ("batch", "group")
DECODERS = (("transpose", "nearest"), ("upsample", "nearest"), ("upsample", "bilinear"))
TINY_MOBILENET = dict(config=((1, 8, 1, 1), (2, 16, 1, 2), (2, 16, 1, 1)), stem_channels=8, last_channel=16)


def _needs(*names):
    """The layers the option needs are added to mg.nn by other work: skip until they are there."""
    missing = [name for name in names if not hasattr(mg.nn, name)]
    if missing:
        pytest.skip(f"mg.nn has no {', '.join(missing)} yet")


def _needs_for(activation="relu", norm="batch", upsample="transpose"):
    _needs(*{"relu6": ["ReLU6"], "silu": ["SiLU"]}.get(activation, []),
           *(["GroupNorm"] if norm == "group" else []), *(["Upsample"] if upsample == "upsample" else []))


# -- PyTorch twins: the same module trees, hence the same state-dict keys ----------------------------------
def _t_norm(norm, channels, groups):
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.GroupNorm(groups, channels)


def _t_conv_norm_act(cin, cout, k, stride, groups, activation, norm, norm_groups):
    act = {"relu6": nn.ReLU6, "silu": nn.SiLU, "relu": nn.ReLU}[activation]()
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         _t_norm(norm, cout, norm_groups), act)


class TInvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t, **options):
        super().__init__()
        hidden = cin * t
        layers = [_t_conv_norm_act(cin, hidden, 1, 1, 1, **options)] if t != 1 else []
        layers += [_t_conv_norm_act(hidden, hidden, 3, stride, hidden, **options),
                   nn.Conv2d(hidden, cout, 1, bias=False), _t_norm(options["norm"], cout, options["norm_groups"])]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class TMobileNetV2(nn.Module):
    """torchvision's MobileNetV2 layout with the small table of mg.models.mobilenet_v2 (width_mult 1)."""

    def __init__(self, num_classes=10, in_channels=1, activation="relu6", norm="batch", norm_groups=8,
                 stem_channels=16, last_channel=256, stem_stride=2, dropout=0.0,
                 config=mg.models.MOBILENET_V2_SMALL_CONFIG):
        super().__init__()
        options = dict(activation=activation, norm=norm, norm_groups=norm_groups)
        features = [_t_conv_norm_act(in_channels, stem_channels, 3, stem_stride, 1, **options)]
        channels = stem_channels
        for t, c, n, s in config:
            for index in range(n):
                features.append(TInvertedResidual(channels, c, s if index == 0 else 1, t, **options))
                channels = c
        features.append(_t_conv_norm_act(channels, last_channel, 1, 1, 1, **options))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channel, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


def _t_double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TUNet(nn.Module):
    def __init__(self, in_channels=1, out_channels=1, base=16, depth=2, upsample="transpose", mode="nearest"):
        super().__init__()
        self.depth, channels = depth, in_channels
        for i in range(depth):
            setattr(self, f"down{i}", _t_double_conv(channels, base * 2 ** i))
            channels = base * 2 ** i
        self.bottleneck = _t_double_conv(channels, base * 2 ** depth)
        channels = base * 2 ** depth
        for i in reversed(range(depth)):
            width = base * 2 ** i
            if upsample == "transpose":
                up = nn.ConvTranspose2d(channels, width, 2, stride=2)
            else:
                resize = nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear"
                                                                   else {}))
                up = nn.Sequential(resize, nn.Conv2d(channels, width, 3, padding=1))
            setattr(self, f"up{i}", up)
            setattr(self, f"dec{i}", _t_double_conv(2 * width, width))
            channels = width
        self.head = nn.Conv2d(base, out_channels, 1)

    def forward(self, x):
        skips = []
        for i in range(self.depth):
            x = getattr(self, f"down{i}")(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for i in reversed(range(self.depth)):
            x = getattr(self, f"dec{i}")(torch.cat([getattr(self, f"up{i}")(x), skips[i]], dim=1))
        return self.head(x)


def _randomize_norms(twin, seed=0):
    """Non-trivial affine parameters for BatchNorm and GroupNorm, and BatchNorm running statistics."""
    torch_twins.randomize_batchnorm(twin, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in twin.modules():
            if isinstance(module, nn.GroupNorm):
                module.weight.copy_(0.5 + torch.rand(module.num_channels, generator=gen, dtype=module.weight.dtype))
                module.bias.copy_(0.1 * torch.randn(module.num_channels, generator=gen, dtype=module.bias.dtype))
    return twin


def _close(ours, ref, what, rtol=1e-10, floor=0.0):
    """|ours - ref| <= rtol * (|ref| + max(max|ref|, floor)): relative to the tensor's scale, or to ``floor`` for
    a tensor that is zero in exact arithmetic (then both sides hold rounding noise only)."""
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    ours = np.asarray(ours)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape}, expected {ref.shape}"
    if ref.dtype.kind != "f":
        np.testing.assert_array_equal(ours, ref, err_msg=what)
        return
    assert ours.dtype == ref.dtype, f"{what}: dtype {ours.dtype}, expected {ref.dtype}"
    scale = max(float(np.abs(ref).max()) if ref.size else 0.0, floor)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * scale, err_msg=what)


def _check_parity(model, twin, x, train=True):
    """Same weights in both; output, input gradient, every parameter gradient and every buffer, float64."""
    twin = _randomize_norms(twin.double())
    result = model.load_state_dict(torch_twins.to_numpy_state(twin))
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert sorted(model.state_dict()) == sorted(twin.state_dict())
    model.train(train)
    twin.train(train)
    y = model(x)
    dy = np.random.default_rng(7).standard_normal(y.shape)
    dx = model.backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    yt = twin(xt)
    yt.backward(torch.from_numpy(dy))
    _close(y, yt, "output")
    _close(dx, xt.grad, "input gradient")
    grads = dict(model.named_parameters())
    assert sorted(grads) == sorted(name for name, _ in twin.named_parameters())
    # The bias gradient of a norm layer whose output feeds (through a residual sum and a 1x1 conv) a train-mode
    # BatchNorm is zero in exact arithmetic: the BatchNorm removes any per-channel shift. Both frameworks hold
    # rounding noise there (measured ~1.5e-16 of the largest gradient), so its tolerance is 1e-10 of a scale of
    # 1e-4 of the largest gradient (1e-14 of it; a real error in such a gradient is far larger).
    floor = 1e-4 * max(float(param.grad.abs().max()) for param in twin.parameters())
    for name, param in twin.named_parameters():
        _close(grads[name].grad, param.grad, f"gradient of {name}", floor=floor)
    ours = model.state_dict()
    for name, value in twin.state_dict().items():
        _close(ours[name], value, f"{name} after the step")


# -- MobileNetV2 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("size", [28, 32])
def test_mobilenet_shapes_for_28_and_32(size, activation, norm):
    _needs_for(activation, norm)
    model = mg.models.mobilenet_v2(activation=activation, norm=norm)
    x = np.random.default_rng(0).standard_normal((2, 1, size, size)).astype("float32")
    y = model(x)
    assert y.shape == (2, 10) and y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())
    rows = model.summary((1, 1, size, size), verbose=False).rows
    assert rows[-1][3] == (1, 10)
    activation_type = {"relu6": mg.nn.ReLU6, "silu": mg.nn.SiLU}[activation]
    assert any(isinstance(layer, activation_type) for layer in model.modules())
    assert not any(isinstance(layer, mg.nn.ReLU) for layer in model.modules())
    norm_type = mg.nn.BatchNorm2d if norm == "batch" else mg.nn.GroupNorm
    assert sum(isinstance(layer, norm_type) for layer in model.modules()) == 1 + 3 * 7 - 1 + 1


@pytest.mark.parametrize("options, feature_sizes", [
    (dict(), [14, 14, 7, 7, 4, 4, 2, 2, 2]),
    (dict(stem_stride=1), [28, 28, 14, 14, 7, 7, 4, 4, 4]),
    (dict(width_mult=0.5, in_channels=3, num_classes=5), [16, 16, 8, 8, 4, 4, 2, 2, 2]),
    (dict(width_mult=1.5, activation="relu"), [14, 14, 7, 7, 4, 4, 2, 2, 2]),
])
def test_mobilenet_options_structure_and_names(options, feature_sizes):
    _needs_for(options.get("activation", "relu6"))
    model = mg.models.mobilenet_v2(**options)
    cin, classes, width = options.get("in_channels", 1), options.get("num_classes", 10), options.get("width_mult", 1)
    size = 32 if cin == 3 else 28
    x = np.random.default_rng(1).standard_normal((2, cin, size, size)).astype("float32")
    h = x
    for block, expected in zip(model.features, feature_sizes):
        h = block(h)
        assert h.shape[2:] == (expected, expected)
    assert model(x).shape == (2, classes)
    blocks = list(model.features)[1:-1]
    assert [isinstance(b, mg.nn.Graph) and [n for n, _, _ in b.nodes] for b in blocks] == [
        ["conv", "add"] if i in (0, 2, 4, 6) else ["conv"] for i in range(7)]
    widths = {0.5: [8, 16, 16, 16, 16, 32, 32], 1: [16, 24, 24, 32, 32, 64, 64], 1.5: [24, 40, 40, 48, 48, 96, 96]}
    assert [b["conv"][-2].out_channels for b in blocks] == widths[width]
    depthwise = [b["conv"][-3][0] for b in blocks]
    assert all(conv.groups == conv.in_channels == conv.out_channels and conv.kernel_size == (3, 3)
               for conv in depthwise)
    assert "features.2.conv.1.0.weight" in model.state_dict() and "classifier.1.weight" in model.state_dict()
    if not options:
        assert model.num_parameters() == 134_250


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mobilenet_matches_torch_float64(activation, norm):
    _needs_for(activation, norm)
    options = dict(activation=activation, norm=norm, dropout=0.0)
    torch.manual_seed(0)
    twin = TMobileNetV2(**options)
    model = mg.models.mobilenet_v2(**options, dtype="float64")
    x = np.random.default_rng(3).standard_normal((3, 1, 28, 28))
    _check_parity(model, twin, x, train=True)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_mobilenet_32x32_stem_stride_1_matches_torch_float64(train):
    _needs_for("relu6", "batch")
    options = dict(in_channels=3, num_classes=4, stem_stride=1, dropout=0.0, **TINY_MOBILENET)
    torch.manual_seed(1)
    model = mg.models.mobilenet_v2(**options, dtype="float64")
    _check_parity(model, TMobileNetV2(**options), np.random.default_rng(4).standard_normal((2, 3, 32, 32)), train)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mobilenet_gradcheck_tiny(activation, norm):
    _needs_for(activation, norm)
    model = mg.models.mobilenet_v2(num_classes=3, activation=activation, norm=norm, dropout=0.0, stem_stride=1,
                                   config=((1, 8, 1, 1), (2, 8, 1, 2)), stem_channels=8, last_channel=8,
                                   dtype="float64")      # a residual t=1 block and a stride-2 expanding one
    x = np.random.default_rng(5).standard_normal((2, 1, 5, 5))
    assert mg.gradcheck(model, x, entries=12)


def test_mobilenet_bad_options_name_the_choices():
    with pytest.raises(ValueError, match="activation must be one of 'relu6', 'silu', 'relu', got 'tanh'"):
        mg.models.mobilenet_v2(activation="tanh")
    with pytest.raises(ValueError, match="norm must be 'batch' or 'group', got 'layer'"):
        mg.models.mobilenet_v2(activation="relu", norm="layer")


# -- U-Net ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("upsample, mode", DECODERS)
@pytest.mark.parametrize("size", [28, 32])
def test_unet_keeps_the_size(size, upsample, mode):
    _needs_for(upsample=upsample)
    model = mg.models.unet(upsample=upsample, mode=mode)
    x = np.random.default_rng(0).standard_normal((2, 1, size, size)).astype("float32")
    y = model(x)
    assert y.shape == x.shape and y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert [name for name, _, _ in model.nodes] == ["down0", "pool0", "down1", "pool1", "bottleneck", "up1", "cat1",
                                                   "dec1", "up0", "cat0", "dec0", "head"]
    assert model.nodes[6][2] == ("up1", "down1") and model.nodes[9][2] == ("up0", "down0")


@pytest.mark.parametrize("depth, base, size", [(1, 4, 28), (3, 4, 32)])
def test_unet_depth_base_and_channels(depth, base, size):
    model = mg.models.unet(in_channels=3, out_channels=2, base=base, depth=depth)
    x = np.zeros((1, 3, size, size), "float32")
    assert model(x).shape == (1, 2, size, size)
    assert model["bottleneck"][0].out_channels == base * 2 ** depth
    assert [model[f"up{i}"].out_channels for i in reversed(range(depth))] == [base * 2 ** i
                                                                              for i in reversed(range(depth))]


@pytest.mark.parametrize("upsample, mode", DECODERS)
def test_unet_matches_torch_float64(upsample, mode):
    _needs_for(upsample=upsample)
    torch.manual_seed(2)
    twin = TUNet(base=4, upsample=upsample, mode=mode)
    model = mg.models.unet(base=4, upsample=upsample, mode=mode, dtype="float64")
    _check_parity(model, twin, np.random.default_rng(6).standard_normal((2, 1, 28, 28)), train=True)


@pytest.mark.parametrize("upsample, mode", DECODERS)
def test_unet_gradcheck_tiny(upsample, mode):
    _needs_for(upsample=upsample)
    model = mg.models.unet(base=2, depth=1, upsample=upsample, mode=mode, dtype="float64")
    assert mg.gradcheck(model, np.random.default_rng(8).standard_normal((2, 1, 6, 6)), entries=40)


def test_unet_bad_options_name_the_choices():
    with pytest.raises(ValueError, match="upsample must be 'transpose' or 'upsample', got 'pixelshuffle'"):
        mg.models.unet(upsample="pixelshuffle")
    with pytest.raises(ValueError, match="mode must be 'nearest' or 'bilinear', got 'bicubic'"):
        mg.models.unet(upsample="upsample", mode="bicubic")
    with pytest.raises(ValueError, match="depth must be an int >= 1, got 0"):
        mg.models.unet(depth=0)


# -- both: state dicts, backends, training --------------------------------------------------------------
def _numpy(array):
    return mg.backend.to_backend(array, "numpy")


def _builders():
    return [("mobilenet", lambda **kw: mg.models.mobilenet_v2(dropout=0.0, **kw), (2, 1, 28, 28)),
            ("unet", lambda **kw: mg.models.unet(base=4, **kw), (2, 1, 28, 28))]


@pytest.mark.parametrize("name", ["mobilenet", "unet"])
def test_state_dict_round_trip(name, tmp_path):
    _needs_for("relu6" if name == "mobilenet" else "relu")
    _, build, shape = next(b for b in _builders() if b[0] == name)
    mg.manual_seed(0)
    first = build()
    x = np.random.default_rng(9).standard_normal(shape).astype("float32")
    first(x)                                  # train-mode forward: the running statistics move
    first.eval()
    mg.manual_seed(1)
    second = build()
    second.eval()
    assert not np.allclose(first(x), second(x))
    result = second.load_state_dict(first.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(second(x), first(x))
    mg.manual_seed(2)
    third = build()
    third.eval()
    path = tmp_path / f"{name}.npz"
    mg.save(str(path), first)
    mg.load_into(str(path), third)
    assert list(third.state_dict()) == list(first.state_dict())
    for key, value in first.state_dict().items():
        np.testing.assert_array_equal(third.state_dict()[key], value, err_msg=key)
    np.testing.assert_array_equal(third(x), first(x))


@pytest.mark.parametrize("name", ["mobilenet", "unet"])
def test_backends_agree(name, backend):
    """The cupy case runs on the GPU, or on the simulated CuPy with MINIGRAD_TEST_CUPY=sim."""
    _needs_for("relu6" if name == "mobilenet" else "relu")
    _, build, shape = next(b for b in _builders() if b[0] == name)
    mg.manual_seed(0)
    model = build(dtype="float64").to("numpy")
    reference = build(dtype="float64").to("numpy")
    reference.load_state_dict(model.state_dict())
    model.to(backend)
    x = np.random.default_rng(10).standard_normal(shape)
    y = model(mg.backend.to_backend(x, backend))
    assert mg.backend.backend_of(y) == backend
    dx = model.backward(mg.backend.to_backend(np.ones(y.shape), backend))
    y_ref = reference(x)
    dx_ref = reference.backward(np.ones(y_ref.shape))
    np.testing.assert_allclose(_numpy(y), y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_numpy(dx), dx_ref, rtol=1e-9, atol=1e-12)
    theirs = dict(reference.named_parameters())
    for key, param in model.named_parameters():
        assert mg.backend.backend_of(param.grad) == backend
        np.testing.assert_allclose(_numpy(param.grad), theirs[key].grad, rtol=1e-9, atol=1e-10,
                                   err_msg=key)


@pytest.mark.parametrize("name", ["mobilenet", "unet"])
def test_a_few_steps_lower_the_loss(name):
    _needs_for("relu6" if name == "mobilenet" else "relu")
    rng = np.random.default_rng(11)
    if name == "mobilenet":
        model, loss = mg.models.mobilenet_v2(dropout=0.0), mg.nn.CrossEntropyLoss()
        x = rng.standard_normal((16, 1, 28, 28)).astype("float32")
        target = rng.integers(0, 10, 16)
    else:
        model, loss = mg.models.unet(base=4), mg.nn.MSELoss()
        target = rng.random((8, 1, 28, 28)).astype("float32")
        x = (target + 0.3 * rng.standard_normal(target.shape)).astype("float32")
    optimizer = mg.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        losses.append(float(loss(model(x), target)))
        model.backward(loss.backward())
        optimizer.step()
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses


def test_mnist_model_builds_mobilenet():
    _needs_for("relu6")
    model, transform = mg.models.mnist_model("mobilenet")
    assert transform is None and "mobilenet" in mg.models.MNIST_MODELS
    assert model(np.zeros((1, 1, 28, 28), "float32")).shape == (1, 10)


# -- ONNX: the exported file equals minigrad in ONNX Runtime, and reads back as a graph that equals and trains --
ONNX_CASES = {
    "mobilenet-relu6-batch": (lambda: mg.models.mobilenet_v2(), "relu6", "batch", "transpose"),
    "mobilenet-silu-group": (lambda: mg.models.mobilenet_v2(activation="silu", norm="group"), "silu", "group",
                             "transpose"),
    "unet-transpose": (lambda: mg.models.unet(base=4), "relu", "batch", "transpose"),
    "unet-bilinear": (lambda: mg.models.unet(base=4, upsample="upsample", mode="bilinear"), "relu", "batch",
                      "upsample"),
}


@pytest.mark.parametrize("name", list(ONNX_CASES))
def test_onnx_round_trip(name, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from support.onnx_files import assert_close, randomize_bn, run_ort, sample
    build, activation, norm, upsample = ONNX_CASES[name]
    _needs_for(activation, norm, upsample)
    mg.manual_seed(0)
    model = randomize_bn(build())
    path = tmp_path / "m.onnx"
    mg.onnx.export(model, sample((2, 1, 28, 28)), path)
    x = sample((3, 1, 28, 28), seed=1)
    model.eval()
    expected = model(x)
    (got,) = run_ort(path, x)
    assert_close(got, expected)
    graph = mg.onnx.load(path)
    graph.eval()
    np.testing.assert_allclose(graph(x), expected, rtol=1e-5, atol=1e-5)
    graph.train()
    y = graph(x)
    graph.backward(np.ones_like(y))
    assert all(p.grad is not None for p in graph.parameters())
    assert sum(p.size for p in graph.parameters()) == model.num_parameters()
