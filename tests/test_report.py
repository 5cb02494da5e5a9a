"""The run report (`minigrad report DIR`, `minigrad train --report`, mg.viz.report, mg.viz.ReportCallback).

Real short runs are reported on and the page is opened in headless Chromium with every host name
unresolvable (the approach of tests/test_docs_offline.py): it loads without console messages, loads nothing
from anywhere (every src/href is a data URI or an anchor), has every section, one graph box per layer and the
arrows of a Graph with a residual connection and two branches. A run in progress gets the refresh meta, the
final page does not. Screenshots (laptop 1280x2400, phone 390x2400) land in the test's tmp dir and in
$MINIGRAD_REPORT_SCREENSHOTS when it is set.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.cli import MODELS, build_model

pytest.importorskip("matplotlib", reason="the run report draws filters and feature maps with matplotlib")
from test_cli import DATA, minigrad_command, needs_mnist  # noqa: E402

SECTIONS = ("curves", "model", "layers", "inside", "confusion", "run")
REFRESH = '<meta http-equiv="refresh"'
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
           "--no-default-browser-check", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
           "--enable-logging=stderr", "--v=0"]


def minigrad(*args, check=True):
    env = dict(os.environ, MINIGRAD_BACKEND="numpy")
    result = subprocess.run(minigrad_command() + list(args), capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _browser():
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium)"
        pytest.fail(reason) if os.environ.get("CI") == "true" else pytest.skip(reason)
    return found


def _chromium(browser, page: Path, *extra) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        command = [browser, *OFFLINE, f"--user-data-dir={profile}", *extra, page.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{browser} failed on {page}:\n{result.stderr[-3000:]}"
    return result


def _check_in_browser(page: Path, shots: Path, name: str) -> str:
    """The page's DOM as Chromium built it offline; no console message; screenshots saved. Returns the DOM."""
    browser = _browser()
    result = _chromium(browser, page, "--virtual-time-budget=5000", "--dump-dom")
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], "\n".join(console)
    assert "</html>" in result.stdout
    keep = os.environ.get("MINIGRAD_REPORT_SCREENSHOTS")
    for size in ("1280,2400", "390,2400"):
        shot = shots / f"{name}_{size.split(',')[0]}.png"
        _chromium(browser, page, "--hide-scrollbars", f"--screenshot={shot}", f"--window-size={size}")
        assert shot.stat().st_size > 10_000, f"{shot}: nearly empty"
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / shot.name)
    return result.stdout


def _self_contained(html: str):
    """Every URL the page could load is a data URI or an in-page anchor (the SVG namespace is no load)."""
    urls = re.findall(r'\b(?:src|href|xlink:href)="([^"]*)"', html) + re.findall(r"url\(([^)]*)\)", html)
    loads = [u for u in urls if not u.startswith(("data:", "#"))]
    assert loads == [], loads[:5]
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html)


def _graph_svg(html: str) -> str:
    return html.split('<div class="scroll graph">', 1)[1].split("</svg>", 1)[0]


@needs_mnist
def test_minigrad_report_of_a_lenet5_run(tmp_path):
    out = tmp_path / "run"
    minigrad("train", "--limit-train", "256", "--limit-test", "128", "--epochs", "2", "--no-progress", "--report",
             "--out", str(out), *DATA)
    report = out / "report.html"
    assert REFRESH not in report.read_text(encoding="utf-8")     # the final report of --report: no reload
    report.unlink()
    result = minigrad("report", str(out), *DATA)
    assert "report.html" in result.stdout and report.is_file()
    html = report.read_text(encoding="utf-8")
    assert report.stat().st_size < 5e6 and REFRESH not in html and "final: 2 epochs" in html
    _self_contained(html)
    assert _graph_svg(html).count('<g class="node"') == len(list(mg.models.lenet5().named_children())) == 12
    assert "minigrad train --limit-train 256" in html or "command line" not in html   # recorded when run as a command
    dom = _check_in_browser(report, tmp_path, "lenet5")
    for ident in SECTIONS:
        assert f'id="{ident}"' in dom, ident
    assert dom.count('class="chart"') >= 4 and "<title>test · epoch 2:" in dom   # hover text on the points
    assert "most confidently wrong" in dom and "The first 128 test images" in dom


