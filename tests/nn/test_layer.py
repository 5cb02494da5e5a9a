"""The Layer/Parameter contract: registration, traversal, state dicts, moves, modes, caches."""
import numpy as np
import pytest

import minigrad as mg


class Block(mg.nn.Layer):
    """Two linears with a shared scale, to exercise nesting and registration."""

    def __init__(self):
        super().__init__()
        self.fc1 = mg.nn.Linear(4, 3)
        self.fc2 = mg.nn.Linear(3, 2, bias=False)
        self.register_buffer("steps", np.zeros((), "int64"))
        self.register_buffer("mean", np.zeros(3, "float32"))

    def forward(self, x):
        return self.fc2(self.fc1(x))

    def backward(self, dy):
        return self.fc1.backward(self.fc2.backward(dy))


def test_parameter_holds_data_and_zero_grad():
    p = mg.nn.Parameter(np.ones((2, 3), "float32"))
    assert p.grad is None and p.numel() == 6                  # no gradient yet, as in PyTorch
    p.accumulate(np.ones((2, 3), "float64"))                  # the first gradient is written, in p's dtype
    assert p.grad.shape == p.data.shape and p.grad.dtype == np.float32
    p.accumulate(np.ones((2, 3), "float32"))
    assert (p.grad == 2).all()
    with pytest.raises(ValueError, match=r"gradient of shape \(3, 2\) does not match the parameter of shape \(2, 3\)"):
        p.accumulate(np.ones((3, 2), "float32"))
    with pytest.raises(TypeError, match="Parameter: expected a NumPy or CuPy array, got list"):
        mg.nn.Parameter([1.0])


def test_nested_names_and_state_dict():
    block = Block()
    assert [n for n, _ in block.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight"]
    assert list(block.state_dict()) == ["steps", "mean", "fc1.weight", "fc1.bias", "fc2.weight"]  # torch's order
    assert block.num_parameters() == 4 * 3 + 3 + 3 * 2
    assert "fc1" in repr(block) and "Linear(in_features=4, out_features=3, bias=True)" in repr(block)


def test_load_state_dict_copies_and_validates_before_writing():
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x, y)
        assert x is not y, f"{name} was aliased, not copied"
    before = {k: v.copy() for k, v in b.state_dict().items()}
    bad = dict(Block().state_dict())
    bad["fc2.weight"] = np.zeros((5, 5), "float32")  # last entry wrong: nothing may be written
    with pytest.raises(ValueError, match=r"'fc2.weight' has shape \(5, 5\) in the state dict but \(2, 3\) in the model"):
        b.load_state_dict(bad)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(KeyError, match=r"missing keys \['mean'\], unexpected keys \['extra'\]"):
        b.load_state_dict({**{k: v for k, v in a.state_dict().items() if k != "mean"}, "extra": np.zeros(1)})
    result = b.load_state_dict({"fc1.bias": np.ones(3)}, strict=False)
    assert "fc1.weight" in result.missing_keys and (b.fc1.bias.data == 1).all()
    assert b.fc1.bias.data.dtype == np.float32  # loading keeps the model's dtype


def test_to_dtype_keeps_integer_buffers():
    block = Block()
    block(np.ones((2, 4), "float32"))
    block.backward(np.ones((2, 2), "float32"))
    block.to(dtype="float64")
    assert block.fc1.weight.data.dtype == np.float64 and block.fc1.weight.grad.dtype == np.float64
    assert block.mean.dtype == np.float64 and block.steps.dtype == np.int64
    assert block.dtype == np.float64 and block.backend == "numpy"


def test_train_eval_and_zero_grad_recurse():
    block = Block()
    block.eval()
    assert not block.training and not block.fc1.training
    block.train()
    assert block.fc2.training
    block(np.ones((2, 4), "float32"))
    block.backward(np.ones((2, 2), "float32"))
    assert block.fc1.weight.grad.any()
    block.zero_grad(set_to_none=False)
    assert not any(p.grad.any() for p in block.parameters())
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())


def test_no_grad_keeps_no_cache():
    block = Block()
    with mg.no_grad():
        block(np.ones((2, 4), "float32"))
    assert block.fc1._cache is None
    with pytest.raises(RuntimeError, match="Linear: backward called before forward"):
        block.backward(np.ones((2, 2), "float32"))


