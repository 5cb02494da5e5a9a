"""A small text classifier, as issue 25 asks: Embedding -> Conv1d -> ReLU -> global max pool -> Linear, on a
seeded synthetic token dataset made here (the class of a sequence is which of three "keyword" bigrams it holds,
among random filler tokens and padding).

An Embedding gives (N, L, D) and Conv1d takes (N, D, L); PyTorch users write ``x.transpose(1, 2)`` in their
forward. minigrad has no transpose layer, so the model carries a four-line custom Layer, ``Transpose`` (below),
as a user would write it. The model trains with mg.train.fit (integer batches through the DataLoader, the
backward stopping at the Embedding), and its gradients equal PyTorch's twin's in float64.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

VOCAB, LENGTH, PAD = 30, 16, 0
KEYWORDS = [(3, 7), (5, 2), (9, 11)]          # class c: the bigram KEYWORDS[c] occurs in the sequence


class Transpose(nn.Layer):
    """Swap two dimensions, as ``x.transpose(dim0, dim1)``: (N, L, D) -> (N, D, L) for (1, 2)."""

    def __init__(self, dim0, dim1):
        super().__init__()
        self.dim0, self.dim1 = dim0, dim1

    def forward(self, x):
        self._cache = True
        return x.swapaxes(self.dim0, self.dim1)

    def backward(self, grad_out):
        self.take_cache()
        return grad_out.swapaxes(self.dim0, self.dim1)


def make_dataset(count, seed):
    """(tokens (count, LENGTH) int64, labels (count,) int64): filler tokens 12..29, a keyword bigram at a random
    place, a random amount of trailing padding (never over the keyword)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(12, VOCAB, (count, LENGTH))
    labels = rng.integers(0, len(KEYWORDS), count)
    for row, label in enumerate(labels):
        used = rng.integers(6, LENGTH + 1)                       # the rest is padding
        start = rng.integers(0, used - 1)
        tokens[row, start:start + 2] = KEYWORDS[label]
        tokens[row, used:] = PAD
    return tokens.astype("int64"), labels.astype("int64")


def text_cnn(dim=16, channels=24, dtype="float32"):
    return nn.Sequential(nn.Embedding(VOCAB, dim, padding_idx=PAD, dtype=dtype), Transpose(1, 2),
                         nn.Conv1d(dim, channels, 3, padding=1, dtype=dtype), nn.ReLU(), nn.AdaptiveMaxPool1d(1),
                         nn.Flatten(), nn.Linear(channels, len(KEYWORDS), dtype=dtype))


def _accuracy(model, tokens, labels):
    model.eval()
    with mg.no_grad():
        predicted = model(tokens).argmax(axis=1)
    model.train()
    return float((predicted == labels).mean())


def test_the_text_classifier_trains_well_above_chance():
    mg.manual_seed(0)
    train_x, train_y = make_dataset(1200, seed=1)
    test_x, test_y = make_dataset(400, seed=2)
    model = text_cnn()
    criterion = nn.CrossEntropyLoss()
    with mg.no_grad():
        first_loss = float(criterion(model(train_x), train_y))
    assert _accuracy(model, test_x, test_y) < 0.5
    loader = mg.data.DataLoader(mg.data.ArrayDataset(train_x, train_y), batch_size=32, shuffle=True, seed=0)
    history = mg.train.fit(model, criterion, mg.optim.Adam(model.parameters(), lr=0.01), loader, epochs=3)
    losses = history["train_loss"]                       # one mean per epoch
    assert losses[0] < first_loss and losses[-1] < 0.1 * first_loss, (first_loss, losses)
    accuracy = _accuracy(model, test_x, test_y)
    assert accuracy > 0.9, accuracy                      # chance is 1/3
    assert np.all(model[0].weight.data[PAD] == 0)        # the padding row never learned


def test_the_text_classifier_has_pytorchs_gradients():
    torch = pytest.importorskip("torch")

    class TorchTextCNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, 8, padding_idx=PAD)
            self.conv = torch.nn.Conv1d(8, 6, 3, padding=1)
            self.head = torch.nn.Linear(6, 3)

        def forward(self, tokens):
            h = torch.relu(self.conv(self.embed(tokens).transpose(1, 2)))    # (N, L, D) -> (N, D, L)
            return self.head(torch.nn.functional.adaptive_max_pool1d(h, 1).flatten(1))

    torch.manual_seed(0)
    ref = TorchTextCNN().double()
    model = text_cnn(dim=8, channels=6, dtype="float64")
    state = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    model.load_state_dict({"0.weight": state["embed.weight"], "2.weight": state["conv.weight"],
                           "2.bias": state["conv.bias"], "6.weight": state["head.weight"],
                           "6.bias": state["head.bias"]})
    tokens, labels = make_dataset(12, seed=3)
    loss_ref = torch.nn.functional.cross_entropy(ref(torch.from_numpy(tokens)), torch.from_numpy(labels))
    loss_ref.backward()
    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(tokens), labels)
    assert model.backward(criterion.backward()) is None
    np.testing.assert_allclose(loss, loss_ref.item(), rtol=1e-12)
    for ours, theirs in (("0", "embed"), ("2", "conv"), ("6", "head")):
        for kind in ("weight", "bias") if ours != "0" else ("weight",):
            np.testing.assert_allclose(getattr(model[int(ours)], kind).grad,
                                       getattr(getattr(ref, theirs), kind).grad.numpy(), rtol=1e-10, atol=1e-13)


def test_one_epoch_on_each_backend(backend):
    mg.manual_seed(0)
    tokens, labels = make_dataset(256, seed=4)
    model = text_cnn()
    loader = mg.data.DataLoader(mg.data.ArrayDataset(tokens, labels), batch_size=64, seed=0)
    history = mg.train.fit(model, nn.CrossEntropyLoss(), mg.optim.Adam(model.parameters(), lr=0.01), loader,
                           epochs=1)
    assert np.isfinite(history["train_loss"][0]) and model.backend == backend
    assert mg.backend.backend_of(model[0].weight.grad) == backend
