"""Saliency maps drawn over their images (PNG) and the record of each map (JSON).

An overlay shows the image in grey with the map over it in the `jet` colour
map (alpha 0.45), the map's peak marked with a cross, and a title naming the
finding, its probability and the method, so a reader sees at once what was
explained and how sure the model was.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name-safe form of an image stem or label."""
    return _UNSAFE.sub("_", text).strip("_") or "image"


def draw_overlay(
    image: np.ndarray,
    saliency: np.ndarray,
    path: Path,
    *,
    title: str,
    peak: dict | None = None,
    boxes: list[dict] | None = None,
    frame: tuple[int, int] | None = None,
) -> Path:
    """Writes `image` (h, w, 3 in [0, 255]) with `saliency` (h, w in [0, 1]) over it to `path`;
    `boxes` (pixels of a `frame`-sized original) are drawn as white rectangles."""
    from medcap.plots import _pyplot

    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    gray = np.asarray(image, dtype=np.float64).mean(axis=-1) / 255.0
    height, width = gray.shape
    figure, axis = plt.subplots(figsize=(4, 4.3))
    axis.imshow(gray, cmap="gray", vmin=0, vmax=1)
    axis.imshow(saliency, cmap="jet", alpha=0.45, vmin=0, vmax=1, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    for box in boxes or []:
        scale_y, scale_x = (height / frame[0], width / frame[1]) if frame else (1.0, 1.0)
        from matplotlib.patches import Rectangle

        axis.add_patch(
            Rectangle(
                (box["x"] * scale_x - 0.5, box["y"] * scale_y - 0.5),
                box["w"] * scale_x,
                box["h"] * scale_y,
                fill=False,
                edgecolor="white",
                linewidth=1.5,
                linestyle="--",
            )
        )
    if peak is not None:
        axis.plot([peak["col"]], [peak["row"]], marker="x", color="white", markersize=10, mew=2)
    axis.set_title(title, fontsize=9)
    axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
