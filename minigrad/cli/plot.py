"""``minigrad train --plot``: loss and accuracy curves of a run as a PNG."""
from __future__ import annotations

import io

from .common import require_matplotlib

__all__ = ["plot_history"]


def plot_history(history: dict, path: str, title: str = "") -> str:
    """Save loss and accuracy curves (per logging interval and per epoch) as a PNG; returns the path."""
    from ..io.atomic_write import write_bytes_atomic
    require_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = history.get("steps", {})
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    if steps.get("step"):
        ax_loss.plot(steps["step"], steps["loss"], lw=0.8, alpha=0.6, label="train (interval)")
    if history.get("step"):
        ax_loss.plot(history["step"], history["train_loss"], "o-", label="train (epoch)")
        if history.get("val_loss"):
            ax_loss.plot(history["step"], history["val_loss"], "s-", label="test")
        if history.get("train_acc"):
            ax_acc.plot(history["epoch"], history["train_acc"], "o-", label="train")
        if history.get("val_acc"):
            ax_acc.plot(history["epoch"], history["val_acc"], "s-", label="test")
    ax_loss.set(xlabel="step", ylabel="cross-entropy loss", yscale="log", title=f"{title} loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"{title} accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=120)
    plt.close(fig)
    write_bytes_atomic(path, image.getvalue())   # never through a link at path
    return path
