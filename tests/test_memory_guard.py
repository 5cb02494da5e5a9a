"""The memory guard (minigrad/runtime/memory.py): shapes that need more memory than the machine can give raise a
MemoryError naming the layer, the shape and the bytes, before anything is allocated, instead of getting
the process OOM-killed. Checked for real under an address-space limit in a child process, and through
MINIGRAD_MAX_BYTES in this one."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad.runtime import memory
from minigrad.functional import conv as F

# In a child process limited to its current size + 2 GiB (ulimit -v), run two shapes whose outputs alone need far
# more: Conv2d with padding=15000 on a 1x1 input, and ConvTranspose2d with stride 50000.
_LIMITED = r"""
import json, resource
import numpy as np
import minigrad as mg
with open("/proc/self/statm") as handle:
    size = int(handle.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), resource.RLIM_INFINITY))
cases = {
    "conv": lambda: mg.nn.Conv2d(1, 1, 3, padding=15000)(np.ones((1, 1, 1, 1), np.float32)),
    "conv_transpose": lambda: mg.nn.ConvTranspose2d(1, 1, 3, stride=50000)(np.ones((1, 1, 2, 2), np.float32)),
    "in_a_model": lambda: mg.nn.Sequential(mg.nn.ReLU(), mg.nn.Conv2d(2, 4, 3, padding=20000))(
        np.ones((1, 2, 1, 1), np.float32)),
}
out = {}
for name, case in cases.items():
    try:
        case()
        out[name] = None
    except MemoryError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def test_the_issue_shapes_raise_a_clear_memory_error_under_a_memory_limit():
    env = {k: v for k, v in os.environ.items() if k != memory.ENV}
    done = subprocess.run([sys.executable, "-c", _LIMITED], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]                # not killed: a Python exception, caught
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # the output and the padded input at least (6.7 GiB); more where the kernel declares column buffers
    assert re.match(r"Conv2d: output of shape \(1, 1, 29999, 29999\) needs \d{10,} bytes \(\d+\.\d GiB\), more "
                    r"than the \d+ bytes", out["conv"]), out["conv"]
    # the 2 GiB address-space limit, unless the machine has even less memory available
    assert "the address-space limit (ulimit -v) allows" in out["conv"] or "MemAvailable" in out["conv"]
    assert out["conv_transpose"].startswith("ConvTranspose2d: result of shape (1, 1, 50003, 50003) needs "), \
        out["conv_transpose"]
    assert out["in_a_model"].startswith("Conv2d '1': output of shape (1, 4, 39999, 39999)"), out["in_a_model"]


@pytest.fixture
def limit(monkeypatch):
    monkeypatch.setenv(memory.ENV, "1M")


@pytest.mark.parametrize("call, words", [
    (lambda: mg.nn.Conv2d(1, 1, 3, padding=15000)(np.ones((1, 1, 1, 1), np.float32)),
     "Conv2d: output of shape (1, 1, 29999, 29999) needs "),
    (lambda: mg.nn.ConvTranspose2d(1, 1, 3, stride=50000)(np.ones((1, 1, 2, 2), np.float32)),
     "ConvTranspose2d: result of shape (1, 1, 50003, 50003) needs "),
    (lambda: F.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding=400),
     "conv2d: output of shape (1, 1, 802, 802) needs"),
    (lambda: F.unfold(np.ones((1, 1, 300, 300), np.float32), 3, padding=1), "unfold: output of shape (1, 9, 90000)"),
    (lambda: F.fold(np.ones((1, 9, 4), np.float32), (600, 600), 3, stride=300, padding=1),
     "fold: output of shape (1, 1, 600, 600)"),
    (lambda: mg.nn.MaxPool2d(2)(np.ones((1, 1, 512, 512), np.float32)), "MaxPool2d: output of shape (1, 1, 256, 256)"),
    (lambda: mg.nn.AvgPool2d(2)(np.ones((1, 1, 512, 512), np.float32)), "AvgPool2d: output of shape (1, 1, 256, 256)"),
    (lambda: mg.nn.Linear(4, 50_000)(np.ones((8, 4), np.float32)),
     "Linear: output of shape (8, 50000) needs 1600000 bytes (1.5 MiB), more than the 1048576 bytes (1.0 MiB) "
     "MINIGRAD_MAX_BYTES allows"),
])
def test_every_layer_that_allocates_from_user_shapes_checks_first(limit, call, words):
    with pytest.raises(MemoryError) as info:
        call()
    assert str(info.value).startswith(words), str(info.value)
    assert re.search(r" needs \d+ bytes \(\d+\.\d [KMGT]iB\), more than the 1048576 bytes", str(info.value))


