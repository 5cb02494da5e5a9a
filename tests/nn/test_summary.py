"""Layer.summary: output shapes and parameter counts per layer; no side effects on the model."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import Add, Conv2d, Flatten, Graph, Linear, ReLU, Sequential


def test_sequential_summary_rows_and_totals(capsys):
    model = Sequential(Conv2d(1, 6, 5, padding=2), ReLU(), Flatten(), Linear(6 * 28 * 28, 10))
    result = model.summary((1, 1, 28, 28))
    printed = capsys.readouterr().out
    assert result.rows == [(0, "0", "Conv2d", (1, 6, 28, 28), 156), (0, "1", "ReLU", (1, 6, 28, 28), 0),
                           (0, "2", "Flatten", (1, 4704), 0), (0, "3", "Linear", (1, 10), 47050)]
    assert result.total_params == 47206 == model.num_parameters()
    assert result.param_bytes == 47206 * 4 and result.output_shape == (1, 10)
    assert printed.strip() == str(result)
    lines = str(result).splitlines()
    assert lines[0] == "Sequential summary for input (1, 1, 28, 28)"
    assert lines[2].split() == ["Layer", "Type", "Output", "shape", "Params"]
    assert "3      Linear   (1, 10)         47,050" in lines
    assert "Total params: 47,206" in lines


def test_graph_summary_nested_shared_and_multi_input():
    conv = Conv2d(2, 2, 3, padding=1)
    inner = Graph()
    x = inner.input("x")
    h = inner.add("c1", conv, x)
    inner.output(inner.add("c2", conv, h), h)
    g = Graph()
    a, b = g.input("a"), g.input("b")
    block = g.add("block", Sequential(Conv2d(2, 2, 1), ReLU()), a)
    g.add("pair", inner, block)
    g.output(g.add("sum", Add(), block, b))
    result = g.summary([(2, 2, 4, 4), (2, 2, 4, 4)], verbose=False)
    shape = (2, 2, 4, 4)
    assert result.rows == [(0, "block", "Sequential", shape, 6), (1, "block.0", "Conv2d", shape, 6),
                           (1, "block.1", "ReLU", shape, 0), (0, "pair", "Graph", [shape, shape], 38),
                           (1, "pair.c1", "Conv2d", shape, 38), (1, "pair.c2", "Conv2d", shape, None),
                           (0, "sum", "Add", shape, 0)]
    assert result.total_params == 44
    text = str(result)
    assert "  pair.c2  Conv2d      (2, 2, 4, 4)                shared" in text
    assert "(2, 2, 4, 4), (2, 2, 4, 4)" in text.splitlines()[0]


def test_summary_leaves_the_model_untouched():
    model = Sequential(Linear(3, 2, dtype="float64"), ReLU())
    model.eval()
    model[0].train()
    model.summary((4, 3), verbose=False)  # dtype defaults to the model's (float64)
    assert [layer.training for layer in model.modules()] == [False, True, False]
    assert all("forward" not in layer.__dict__ for layer in model.modules())
    assert all(layer._cache is None for layer in model.modules())
    assert model[0].weight.grad is None


def test_summary_restores_forward_after_an_error():
    model = Sequential(Flatten(), Linear(3, 2))
    with pytest.raises(ValueError, match=r"Linear '1'.*in_features=3"):
        model.summary((1, 4), verbose=False)
    assert all("forward" not in layer.__dict__ for layer in model.modules())
    assert model(np.zeros((1, 3), "float32")).shape == (1, 2)


def test_summary_input_shape_is_checked():
    with pytest.raises(ValueError, match=r"input_shape must be a tuple of positive ints"):
        Linear(3, 2).summary((1, -3))


def test_summary_of_a_single_layer_on_float32_zeros():
    result = Linear(3, 2).summary((5, 3), dtype="float32", verbose=False)
    assert result.rows == [(0, "Linear", "Linear", (5, 2), 8)] and result.output_shape == (5, 2) and result.total_params == 8
    assert mg.nn.Layer.summary.__doc__
