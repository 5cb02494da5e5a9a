"""Training steps and single-sample convolutions whose speed depends on who threads the BLAS products.

Prints one JSON line: median milliseconds per case (2 minigrad threads, 25 repetitions after 2 warm-ups,
a 0.25 s pause before each case). Used to compare two versions of minigrad: run it alternately from
checkouts of each (``PYTHONPATH=CHECKOUT python benchmarks/blas_policy_steps.py``), several times, and
compare the medians (docs/benchmarks.md, "BLAS never threads a product").
"""
import json
import time

import numpy as np

import minigrad as mg
from minigrad.models import lenet5


def median_ms(step, repeats=25):
    step()
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def training_step(model, x, labels):
    criterion = mg.nn.CrossEntropyLoss()
    optimizer = mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad()
        criterion(model(x), labels)
        model.backward(criterion.backward())
        optimizer.step()
    return step


def main():
    mg.set_num_threads(2)
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    cases = {}
    for batch in (64, 256):
        mlp = mg.nn.Sequential(mg.nn.Flatten(), mg.nn.Linear(784, 256), mg.nn.ReLU(), mg.nn.Linear(256, 10))
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        cases[f"MLP 784-256-10 step B={batch}"] = training_step(mlp, x, rng.integers(0, 10, batch))
    wide = mg.nn.Sequential(mg.nn.Linear(1024, 1024), mg.nn.ReLU(), mg.nn.Linear(1024, 10))
    cases["MLP 1024-1024-10 step B=256"] = training_step(wide, rng.standard_normal((256, 1024)).astype(np.float32),
                                                         rng.integers(0, 10, 256))
    for batch in (1, 128):
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        cases[f"LeNet-5 step B={batch}"] = training_step(lenet5(), x, rng.integers(0, 10, batch))
    for shape, conv in (((1, 16, 64, 64), mg.nn.Conv2d(16, 32, 3, padding=1)),
                        ((1, 64, 32, 32), mg.nn.Conv2d(64, 64, 3, padding=1))):
        x = rng.standard_normal(shape).astype(np.float32)

        def forward_backward(conv=conv, x=x):
            y = conv(x)
            conv.backward(np.ones_like(y))
        cases[f"Conv2d f+b {shape}"] = forward_backward
    results = {}
    for name, step in cases.items():
        time.sleep(0.25)        # OpenBLAS workers of the previous case stop spinning
        results[name] = median_ms(step)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
