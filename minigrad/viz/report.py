"""The run report: one self-contained HTML page about a training run (``minigrad report DIR``, ``mg.report``).

    mg.viz.report("runs/lenet5")                        # writes runs/lenet5/report.html; returns its path
    mg.viz.report(run_dir, model=net, test=test_set)    # a run of mg.train.fit with your own model and data
    fit(..., callbacks=[mg.viz.ReportCallback(run_dir, test=test_set)])   # rewritten after every epoch

Sections (ids in the page): ``curves`` (loss, accuracy, learning rate, images/s: inline SVG charts),
``model`` (mg.viz.graph), ``layers`` (shape, parameters, forward/backward time, gradient norm per layer),
``inside`` (filters and feature maps), ``confusion`` (confusion matrix and the most confidently wrong test
images), ``run`` (configuration, command, environment, checkpoint time). A run still in progress gets
``<meta http-equiv="refresh" content="10">``, so a page left open follows the run; the final page has none.

For a run of ``minigrad train`` the model is rebuilt from the checkpoint's run configuration and the data is
MNIST (``data_root``: IDX files instead of the installed copy); for another run pass ``model`` (the weights
come from the run's checkpoint) and ``train`` / ``test`` datasets. What cannot be shown says why, in place.
"""
from __future__ import annotations

import copy
import itertools
import math
import os
import platform
import time
from html import escape

import numpy

from ..data import MNIST, DataLoader
from ..io.atomic_write import write_bytes_atomic
from ..io.checkpoint import load_into
from ..nn.loss import CrossEntropyLoss
from ..runtime.optional import require
from . import charts, report_measure as measure
from .inside import convolutions, feature_maps, filters
from .network import network_of, graph
from .report_page import page, png_data_uri, table
from .report_run import (MNIST_MODELS, REPORT_NAME, NotARunError, RunFiles, mnist_model, read_run, run_is_live,
                         when)

__all__ = ["report", "ReportCallback", "NotARunError", "REFRESH_SECONDS", "TEST_IMAGES", "TIMING_BATCHES"]

REFRESH_SECONDS = 10
TEST_IMAGES = 1000          # test images for the confusion matrix and the wrong answers
TIMING_BATCHES, TIMING_BATCH = 3, 32    # batches timed per layer (after one warm-up batch), of this many images
WRONG_SHOWN, FEATURE_SAMPLES, FEATURE_CHANNELS = 12, 2, 8


def report(run_dir, model=None, *, train=None, test=None, transform=None, data_root=None, progress=None,
           test_images: int = TEST_IMAGES, loss=None) -> str:
    """Write ``run_dir/report.html`` and return its path.

    model: the run's network, for a run that is not `minigrad train`'s (a copy is loaded with the checkpoint's
        weights; yours is not touched). train, test: datasets (``ds[indices] -> (x, y)``, e.g. mg.data.MNIST,
        ArrayDataset); transform: applied to their batches. progress: (epoch, epochs) while training runs (the
        page then reloads itself), None to tell from the run directory. NotARunError without a checkpoint.
    """
    require("matplotlib", "mg.viz.report")
    run = read_run(run_dir)
    return _write(run, model, None, train, test, transform, data_root, progress, test_images, loss)


