"""mg.viz: the network graph (SVG written by minigrad), filters, feature maps and the confusion matrix (PNG).

The SVG is parsed as XML and its boxes and arrows counted against the model; the PNGs are decoded; the
numbers behind each picture (.tiles, .maps, .matrix, .accuracy) are checked against a direct computation;
one test draws the LeNet-5 graph and the filters in headless Chromium (skipped without Chromium).
"""
from __future__ import annotations

import io
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import Add, Concat, Conv2d, Graph, Linear, ReLU, Sequential

plt_image = pytest.importorskip("matplotlib.image", reason="mg.viz draws with matplotlib (the [plot] extra)")

SVG = "{http://www.w3.org/2000/svg}"


def _elements(svg: str, cls: str):
    root = ET.fromstring(svg)                                  # parses: the SVG is well-formed XML
    return [e for e in root.iter() if e.get("class") == cls]


def _texts(group) -> list[str]:
    return [t.text for t in group.iter(f"{SVG}text")]


def _decode(png: bytes) -> np.ndarray:
    return plt_image.imread(io.BytesIO(png), format="png")


def _residual_branch_graph():
    """x -> conv1 -> relu1 -> conv2 -> sum(conv2, conv1) -> left | right -> cat -> conv2 again (shared)."""
    g = Graph()
    x = g.input("x")
    a = g.add("conv1", Conv2d(3, 8, 3, padding=1), x)
    h = g.add("relu1", ReLU(), a)
    shared = Conv2d(8, 8, 3, padding=1)
    h = g.add("conv2", shared, h)
    s = g.add("sum", Add(), h, a)                              # the residual edge: conv1 -> sum
    left = g.add("left", Conv2d(8, 4, 1), s)
    right = g.add("right", Conv2d(8, 4, 3, padding=1), s)
    cat = g.add("cat", Concat(), left, right)
    g.output(g.add("conv2_again", shared, cat))
    return g


def _boxes_overlap(svg: str) -> list:
    rects = []
    for cls in ("node", "input", "output"):
        for group in _elements(svg, cls):
            r = group.find(f"{SVG}rect")
            rects.append((group.get("data-name"), *(float(r.get(k)) for k in ("x", "y", "width", "height"))))
    return [(a[0], b[0]) for a, b in itertools.combinations(rects, 2)
            if a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]]


def test_lenet5_graph_has_one_node_per_layer_chained_and_labelled_with_shapes():
    model = mg.models.lenet5()
    picture = mg.viz.graph(model, (1, 1, 28, 28))
    nodes = _elements(picture.svg, "node")
    rows = model.summary((1, 1, 28, 28), verbose=False).rows
    assert len(nodes) == len(model) == 12
    assert len(_elements(picture.svg, "input")) == 1 and len(_elements(picture.svg, "output")) == 1
    assert len(_elements(picture.svg, "edge")) == 13                # input -> 0 -> ... -> 11 -> output
    for group, (_, _, kind, shape, params) in zip(nodes, rows):
        text = _texts(group)
        assert text[0].endswith(f"· {kind}")
        assert text[1] == "(" + ", ".join(map(str, shape)) + ")"
        assert text[2] == (f"{params:,} params" if params else "no params")
    assert "(1, 6, 28, 28)" in _texts(nodes[0]) and "(1, 10)" in _texts(nodes[-1])
    assert "61,706 parameters" in picture.svg
    assert _boxes_overlap(picture.svg) == []


def test_graph_with_residual_branch_concat_and_shared_layer():
    g = _residual_branch_graph()
    picture = mg.viz.graph(g, (2, 3, 16, 16))
    nodes = _elements(picture.svg, "node")
    assert [n.get("data-name") for n in nodes] == [name for name, _, _ in g.nodes]
    edges = [(e.get("data-from"), e.get("data-to")) for e in _elements(picture.svg, "edge")]
    assert len(edges) == sum(len(inputs) for _, _, inputs in g.nodes) + len(g.output_names) == 11
    name = {box.key: box.name for box in picture.boxes}
    named = [(name[a], name[b]) for a, b in edges]
    assert ("conv1", "sum") in named and ("conv2", "sum") in named          # the residual and the main path
    assert ("sum", "left") in named and ("sum", "right") in named           # the branch
    assert ("left", "cat") in named and ("right", "cat") in named           # the concat
    by_name = {n.get("data-name"): _texts(n) for n in nodes}
    assert by_name["cat"][1] == "(2, 8, 16, 16)" and by_name["left"][1] == "(2, 4, 16, 16)"
    assert by_name["conv2"][2] == "584 params" and by_name["conv2_again"][2] == "shared with conv2"
    assert _boxes_overlap(picture.svg) == []
    left, right = (float(n.find(f"{SVG}rect").get("x")) for n in nodes if n.get("data-name") in ("left", "right"))
    assert left != right                                                    # the branches side by side


