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
    """29.33 -> '29.3 s'."""
    return f"{value:.1f} s"


def rate(value: float) -> str:
    """8181.38 -> '8,181 images/s'."""
    return f"{value:,.0f} images/s"


def _percent(accuracy: float) -> str:
    return f"{100 * accuracy:.2f}%"


def training_rows(record: dict) -> list[str]:
    """One Markdown table row per recorded ``minigrad train`` run:
    | `command` | **99.17%** (9917/10000) | 28.4 s | 8,443 images/s |"""
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
    """'2026-12-02, Intel(R) Xeon(R) Processor (2 cores, avx512), NumPy 2.4.6 (openblas ...)'."""
    machine, versions = record["machine"], record["versions"]
    isa = f", {machine['isa']}" if machine.get("isa") else ""
    return (f"{record['date'][:10]}, {machine['cpu']} ({machine['cores']} cores{isa}), NumPy {versions['numpy']}"
            f" ({versions.get('numpy_blas', 'BLAS ?')})")