class ReportCallback:
    """A callback for ``mg.train.fit(callbacks=[...])`` that rewrites ``run_dir/report.html`` after every epoch,
    from the live model and history (a copy: training is not disturbed, nor its random stream).

    A plain callable ``(state, logs)``, which fit calls at the end of each epoch. ``last=False`` skips the
    last epoch (for a caller that writes the final report itself, as ``minigrad train --report`` does);
    ``metadata``: what to show before the run's first checkpoint holds it (run_config, command, environment).
    """

    def __init__(self, run_dir, *, train=None, test=None, transform=None, data_root=None,
                 test_images: int = TEST_IMAGES, loss=None, last: bool = True, metadata=None, say=None):
        require("matplotlib", "mg.viz.ReportCallback")
        self.run_dir, self.last, self.say, self.metadata = os.fspath(run_dir), last, say, dict(metadata or {})
        self.options = dict(train=train, test=test, transform=transform, data_root=data_root,
                            test_images=test_images, loss=loss)

    def __call__(self, state, logs):
        if state.epoch >= state.epochs and not self.last:
            return
        os.makedirs(self.run_dir, exist_ok=True)
        try:
            run = read_run(self.run_dir)          # the run's configuration, environment, metrics
        except NotARunError:                      # no checkpoint yet (or none kept): what fit knows
            run = RunFiles(self.run_dir, "")
        run.records, run.epoch, run.epochs = list(state.records), state.epoch, state.epochs
        run.metadata = {**self.metadata, **run.metadata}
        run.checkpoint_time = None                # the weights are the live model's, not the file's
        live = getattr(state.model, "module", state.model)   # DataParallel: the model it wraps
        o = self.options
        path = _write(run, None, live, o["train"], o["test"], o["transform"], o["data_root"],
                      (state.epoch, state.epochs), o["test_images"], o["loss"])
        if self.say is not None:
            self.say(f"Report: {path}")


# -- assembling the page ------------------------------------------------------------------------------
def _write(run, model, live, train, test, transform, data_root, progress, test_images, loss) -> str:
    started = time.perf_counter()
    notes = {}
    with measure.keep_random_state():
        model, transform = _model_of(run, model, live, transform, notes)
        train, test = _data_of(run, train, test, data_root, notes)
    epoch, epochs = progress if progress is not None else (run.epoch, run.epochs)
    if progress is None and epochs is not None and epoch < epochs and not run_is_live(run.path):
        state = ("stopped", f"stopped after epoch {epoch} of {epochs}")
    elif epochs is not None and epoch < epochs:
        state = ("progress", f"in progress, epoch {epoch} of {epochs}")
    else:
        state = ("final", f"final: {epoch} epoch{'s' if epoch != 1 else ''}")
    sections = [("curves", "Training curves", _curves(run.records))]
    loss = loss or CrossEntropyLoss()
    shape = _input_shape(train, test, transform)
    sections.append(("model", "The model", _model_section(model, shape, notes)))
    sections.append(("layers", "Per layer", _layers_section(model, shape, train, transform, loss, notes, run)))
    sections.append(("inside", "Filters and feature maps", _inside_section(model, test, transform, notes)))
    sections.append(("confusion", "Confusion matrix and mistakes",
                     _confusion_section(model, test, transform, test_images, notes)))
    name = run.config.get("model") or (type(model).__name__ if model is not None else "run")
    seconds = time.perf_counter() - started
    sections.append(("run", "The run", _run_section(run, state[1], seconds)))
    header = (f"<h1>minigrad run report: {escape(str(name))}</h1>"
              f'<p><span class="status {state[0]}">{escape(state[1])}</span> · {escape(run.path)}</p>'
              + (f"<p>This page reloads itself every {REFRESH_SECONDS} s while the run trains.</p>"
                 if state[0] == "progress" else "")
              + f"<p>Made {escape(when(time.time()))} in {seconds:.1f} s.</p>")
    html = page(f"{name} · {state[1]}", header, sections, REFRESH_SECONDS if state[0] == "progress" else None)
    path = os.path.join(run.path, REPORT_NAME)
    write_bytes_atomic(path, html.encode("utf-8"))
    return path


def _model_of(run, model, live, transform, notes):
    """(a copy of the network at the run's weights, transform); None with a note when there is none."""
    if live is not None:
        copied = copy.deepcopy(live)
        copied.clear_cache()
        return copied, transform
    name = run.config.get("model")
    if model is None and name in MNIST_MODELS:
        model, built_transform = mnist_model(name)
        transform = transform or built_transform
    elif model is None:
        notes["model"] = ("the run records no model `minigrad train` builds (no run configuration in its "
                          "checkpoint): pass the network, mg.viz.report(run_dir, model=net, test=dataset)")
        return None, transform
    else:
        model = copy.deepcopy(model)
        model.clear_cache()
    load_into(run.checkpoint, model)
    return model, transform