def test_graph_text_is_escaped():
    g = Graph()
    x = g.input('in<&>"')
    g.output(g.add('a<b&"c>', Linear(4, 2), x))
    picture = mg.viz.graph(g, (1, 4))
    node, = _elements(picture.svg, "node")
    assert node.get("data-name") == 'a<b&"c>' and _texts(node)[0] == 'a<b&"c> · Linear'
    assert _elements(picture.svg, "input")[0].get("data-name") == 'in<&>"'


def test_filters_one_tile_per_output_channel_each_normalised():
    conv = Conv2d(3, 5, 3)
    picture = mg.viz.filters(Sequential(conv, ReLU()))
    assert len(picture.tiles) == 5 and picture.grid[0] * picture.grid[1] >= 5
    assert all(t.shape == (3, 3, 3) and t.min() == 0 and t.max() == 1 for t in picture.tiles)   # RGB, per filter
    np.testing.assert_array_equal(picture.weights, conv.weight.data)
    assert _decode(picture.png).ndim == 3
    grey = mg.viz.filters(Conv2d(4, 6, 5))
    assert len(grey.tiles) == 6 and grey.tiles[0].shape == (5, 5)                   # mean over 4 inputs
    assert grey._repr_png_() == grey.png and grey._repr_html_().startswith('<img src="data:image/png;base64,')


def test_feature_maps_are_the_convolution_outputs_and_leave_the_model_as_it_was():
    model = mg.models.lenet5()
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype("float32")
    out = model(x)                                             # a training forward whose backward comes later
    caches = [(layer, layer._cache) for layer in model.modules()]
    picture = mg.viz.feature_maps(model, x, sample=2)
    assert all(layer._cache is cache for layer, cache in caches) and model.training
    assert list(picture.maps) == ["0", "3"]
    with mg.no_grad():
        expected = model[0](x[2:3])
    np.testing.assert_allclose(picture.maps["0"], expected[0], rtol=1e-5, atol=1e-6)
    assert picture.maps["3"].shape == (16, 10, 10)
    assert _decode(picture.png).shape[2] in (3, 4)
    model.backward(np.ones_like(out))                          # the earlier forward's backward still works


def test_feature_maps_of_a_shared_convolution_are_named_per_node():
    picture = mg.viz.feature_maps(_residual_branch_graph(), np.ones((1, 3, 8, 8), dtype="float32"), max_channels=4)
    assert list(picture.maps) == ["conv1", "conv2", "left", "right", "conv2_again"]
    assert picture.maps["left"].shape == (4, 8, 8)


def test_confusion_matrix_counts_every_sample_and_its_accuracy_is_the_trace():
    model = Sequential(Linear(6, 4))
    rng = np.random.default_rng(3)
    data, labels = rng.standard_normal((37, 6)).astype("float32"), rng.integers(0, 4, 37)
    loader = mg.data.DataLoader(mg.data.ArrayDataset(data, labels), batch_size=8)
    picture = mg.viz.confusion_matrix(model, loader)
    with mg.no_grad():
        predicted = model(data).argmax(axis=1)
    expected = np.zeros((4, 4), dtype=np.int64)
    np.add.at(expected, (labels, predicted), 1)
    np.testing.assert_array_equal(picture.matrix, expected)
    assert picture.matrix.sum() == picture.num_samples == 37
    assert picture.accuracy == pytest.approx(np.mean(predicted == labels))
    assert _decode(picture.png).ndim == 3
    assert mg.viz.confusion_matrix(model, loader, num_classes=6).matrix.shape == (6, 6)


