"""Figures written into a run's `plots/` (matplotlib, Agg backend, PNG).

* `plot_history(history_csv, out_dir)`: one figure per metric found in the
  CSVLogger file (`loss`, `accuracy`, ...), train and validation curves.
* `plot_attention(tokens, weights, path)`: a step x token heatmap of how much
  each prefix token weighs in the context vector while each word is chosen.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def read_history(history_csv: str | Path) -> dict[str, list[float]]:
    """Columns of a Keras CSVLogger file as float lists (empty cells -> NaN)."""
    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value) if value not in ("", None) else float("nan"))
            except ValueError:
                columns.setdefault(key, []).append(float("nan"))
    return columns


def plot_history(history_csv: str | Path, out_dir: str | Path, *, title: str = "") -> list[Path]:
    """Writes `<metric>.png` for every metric with a train column; returns the paths."""
    history_csv = Path(history_csv)
    if not history_csv.is_file():
        return []
    columns = read_history(history_csv)
    epochs = np.asarray(columns.get("epoch", []), dtype=float) + 1
    metrics = [k for k in columns if k != "epoch" and not k.startswith("val_") and k != "learning_rate"]
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for metric in metrics:
        fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
        x = epochs if len(epochs) == len(columns[metric]) else np.arange(1, len(columns[metric]) + 1)
        ax.plot(x, columns[metric], marker="o", markersize=3, label=f"train {metric}")
        if f"val_{metric}" in columns:
            ax.plot(x, columns[f"val_{metric}"], marker="o", markersize=3, label=f"val {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{title} {metric}".strip())
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{metric}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def plot_attention(
    prefix_tokens: Sequence[str],
    predicted: Sequence[str],
    weights: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Heatmap: row t = the step that predicted `predicted[t]`, column j =
    prefix token j; `weights[t, j]` its attention weight (0 beyond the prefix)."""
    plt = _pyplot()
    weights = np.asarray(weights, dtype=float)
    steps, width = weights.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * width, 1.0 + 0.35 * steps), dpi=110)
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(1e-6, float(weights.max())), aspect="auto")
    ax.set_xticks(range(width))
    ax.set_xticklabels(list(prefix_tokens)[:width], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(steps))
    ax.set_yticklabels([f"-> {w}" for w in predicted][:steps], fontsize=8)
    ax.set_xlabel("prefix token")
    ax.set_ylabel("predicted word")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
