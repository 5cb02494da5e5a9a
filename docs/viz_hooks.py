"""MkDocs hook: the pictures of docs/seeing_inside.md, drawn by mg.viz while the site is built.

Nothing drawn by hand is committed: ``on_files`` runs the code below (the same calls the page shows) and
adds the results to the site under ``images/seeing_inside/``. The filters, feature maps and confusion matrix
are those of a LeNet-5 trained for one epoch on 2,048 MNIST images (the ``[data]`` extra); without MNIST the
same pictures are drawn for an untrained network on random images, and the build says so on stdout.
Needs the ``[plot]`` extra (matplotlib).
"""
from __future__ import annotations

import numpy as np
from mkdocs.structure.files import File

FOLDER = "images/seeing_inside"


def _residual_graph(mg):
    g = mg.nn.Graph()
    x = g.input("x")
    stem = g.add("stem", mg.nn.Conv2d(1, 8, 3, padding=1), x)
    h = g.add("relu1", mg.nn.ReLU(), stem)
    h = g.add("conv", mg.nn.Conv2d(8, 8, 3, padding=1), h)
    h = g.add("skip", mg.nn.Add(), h, stem)
    a = g.add("branch_1x1", mg.nn.Conv2d(8, 4, 1), h)
    b = g.add("branch_3x3", mg.nn.Conv2d(8, 4, 3, padding=1), h)
    h = g.add("cat", mg.nn.Concat(), a, b)
    h = g.add("pool", mg.nn.MaxPool2d(2), h)
    h = g.add("flatten", mg.nn.Flatten(), h)
    g.output(g.add("fc", mg.nn.Linear(8 * 14 * 14, 10), h))
    return g


def _trained_lenet(mg):
    mg.manual_seed(0)
    model = mg.models.lenet5()
    try:
        train = mg.data.MNIST("train", limit=2048)
        test = mg.data.MNIST("test", limit=1000)
    except (mg.data.DatasetNotFoundError, ImportError) as exc:
        print(f"docs/viz_hooks.py: MNIST is not available ({exc}); drawing an untrained LeNet-5 on random images")
        rng = np.random.default_rng(0)
        test = mg.data.ArrayDataset(rng.standard_normal((256, 1, 28, 28)).astype("float32"), rng.integers(0, 10, 256))
        return model, test
    loader = mg.data.DataLoader(train, batch_size=64, shuffle=True)
    optimizer = mg.optim.Adam(model.parameters(), lr=3e-3)
    mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, loader, epochs=1, progress=False)
    return model, test


def pictures() -> dict[str, bytes]:
    """{file name: bytes} of every picture on the page."""
    import minigrad as mg
    model, test = _trained_lenet(mg)
    x = test[np.arange(1)][0]                                         # one test image, (1, 1, 28, 28)
    return {
        "lenet5.svg": mg.viz.graph(model, (1, 1, 28, 28)).svg.encode("utf-8"),
        "residual.svg": mg.viz.graph(_residual_graph(mg), (1, 1, 28, 28)).svg.encode("utf-8"),
        "filters.png": mg.viz.filters(model).png,
        "feature_maps.png": mg.viz.feature_maps(model, x, max_channels=8).png,
        "confusion.png": mg.viz.confusion_matrix(model, mg.data.DataLoader(test, batch_size=250)).png,
    }


def on_files(files, config):
    for name, data in pictures().items():
        uri = f"{FOLDER}/{name}"
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=data))
    return files