def test_save_round_trips_and_refuses_unknown_formats(tmp_path):
    graph = mg.viz.graph(mg.models.lenet5(), (1, 1, 28, 28))
    graph.save(tmp_path / "net.svg")
    assert (tmp_path / "net.svg").read_text(encoding="utf-8") == graph.svg == graph._repr_svg_()
    with pytest.raises(ValueError, match=r"GraphPicture.save: .*net.png.*expected a path ending in .svg"):
        graph.save(tmp_path / "net.png")
    filters = mg.viz.filters(mg.models.lenet5())
    filters.save(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes() == filters.png
    filters.save(tmp_path / "f.SVG")
    assert ET.parse(tmp_path / "f.SVG").getroot().tag == f"{SVG}svg"
    with pytest.raises(ValueError, match=r"FiltersPicture.save: .*'\.jpg'.*expected a path ending in \.png or \.svg"):
        filters.save(tmp_path / "f.jpg")
    with pytest.raises(ValueError, match="no suffix"):
        filters.save(tmp_path / "f")


def test_errors_name_the_function_what_was_expected_and_what_came():
    mlp = mg.models.mlp()
    with pytest.raises(TypeError, match=r"mg.viz.filters: the Sequential has no Conv2d layer \(it has: .*Linear"):
        mg.viz.filters(mlp)
    with pytest.raises(TypeError, match="mg.viz.feature_maps: the Sequential has no Conv2d"):
        mg.viz.feature_maps(mlp, np.zeros((1, 1, 28, 28), dtype="float32"))
    with pytest.raises(ValueError, match=r"mg.viz.feature_maps: x must be .*\(N, C, H, W\), got shape \(1, 28, 28\)"):
        mg.viz.feature_maps(mg.models.lenet5(), np.zeros((1, 28, 28), dtype="float32"))
    with pytest.raises(TypeError, match="mg.viz.graph: expected a minigrad layer or model .* got str"):
        mg.viz.graph("lenet", (1, 1, 28, 28))
    loader = [(np.zeros((2, 6), dtype="float32"), np.array([0, 5]))]
    with pytest.raises(ValueError, match=r"mg.viz.confusion_matrix: label 5 is out of range for 4 classes"):
        mg.viz.confusion_matrix(Sequential(Linear(6, 4)), loader)


def test_missing_matplotlib_names_the_plot_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"mg.viz.filters needs the 'matplotlib' package.*\.\[plot\]"):
        mg.viz.filters(Conv2d(1, 2, 3))
    assert "<svg" in mg.viz.graph(mg.models.lenet5(), (1, 1, 28, 28)).svg     # the graph needs no matplotlib


def test_import_minigrad_does_not_import_matplotlib():
    code = "import sys, minigrad; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_pictures_of_a_model_on_either_backend(backend):
    """On CuPy (a GPU, or MINIGRAD_TEST_CUPY=sim) the arrays are copied to the host to be drawn."""
    model = mg.models.lenet5()
    x = np.random.default_rng(1).standard_normal((6, 1, 28, 28)).astype("float32")
    assert type(mg.viz.filters(model).weights) is np.ndarray
    maps = mg.viz.feature_maps(model, x).maps                     # a host x goes to the model's backend
    assert all(type(m) is np.ndarray for m in maps.values()) and maps["3"].shape == (16, 10, 10)
    loader = mg.data.DataLoader(mg.data.ArrayDataset(x, np.arange(6) % 10), batch_size=4)
    picture = mg.viz.confusion_matrix(model, loader)
    assert picture.matrix.sum() == 6 and type(picture.matrix) is np.ndarray
    assert len(_elements(mg.viz.graph(model, (1, 1, 28, 28)).svg, "node")) == 12


def _screenshot(browser: str, url: str, out: Path) -> np.ndarray:
    with tempfile.TemporaryDirectory() as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", f"--user-data-dir={profile}", "--hide-scrollbars",
                   f"--screenshot={out}", "--window-size=1000,1400", url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and out.exists(), f"{browser} failed on {url}:\n{result.stderr[-2000:]}"
    return plt_image.imread(out)


def test_lenet5_graph_and_filters_render_in_a_browser(tmp_path):
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is not installed (Debian: apt-get install chromium)")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    keep = os.environ.get("MINIGRAD_VIZ_SCREENSHOTS")              # a folder to keep the screenshots in, to look at
    folder = Path(keep) if keep else tmp_path
    model = mg.models.lenet5()
    graph = Path(mg.viz.graph(model, (1, 1, 28, 28)).save(tmp_path / "lenet5.svg"))
    mg.viz.filters(model).save(tmp_path / "filters.png")
    filters = tmp_path / "filters.html"                           # on white, as in a notebook (not a viewer's black)
    filters.write_text('<html><body style="margin:0;background:white"><img src="filters.png"></body></html>')
    for source in (graph, filters):
        shot = _screenshot(browser, source.as_uri(), folder / f"{source.stem}_screenshot.png")
        ink = shot[..., :3].mean(axis=2) < 0.5                     # dark pixels: text, lines, dark filter cells
        assert shot.shape[:2] == (1400, 1000) and ink.mean() > 0.002, f"{source.name}: nearly blank in the browser"
    svg = graph.read_text(encoding="utf-8")
    height = float(ET.fromstring(svg).get("height"))
    assert height <= 1400, f"the LeNet-5 graph is {height} px high: it does not fit the window"
