"""Pictures of a network (``mg.viz``), for Python scripts and Jupyter: what it is, what it learned, what it sees.

    mg.viz.graph(model, (1, 1, 28, 28))        # SVG: one box per layer use, with output shape and parameters
    mg.viz.filters(model)                      # PNG: the first Conv2d's filters, one tile per output channel
    mg.viz.feature_maps(model, x[:1])          # PNG: every Conv2d's output for one sample
    mg.viz.confusion_matrix(model, loader)     # PNG: counts of (true, predicted) classes; .matrix, .accuracy
    mg.viz.report(run_dir)                     # run_dir/report.html: a training run in one offline page

Every result shows itself inline in Jupyter (``_repr_svg_`` / ``_repr_png_``), holds its data (``.svg`` text or
``.png`` bytes) and saves with ``.save(path)``, the format taken from the suffix (.svg; .png or .svg for the
matplotlib pictures). Arrays on the GPU (CuPy) are copied to the host to be drawn.

Modules: ``network`` (the boxes and arrows of a model; ``graph``), ``svg`` (their layered layout as SVG text),
``inside`` (``filters``, ``feature_maps``), ``confusion`` (``confusion_matrix``), ``picture`` (the returned
objects; matplotlib is imported there, only when a picture is drawn, and needs the ``[plot]`` extra);
``report`` (the run report, ``ReportCallback``) with ``report_run`` (reading a run directory),
``report_measure`` (per-layer times, gradient norms, predictions), ``report_page`` (the HTML) and ``charts``
(inline SVG line charts).
"""
from . import charts, confusion, inside, network, picture, report_measure, report_page, report_run, svg
from . import report as report_module
from .confusion import ConfusionPicture, confusion_matrix
from .inside import FeatureMapsPicture, FiltersPicture, feature_maps, filters
from .network import GraphPicture, graph
from .picture import PlotPicture, SvgPicture
from .report import ReportCallback, report
from .report_run import NotARunError

__all__ = ["graph", "filters", "feature_maps", "confusion_matrix", "GraphPicture", "FiltersPicture",
           "FeatureMapsPicture", "ConfusionPicture", "SvgPicture", "PlotPicture",
           "report", "ReportCallback", "NotARunError", "confusion", "inside", "network", "picture", "svg", "charts",
           "report_module", "report_run", "report_measure", "report_page"]