def _residual_graph():
    g = mg.nn.Graph()
    x = g.input("x")
    stem = g.add("stem", mg.nn.Conv2d(1, 4, 3, padding=1), x)
    h = g.add("relu1", mg.nn.ReLU(), stem)
    h = g.add("conv", mg.nn.Conv2d(4, 4, 3, padding=1), h)
    h = g.add("skip", mg.nn.Add(), h, stem)                       # the residual connection
    a = g.add("branch_1x1", mg.nn.Conv2d(4, 2, 1), h)
    b = g.add("branch_3x3", mg.nn.Conv2d(4, 2, 3, padding=1), h)
    h = g.add("cat", mg.nn.Concat(), a, b)
    h = g.add("pool", mg.nn.MaxPool2d(4), h)
    h = g.add("flatten", mg.nn.Flatten(), h)
    g.output(g.add("fc", mg.nn.Linear(4 * 7 * 7, 10), h))
    return g


@needs_mnist
def test_report_callback_of_a_graph_run_in_progress_then_final(tmp_path):
    mg.manual_seed(0)
    root = DATA[1] if DATA else None
    train, test = mg.data.MNIST("train", root=root, limit=256), mg.data.MNIST("test", root=root, limit=200)
    g = _residual_graph()
    run_dir = tmp_path / "graph_run"
    copies = []

    def keep_report(state, logs):      # runs after ReportCallback: the page as it was after this epoch
        copies.append((run_dir / "report.html").read_text(encoding="utf-8"))

    loader = mg.data.DataLoader(train, batch_size=64, shuffle=True, seed=0)
    mg.train.fit(g, mg.nn.CrossEntropyLoss(), mg.optim.Adam(g.parameters(), lr=3e-3), loader, epochs=2,
                 val_loader=mg.data.DataLoader(test, batch_size=100), checkpoint_dir=run_dir,
                 log_path=run_dir / "history.jsonl", progress=False,
                 callbacks=[mg.viz.ReportCallback(run_dir, train=train, test=test), keep_report])
    first, final = copies
    assert REFRESH in first and "in progress, epoch 1 of 2" in first
    assert REFRESH not in final and "final: 2 epochs" in final
    boxes, arrows = mg.viz.network.network_of(g, (1, 1, 28, 28))
    svg = _graph_svg(final)
    assert svg.count('<g class="node"') == len(g.nodes) == 10
    assert svg.count('class="edge"') == len(arrows)
    assert 'data-from="n0" data-to="n3"' in svg                      # the residual arrow: stem -> skip

    in_progress = tmp_path / "in_progress.html"
    in_progress.write_text(first, encoding="utf-8")
    dom = _check_in_browser(in_progress, tmp_path, "graph_in_progress")
    assert all(f'id="{ident}"' in dom for ident in SECTIONS)

    (run_dir / "report.html").unlink()                               # afterwards, from the directory: final
    path = mg.report(run_dir, model=_residual_graph(), train=train, test=test)
    html = Path(path).read_text(encoding="utf-8")
    assert REFRESH not in html and "final: 2 epochs" in html and "The first 200 test images" in html
    _self_contained(html)


@needs_mnist
def test_report_of_a_model_without_convolutions(tmp_path):
    out = tmp_path / "mlp"
    minigrad("train", "--model", "mlp", "--limit-train", "64", "--limit-test", "64", "--epochs", "1",
             "--batch-size", "32", "--no-progress", "--out", str(out), *DATA)
    html = Path(mg.viz.report(out, data_root=DATA[1] if DATA else None)).read_text(encoding="utf-8")
    assert "has no convolution" in html and all(f'id="{ident}"' in html for ident in SECTIONS)
    assert _graph_svg(html).count('<g class="node"') == len(list(mg.models.mlp(784, (256, 128), 10).named_children()))


def test_a_directory_without_a_run_is_one_line(tmp_path):
    result = minigrad("report", str(tmp_path), check=False)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minigrad report: error: ") and "checkpoint.npz" in lines[0]
    with pytest.raises(mg.viz.NotARunError, match="no checkpoint.npz"):
        mg.report(tmp_path)


def test_without_matplotlib_the_plot_extra_is_named(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from minigrad.cli import main\nsys.exit(main(['report', sys.argv[1]]))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and '.[plot]' in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", MODELS)
def test_the_report_rebuilds_the_models_of_minigrad_train(name):
    from minigrad.viz.report_run import mnist_model
    assert tuple(MODELS) == mg.models.MNIST_MODELS                 # --model's choices are the table's names
    ours, cli = mnist_model(name), build_model(name)
    assert type(ours[0]) is type(cli[0]) and type(ours[1]) is type(cli[1])
    assert {k: v.shape for k, v in ours[0].state_dict().items()} == {k: v.shape for k, v in cli[0].state_dict().items()}
    if ours[1] is not None:
        x = np.zeros((1, 1, 28, 28), np.float32)
        assert np.array_equal(ours[1](x), cli[1](x))
