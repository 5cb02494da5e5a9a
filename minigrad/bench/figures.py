"""The figures README.md and docs/benchmarks.md quote, rendered from the recorded results in
``benchmarks/results/`` (one source: a figure in the text is what these functions print for a JSON file
there; ``tests/test_figures.py`` checks that every quoted figure is).

    training_rows(record)        README's table of ``minigrad train`` runs (benchmarks/record_training.py)
    train_e2e_sentence(report)   the ``minigrad bench --train`` comparison with PyTorch (minigrad bench --json)
    machine_line(record)         the machine, versions and date a record was measured with
"""
from __future__ import annotations

__all__ = ["training_rows", "train_e2e_sentence", "machine_line", "seconds", "rate"]


def seconds(value: float) -> str:
    """Seconds with one decimal and the unit, as the documents write them."""
    return f"{value:.1f} s"


def rate(value: float) -> str:
    """Images per second rounded, with thousands separators and the unit."""
    return f"{value:,.0f} images/s"


def _percent(accuracy: float) -> str:
    return f"{100 * accuracy:.2f}%"


def training_rows(record: dict) -> list[str]:
    """One Markdown table row per recorded ``minigrad train`` run:
    | `command` | **accuracy%** (correct/total) | seconds | images/s |"""
    rows = []
    for run in record["runs"]:
        metrics = run["metrics"]
        correct = round(metrics["test_accuracy"] * metrics["test_images"])
        rows.append(f"| `{run['command']}` | **{_percent(metrics['test_accuracy'])}** ({correct}/"
                    f"{metrics['test_images']}) | {seconds(metrics['train_seconds'])} | "
                    f"{rate(metrics['images_per_s'])} |")
    return rows


def train_e2e_sentence(report: dict) -> str:
    """The bench --train comparison, as docs/benchmarks.md states it."""
    e2e = report["train_e2e"]
    ours, theirs = e2e["minigrad"], e2e["torch"]
    return (f"minigrad {seconds(ours['train_seconds'])} of training, {rate(ours['images_per_s'])}, "
            f"{_percent(ours['test_accuracy'])} test accuracy; PyTorch {seconds(theirs['train_seconds'])}, "
            f"{rate(theirs['images_per_s'])}, {_percent(theirs['test_accuracy'])}: **{e2e['ratio']:.2f}×**.")


def machine_line(record: dict) -> str:
    """The date, CPU model (cores, ISA) and NumPy with its BLAS of a record."""
    machine, versions = record["machine"], record["versions"]
    isa = f", {machine['isa']}" if machine.get("isa") else ""
    return (f"{record['date'][:10]}, {machine['cpu']} ({machine['cores']} cores{isa}), NumPy {versions['numpy']}"
            f" ({versions.get('numpy_blas', 'BLAS ?')})")


def zoo_table(record) -> str:
    """The Markdown table of benchmarks/layer_zoo_ratios.py's JSON: one row per layer, minigrad vs PyTorch."""
    lines = [f"{record['cpu']}, {record['isa']}, {record['threads']} threads, NumPy {record['numpy']}, PyTorch "
             f"{record['torch']}; forward + backward, float32, median of {record['repeat']} alternating turns.", "",
             "| layer | input | minigrad ms | PyTorch ms | ratio |", "|---|---|---:|---:|---:|"]
    for row in record["rows"]:
        lines.append(f"| {row['case']} | {'x'.join(map(str, row['shape']))} | {row['minigrad_ms']:.2f} | "
                     f"{row['torch_ms']:.2f} | {row['ratio']:.2f} |")
    return "\n".join(lines)