def _data_of(run, train, test, data_root, notes):
    if train is not None or test is not None:
        return train, test
    if run.config.get("model") not in MNIST_MODELS:
        notes["data"] = "no data given: pass train= and test= datasets to mg.viz.report"
        return None, None
    try:
        limit = run.config.get("limit_test")
        return (MNIST("train", root=data_root, limit=(TIMING_BATCHES + 1) * TIMING_BATCH),
                MNIST("test", root=data_root, limit=min(limit or TEST_IMAGES, TEST_IMAGES)))
    except Exception as exc:  # noqa: BLE001 - missing or damaged MNIST: said in the sections that need it
        notes["data"] = f"MNIST could not be read ({exc})"
        return None, None


def _loader(dataset, batch, transform):
    return DataLoader(dataset, batch_size=batch, shuffle=False, seed=0, transform=transform)


def _input_shape(train, test, transform):
    for dataset in (test, train):
        if dataset is not None and len(dataset):
            x = next(iter(_loader(dataset, 1, transform)))[0]
            return (1,) + tuple(x.shape[1:])
    return None


def _missing(notes, *keys) -> str:
    why = "; ".join(notes[k] for k in keys if k in notes)
    return f'<p class="note">Not shown: {escape(why)}.</p>' if why else ""


def _curves(records) -> str:
    epochs = [r for r in records if r.get("type") == "epoch"]
    steps = [r for r in records if r.get("type") == "step"]
    if not epochs and not steps:
        return '<p class="note">No epoch has finished yet: nothing to draw.</p>'
    col = lambda rows, key: [r.get(key) for r in rows]   # noqa: E731
    e = col(epochs, "epoch")
    c = charts.COLOURS
    out = [charts.line_chart("Loss per epoch", [charts.Series("train", e, col(epochs, "train_loss"), c[0]),
                                                charts.Series("test", e, col(epochs, "val_loss"), c[1])],
                             "epoch", "cross-entropy", log_y=True, chart_id="chart-loss"),
           charts.line_chart("Accuracy per epoch", [charts.Series("train", e, col(epochs, "train_acc"), c[0]),
                                                    charts.Series("test", e, col(epochs, "val_acc"), c[1])],
                             "epoch", "accuracy", chart_id="chart-accuracy")]
    lr_rows = sorted(steps + epochs, key=lambda r: r.get("step") or 0)
    out.append(charts.line_chart("Learning rate per step", [charts.Series("lr", col(lr_rows, "step"),
                                                                           col(lr_rows, "lr"), c[3])],
                                 "step", "learning rate", chart_id="chart-lr"))
    if steps:
        out.append(charts.line_chart("Training loss per logging interval",
                                     [charts.Series("train", col(steps, "step"), col(steps, "loss"), c[0])],
                                     "step", "cross-entropy", log_y=True, chart_id="chart-steps"))
    out.append(charts.line_chart("Images per second", [charts.Series("train", e, col(epochs, "images_per_s"), c[2])],
                                 "epoch", "images/s", chart_id="chart-speed"))
    note = (f"{len(epochs)} epoch record(s) and {len(steps)} step record(s) from the history. The learning rate "
            "is read at every logged step and at each epoch's end. Hover over a point to read its value.")
    return f'<p class="note">{note}</p><div class="charts">{"".join(out)}</div>'


def _model_section(model, shape, notes) -> str:
    if model is None or shape is None:
        return _missing(notes, "model", "data") or '<p class="note">Not shown: the input shape is unknown.</p>'
    picture = graph(model, shape)
    return (f'<p class="note">{escape(picture.title)}. One box per layer use: node name · class, output shape '
            f'for one input, parameters. Hover over a box for its text.</p><div class="scroll graph">'
            f"{picture.svg}</div>")


def _ms(seconds) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.3f}"


