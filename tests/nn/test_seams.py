"""One gradient per forward (nn/forward_record.py): whatever a user runs between a forward and its backward
(another forward, a no_grad or eval forward, a second loss), the gradient is that forward's, bit for bit, or
the backward is refused with an error naming the layer. On NumPy and the (simulated) CuPy."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import Graph, Layer, Linear, ReLU, Sequential
from minigrad.nn.forward_record import GradientOwnershipError


def _lenet(xp_backend="numpy"):
    mg.manual_seed(0)
    return mg.models.lenet5().to(xp_backend, dtype="float64")


def _batches(xp, n=6, seed=0):
    rng = np.random.default_rng(seed)
    a = xp.asarray(rng.standard_normal((n, 1, 28, 28)))
    b = xp.asarray(rng.standard_normal((n, 1, 28, 28)))
    target = xp.asarray(rng.integers(0, 10, n))
    return a, b, target


def _take_grads(model):
    grads = [mg.backend.to_backend(p.grad, "numpy").copy() for p in model.parameters()]
    model.zero_grad()
    return grads


def _reference(model, loss, a, target):
    """The gradient of loss(model(a), target), with nothing in between."""
    loss(model(a), target)
    model.backward(loss.backward())
    return _take_grads(model)


def _same(left, right):
    return all(np.array_equal(x, y) for x, y in zip(left, right))


def test_an_extra_forward_before_backward_gives_the_first_forwards_gradient(backend, xp):
    model, loss = _lenet(backend), mg.nn.CrossEntropyLoss()
    a, b, target = _batches(xp)
    reference = _reference(model, loss, a, target)
    out_a = model(a)
    loss(out_a, target)
    out_b = model(b)                                    # e.g. a forward for logging
    model.backward(loss.backward())
    assert _same(_take_grads(model), reference)
    assert out_b.shape == out_a.shape
    # and the extra forward can still be backwarded afterwards, with its own gradient
    loss(out_b, target)
    model.backward(loss.backward())
    assert _same(_take_grads(model), _reference(model, loss, b, target))


def test_the_same_sequence_on_the_old_design_would_differ():
    """The check above is not vacuous: pairing A's loss gradient with B's activations differs."""
    model, loss = _lenet(), mg.nn.CrossEntropyLoss()
    a, b, target = _batches(np)
    reference = _reference(model, loss, a, target)
    loss(model(a), target)
    grad_a = loss.backward().copy()                     # a copy: a gradient that names no forward
    model.clear_cache()                                 # A's activations gone, as B's forward replaced them
    model(b)
    model.backward(grad_a)                              # B's activations with A's gradient: the old result
    wrong = _take_grads(model)
    assert max(float(np.abs(x - y).max()) for x, y in zip(wrong, reference)) > 1e-3


def test_a_no_grad_forward_leaves_the_training_caches_alone(backend, xp):
    model, loss = _lenet(backend), mg.nn.CrossEntropyLoss()
    a, b, target = _batches(xp)
    reference = _reference(model, loss, a, target)
    loss(model(a), target)
    with mg.no_grad():
        model(b)                                        # a validation batch in the middle
        loss(model(b), target)
    model.backward(loss.backward())
    assert _same(_take_grads(model), reference)


def test_an_eval_forward_under_no_grad_changes_neither_caches_nor_running_stats(backend, xp):
    mg.manual_seed(0)
    model = Sequential(mg.nn.Conv2d(1, 4, 3), mg.nn.BatchNorm2d(4), ReLU(), mg.nn.Flatten(),
                       Linear(4 * 26 * 26, 10)).to(backend, dtype="float64")
    loss = mg.nn.CrossEntropyLoss()
    a, b, target = _batches(xp)
    loss(model(a), target)
    stats = [mg.backend.to_backend(v, "numpy").copy() for v in model.state_dict().values()]
    model.eval()
    with mg.no_grad():
        model(b)
    model.train()
    assert _same([mg.backend.to_backend(v, "numpy") for v in model.state_dict().values()], stats)
    model.backward(loss.backward())
    grads = _take_grads(model)
    model.load_state_dict(dict(zip(model.state_dict(), stats)))  # undo the first forward's running-stat update
    model.state_dict()["1.running_mean"][...] = 0
    model.state_dict()["1.running_var"][...] = 1
    assert _same(grads, _reference(model, loss, a, target))


def test_a_loss_called_twice_with_both_values_held_is_refused(backend, xp):
    model, loss = _lenet(backend), mg.nn.CrossEntropyLoss()
    a, b, target = _batches(xp)
    value_a = loss(model(a), target)
    value_b = loss(model(b), target)
    with pytest.raises(GradientOwnershipError, match=r"CrossEntropyLoss: 2 forwards of this layer are waiting"
                                                     r".*mg.no_grad\(\)"):
        loss.backward()
    assert value_a.shape == value_b.shape == ()


def test_a_loss_whose_first_value_was_dropped_backwards_the_second(backend, xp):
    model, loss = _lenet(backend), mg.nn.CrossEntropyLoss()
    a, b, target = _batches(xp)
    reference = _reference(model, loss, b, target)
    float(loss(model(a), target))                       # logged as a float: nothing holds that forward
    loss(model(b), target)
    model.backward(loss.backward())
    assert _same(_take_grads(model), reference)


def test_a_hand_made_gradient_with_two_forwards_waiting_is_refused_and_with_one_is_taken():
    layer = Linear(3, 2, dtype="float64")
    x1, x2 = np.ones((4, 3)), np.full((4, 3), 2.0)
    y1, y2 = layer(x1), layer(x2)
    with pytest.raises(GradientOwnershipError, match=r"Linear: 2 forwards of this layer are waiting"):
        layer.backward(np.ones_like(y1))
    del y1, y2
    y = layer(x1)
    layer.backward(np.ones_like(y))                     # one forward waits: the gradient is its
    np.testing.assert_array_equal(layer.weight.grad, np.full((2, 3), 4.0))


def test_a_gradient_used_again_after_another_forward_is_refused():
    model, loss = _lenet(), mg.nn.CrossEntropyLoss()
    a, b, target = _batches(np)
    loss(model(a), target)
    grad = loss.backward()
    model.backward(grad)
    model(b)
    with pytest.raises(GradientOwnershipError, match="backward already ran for the forward this gradient belongs to"):
        model.backward(grad)


def test_a_gradient_given_to_the_wrong_layer_is_refused():
    first, second = Linear(3, 2), Linear(3, 2)
    loss = mg.nn.MSELoss()
    x = np.ones((4, 3), "float32")
    loss(first(x), np.zeros((4, 2), "float32"))
    second(x)
    with pytest.raises(GradientOwnershipError, match="belongs to a forward of Linear, not of Linear"):
        second.backward(loss.backward())


def test_a_custom_layer_follows_the_rule_without_code_of_its_own():
    class Scale(Layer):                                  # as docs/custom_layer.md writes one
        def forward(self, x):
            self._cache = x
            return 3.0 * x * x

        def backward(self, grad_out):
            x = self.take_cache()
            return grad_out * 6.0 * x

    layer, loss = Scale(), mg.nn.MSELoss()
    a, b = np.full((2, 2), 1.0), np.full((2, 2), 5.0)
    target = np.zeros((2, 2))
    loss(layer(a), target)
    layer(b)
    with mg.no_grad():
        layer(b)
    grad = layer.backward(loss.backward())
    np.testing.assert_array_equal(grad, (2 * 3.0 / 4) * 6.0 * a)     # d/da mean((3a^2)^2) = 2*3a^2*6a/4


def test_graph_with_a_shared_layer_backwards_the_right_forward(backend, xp):
    mg.manual_seed(1)
    shared = Linear(4, 4, dtype="float64").to(backend)
    graph = Graph()
    x = graph.input("x")
    h = graph.add("first", shared, x)
    h = graph.add("act", ReLU(), h)
    graph.output(graph.add("second", shared, h))
    loss = mg.nn.MSELoss()
    rng = np.random.default_rng(2)
    a, b = xp.asarray(rng.standard_normal((3, 4))), xp.asarray(rng.standard_normal((3, 4)))
    target = xp.zeros((3, 4))
    reference = _reference(graph, loss, a, target)
    loss(graph(a), target)
    graph(b)
    graph.backward(loss.backward())
    assert _same(_take_grads(graph), reference)


def test_stepping_through_a_sequentials_layers_by_hand_still_works():
    model, loss = _lenet(), mg.nn.CrossEntropyLoss()
    a, _, target = _batches(np)
    reference = _reference(model, loss, a, target)
    loss(model(a), target)
    grad = loss.backward()
    for layer in reversed(list(model)):
        grad = layer.backward(grad)
    assert _same(_take_grads(model), reference)


def test_moving_the_model_between_forward_and_backward_is_refused():
    layer, loss = Linear(3, 2), mg.nn.MSELoss()
    x = np.ones((4, 3), "float32")
    loss(layer(x), np.zeros((4, 2), "float32"))
    layer.to(dtype="float64")
    with pytest.raises(GradientOwnershipError, match="activations of the forward this gradient belongs to are gone"):
        layer.backward(loss.backward())


def test_a_training_loop_does_not_keep_old_activations_alive():
    """Each step's forward is backwarded before the next: nothing is parked, whatever the loop keeps."""
    model, loss = _lenet(), mg.nn.CrossEntropyLoss()
    a, b, target = _batches(np)
    out = model(a)
    loss(out, target)
    model.backward(loss.backward())
    from minigrad.nn import forward_record
    record = forward_record.record_of(out)
    out = model(b)                                      # `out` of the previous step is alive during this call
    assert record.done and record.caches is None