def test_unimplemented_layer_and_missing_super_init():
    with pytest.raises(NotImplementedError, match="Layer does not implement forward"):
        mg.nn.Layer()(np.ones(2))

    class Broken(mg.nn.Layer):
        def __init__(self):
            self.fc = mg.nn.Linear(1, 1)

    with pytest.raises(RuntimeError, match=r"Broken: call super\(\).__init__\(\)"):
        Broken()


def test_reassigning_keeps_state_dict_order():
    block = Block()
    order = list(block.state_dict())
    block.steps = block.steps + 1            # buffer reassigned (as `self.buf += 1` does)
    block.fc1 = mg.nn.Linear(4, 3)           # sub-layer replaced
    block.fc2.weight = mg.nn.Parameter(np.zeros((2, 3), "float32"))
    assert list(block.state_dict()) == order
    assert int(block.steps) == 1 and not block.fc2.weight.data.any()


def test_state_dict_order_matches_torch():
    torch = pytest.importorskip("torch")
    ours = mg.nn.Sequential(mg.nn.Conv2d(1, 4, 3), mg.nn.BatchNorm2d(4), mg.nn.ReLU(), mg.nn.Flatten(),
                            mg.nn.Linear(4, 2), mg.nn.BatchNorm1d(2))
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2))
    assert list(ours.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize("layer, shape", [(mg.nn.ReLU(), (2, 3)), (mg.nn.Softmax(dim=-1), (2, 3)),
                                          (mg.nn.Linear(3, 2), (2, 3)), (mg.nn.Flatten(), (2, 3)),
                                          (mg.nn.Conv2d(1, 2, 3), (1, 1, 4, 4))])
def test_backward_of_a_list_names_the_layer_and_the_type(layer, shape):
    layer(np.zeros(shape, "float32"))
    with pytest.raises(TypeError, match=f"{type(layer).__name__}: expected grad_out to be a NumPy or CuPy array, got list"):
        layer.backward([[1.0]])


def test_load_state_dict_of_a_non_mapping_says_what_it_expects():
    with pytest.raises(TypeError, match=r"Linear.load_state_dict: expected a mapping .* got list .*mg.load_into"):
        mg.nn.Linear(2, 2).load_state_dict([1, 2])


def test_a_sequential_cannot_contain_itself():
    seq = mg.nn.Sequential(mg.nn.ReLU())
    with pytest.raises(ValueError, match="a layer cannot contain itself"):
        seq.append(seq)
    outer = mg.nn.Sequential(seq)
    with pytest.raises(ValueError, match="a layer cannot contain itself"):
        seq.append(outer)
    assert len(seq) == 1


@pytest.mark.parametrize("make, match", [
    (lambda: mg.nn.LeakyReLU(float("nan")), "LeakyReLU: negative_slope must be a finite number"),
    (lambda: mg.nn.BatchNorm2d(3, eps=-1), "BatchNorm2d: eps must be a finite number >= 0"),
    (lambda: mg.nn.BatchNorm1d(3, momentum=2.0), r"BatchNorm1d: momentum must be a number in \[0, 1\] or None"),
    (lambda: mg.nn.LayerNorm(3, eps=float("inf")), "LayerNorm: eps must be a finite number >= 0"),
    (lambda: mg.optim.SGD(mg.nn.Linear(2, 2).parameters(), lr=float("inf")), "SGD: invalid learning rate lr=inf"),
    (lambda: mg.optim.Adam(mg.nn.Linear(2, 2).parameters(), lr=1e-3, weight_decay=float("nan")),
     "Adam: invalid weight_decay=nan"),
])
def test_nonsense_arguments_are_refused_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_flatten_out_of_range_and_to_integer_dtype_fail_like_pytorch():
    torch = pytest.importorskip("torch")
    with pytest.raises(IndexError, match=r"Flatten: dimension out of range \(expected to be in range of \[-2, 1\].*got 7"):
        mg.nn.Flatten(start_dim=7)(np.zeros((2, 3), "float32"))
    with pytest.raises(IndexError):
        torch.nn.Flatten(start_dim=7)(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="Linear.to: parameters can only be cast to a floating dtype"):
        mg.nn.Linear(2, 2).to(dtype="int32")
    with pytest.raises(TypeError):
        torch.nn.Linear(2, 2).to(dtype=torch.int32)