def test_the_backward_pass_is_checked_too(monkeypatch):
    layer = mg.nn.MaxPool2d(2)
    x = np.ones((1, 1, 512, 512), np.float32)
    y = layer(x)
    monkeypatch.setenv(memory.ENV, "1M")
    with pytest.raises(MemoryError, match=r"MaxPool2d: output of shape \(1, 1, 512, 512\)"):
        layer.backward(np.ones_like(y))


def test_ordinary_shapes_pass_and_the_limit_can_be_switched_off(monkeypatch):
    monkeypatch.setenv(memory.ENV, "off")
    assert mg.nn.Conv2d(1, 2, 3, padding=1)(np.ones((2, 1, 8, 8), np.float32)).shape == (2, 2, 8, 8)
    monkeypatch.delenv(memory.ENV)
    assert mg.nn.Linear(4, 3)(np.ones((5, 4), np.float32)).shape == (5, 3)
    available, source = memory.available_bytes()
    assert available > 0 and ("MemAvailable" in source or "limit" in source)


@pytest.mark.parametrize("text, expected", [("512", 512), ("2K", 2048), ("1.5M", 1.5 * 2**20), ("3GiB", 3 * 2**30),
                                            ("1t", 2**40), ("off", float("inf"))])
def test_the_limit_accepts_sizes_with_suffixes(monkeypatch, text, expected):
    monkeypatch.setenv(memory.ENV, text)
    assert memory.available_bytes() == (expected, memory.ENV)


def test_a_malformed_limit_names_the_variable(monkeypatch):
    monkeypatch.setenv(memory.ENV, "lots")
    with pytest.raises(ValueError, match="MINIGRAD_MAX_BYTES must be a number of bytes"):
        mg.nn.Linear(4, 3)(np.ones((5, 4), np.float32))


def test_loading_a_checkpoint_larger_than_the_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    mg.save(path, {"w": np.zeros(2**20, np.float32)})
    monkeypatch.setenv(memory.ENV, "1M")
    with pytest.raises(MemoryError, match=r"mg.load: .*big.npz: reading its 1 arrays needs 4194304 bytes \(4.0 MiB\), "
                                            r"more than the 1048576 bytes \(1.0 MiB\) MINIGRAD_MAX_BYTES allows; free memory"):
        mg.load(path)


@pytest.mark.parametrize("text", ["nan", "NaN", "-1", "-2G", "1e999", "lots", "8X", "G", "12 GB please"])
def test_a_limit_that_is_not_a_size_is_refused_naming_the_variable_and_the_accepted_forms(monkeypatch, text):
    # nan used to pass (nan < 0 is false) and fail later in int(nan) with an unrelated message
    monkeypatch.setenv(memory.ENV, text)
    message = (r"MINIGRAD_MAX_BYTES must be a number of bytes >= 0 \(e.g. 1000000\), a size with a K/M/G/T suffix "
               r"\(e.g. 8G, 512M\) or 'off', got " + re.escape(repr(text)))
    with pytest.raises(ValueError, match=message):
        memory.available_bytes()
    with pytest.raises(ValueError, match=message):
        mg.nn.Linear(4, 100_000)(np.ones((8, 4), np.float32))


