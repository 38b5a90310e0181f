"""The loss plot of a training run: training and validation loss against epoch (matplotlib, no pyplot)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

FORMATS = (".png", ".svg", ".pdf")


def plot_history(history, path, title: str = "") -> None:
    """Write the training (and validation) loss per epoch to `path` (.png, .svg or .pdf), atomically."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'rnncompile[plot]'") from None
    from ..files import atomic_write

    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"--plot {path}: write a {', '.join(FORMATS)} file")
    epochs = range(1, len(history.epochs) + 1)
    fig = Figure(figsize=(6.4, 4.0), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, history.epochs, marker="o", markersize=3, label="training")
    if history.validation:
        ax.plot(range(1, len(history.validation) + 1), history.validation, marker="s", markersize=3,
                label="validation")
        if history.best_epoch is not None:
            best = history.validation[history.best_epoch - 1]
            ax.axvline(history.best_epoch, color="0.6", linestyle=":", linewidth=1)
            last = history.best_epoch == len(history.validation)
            ax.annotate(f"best {best:.3f}", (history.best_epoch, best), textcoords="offset points",
                        xytext=(-4 if last else 4, 8), ha="right" if last else "left", fontsize=8, color="0.3")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"mean loss per {getattr(history, 'unit', 'step')}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(f"{title}: training loss" + (" and validation loss" if history.validation else ""))
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=suffix[1:])