def _layers_section(model, shape, train, transform, loss, notes, run) -> str:
    if model is None or shape is None:
        return _missing(notes, "model", "data") or '<p class="note">Not shown: the input shape is unknown.</p>'
    boxes, _ = network_of(model, shape, "mg.viz.report")
    rows = {}
    if train is not None:
        batches = list(itertools.islice(_loader(train, TIMING_BATCH, transform), TIMING_BATCHES + 1))
        params = model.parameters()
        if params:
            from ..runtime.backend import backend_of, to_backend
            batches = [(to_backend(x, backend_of(params[0].data)), to_backend(y, backend_of(params[0].data)))
                       for x, y in batches]
        rows = measure.layer_profile(model, batches, loss)
    table_rows, total_f, total_b = [], 0.0, 0.0
    for box in boxes:
        if box.kind != "layer":
            continue
        row = rows.get(box.name) or rows.get("model") if len(boxes) == 3 else rows.get(box.name)
        f = row.forward_median if row else None
        b = row.backward_median if row else None
        total_f += f or 0.0
        total_b += b or 0.0
        params = f"shared with {box.shared_with}" if box.params is None else f"{box.params:,}"
        norm = "—" if not row or row.grad_norm is None or box.params is None else f"{row.grad_norm:.4g}"
        table_rows.append([f"{box.name} · {box.type_name}", box.shape, params, _ms(f), _ms(b), norm])
    total_params = sum(b.params or 0 for b in boxes)
    table_rows.append([("html", "<b>total</b>"), "", f"{total_params:,}", _ms(total_f if rows else None),
                       _ms(total_b if rows else None), ""])
    backend = "the GPU" if model.parameters() and _on_gpu(model) else f"{platform.processor() or 'the CPU'}"
    if rows:
        how = (f"Forward and backward: milliseconds per batch of {TIMING_BATCH} training images, the median of "
               f"{TIMING_BATCHES} batches after one warm-up batch, measured on {backend} when this report was "
               "made (not during training). The backward is the one training runs (backward_parameters): "
               "&ldquo;—&rdquo; where a layer's backward is skipped because nothing before it needs a gradient. "
               f"Gradient norm: the 2-norm of the layer's parameter gradients of the cross-entropy loss for one "
               f"batch of {TIMING_BATCH} training images at the weights of "
               + ("the live model at the end of the epoch" if run.checkpoint_time is None else "the checkpoint")
               + " (the run does not record the gradients of its own last step).")
    else:
        how = escape("Times and gradient norms not measured: " + (notes.get("data") or "no training data given"))
    return (f'<p class="note">{how}</p>' + table(["layer", "output shape", "parameters", "forward ms",
                                                  "backward ms", "gradient norm"], table_rows, numeric=(2, 3, 4, 5)))


def _on_gpu(model) -> bool:
    from ..runtime.backend import is_gpu_array
    return is_gpu_array(model.parameters()[0].data)


def _first_images(test, transform, n):
    x, y = next(iter(_loader(test, n, transform)))[:2]
    return x, y


def _inside_section(model, test, transform, notes) -> str:
    if model is None:
        return _missing(notes, "model")
    try:
        convs = convolutions(model, "mg.viz.report")
    except TypeError:
        kinds = sorted({type(layer).__name__ for layer in model.modules() if layer is not model})
        return (f'<p class="note">This model has no convolution (it has {escape(", ".join(kinds))}): there are '
                "no filters or feature maps to show.</p>")
    out = [f'<h3>Filters of the first convolution ({escape(convs[0][0])})</h3>',
           f'<img class="picture" alt="filters" src="{png_data_uri(png=filters(model).png)}">']
    if test is None:
        return "".join(out) + _missing(notes, "data")
    x, y = _first_images(test, transform, FEATURE_SAMPLES)
    labels = numpy.asarray(y).reshape(-1)
    out.append(f"<h3>Feature maps of every convolution ({len(convs)}) for {len(labels)} test images</h3>"
               f'<p class="note">At most {FEATURE_CHANNELS} channels per convolution, each map scaled by its own '
               "range.</p>")
    for i in range(len(labels)):
        picture = feature_maps(model, x, sample=i, max_channels=FEATURE_CHANNELS)
        out.append(f"<p>Test image {i} (label {int(labels[i])}):</p>"
                   f'<img class="picture" alt="feature maps of test image {i}" '
                   f'src="{png_data_uri(png=picture.png)}">')
    return "".join(out)


def _confusion_section(model, test, transform, limit, notes) -> str:
    if model is None or test is None:
        return _missing(notes, "model", "data")
    pred = measure.predict(model, _loader(test, 250, transform), limit)
    if pred is None:
        return '<p class="note">Not shown: the model does not return logits (N, K).</p>'
    matrix, top = pred.matrix, max(1, int(pred.matrix.max()))
    k = matrix.shape[0]
    head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{j}</th>" for j in range(k)) + "</tr>"
    body = []
    for i in range(k):
        cells = []
        for j in range(k):
            n, share = int(matrix[i, j]), matrix[i, j] / top
            colour = f"rgba(31,119,180,{0.08 + 0.92 * share:.2f})" if n else "white"
            text = "white" if share > 0.55 else "#111"
            cells.append(f'<td style="background:{colour};color:{text}" title="true {i}, predicted {j}: '
                         f'{n} image{"s" if n != 1 else ""}">{n}</td>')
        body.append(f"<tr><th>{i}</th>{''.join(cells)}</tr>")
    out = [f'<p class="note">The first {pred.count:,} test images: accuracy {pred.accuracy:.2%} '
           f"({int(numpy.trace(matrix)):,} right). Rows: true class; columns: predicted class.</p>"
           f'<div class="scroll"><table class="confusion"><thead>{head}</thead><tbody>{"".join(body)}'
           "</tbody></table></div>"]
    wrong = pred.most_confident_wrong(WRONG_SHOWN)
    if not wrong:
        return "".join(out) + "<p>No mistakes on these images.</p>"
    out.append(f"<h3>The {len(wrong)} most confidently wrong answers</h3>"
               '<p class="note">Confidence: the softmax probability of the predicted class.</p><div class="wrong">')
    for index, true, guess, confidence in wrong:
        out.append(f'<figure><img alt="test image {index}" src="{png_data_uri(pred.images[index])}">'
                   f"<figcaption>#{index}: true {true}, predicted <b>{guess}</b> ({confidence:.1%})"
                   "</figcaption></figure>")
    return "".join(out) + "</div>"


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _run_section(run, status, seconds) -> str:
    rows = [("status", status), ("run directory", run.path)]
    if run.metadata.get("command"):
        rows.append(("command line", run.metadata["command"]))
    ts = run.metadata.get("train_state") if isinstance(run.metadata.get("train_state"), dict) else {}
    if ts:
        rows.append(("checkpoint", f"{run.checkpoint} (epoch {ts.get('epoch')}, step {ts.get('step')})"))
    rows.append(("checkpoint time", when(run.checkpoint_time) if run.checkpoint_time is not None
                 else "the weights shown are the live model's at the end of the epoch"))
    rows += [(f"config: {key}", _fmt(value)) for key, value in run.config.items()]
    metrics = run.metrics or {}
    for key in ("backend", "test_accuracy", "test_loss", "test_images", "train_seconds", "images_per_s",
                "wall_seconds", "compile_seconds", "world_size"):
        if metrics.get(key) is not None:
            rows.append((f"metrics: {key}", _fmt(metrics[key])))
    environment = run.metadata.get("environment")
    source = "recorded by the run" if isinstance(environment, dict) else "this machine, when the report was made"
    for key, value in (environment if isinstance(environment, dict) else _environment()).items():
        rows.append((f"environment: {key}", _fmt(value)))
    note = (f'<p class="note">Environment: {source}. The report took {seconds:.1f} s to make '
            "(the sections above; this table excluded).</p>")
    return note + table([], rows, cls="kv")


def _environment() -> dict:
    import minigrad
    from ..runtime.threads import get_num_threads
    from ..runtime.backend import get_backend
    return {"minigrad": minigrad.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "numpy": numpy.__version__, "backend": get_backend(), "cpu_count": os.cpu_count(),
            "minigrad_threads": get_num_threads()}
