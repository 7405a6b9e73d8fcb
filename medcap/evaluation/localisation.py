"""Does a saliency map point at the finding? The pointing game and IoU against boxes.

A map explains one finding on one image; the boxes are that finding's
boxes on that image (NIH's BBox_List_2017.csv on a real ChestX-ray14 run,
the drawn lesions of a synthetic tree), in the pixels of the image file,
whose size (`frame`: height, width) scales them onto the map.

* Pointing game (Zhang et al. 2016, as CheXlocalize uses it): a hit when
  the map's maximum (its first maximal pixel, row-major) lies inside a box
  of the finding, optionally grown by `tolerance` (a fraction of the side;
  0 by default).
* IoU: the map thresholded at `threshold` (0.5 of its normalised range)
  against the union of the finding's boxes, both as pixel masks on the
  map's grid.

Baselines, the same keys: `centre` points at the image centre for the
pointing game; `random_point` points at a pixel drawn uniformly, scored by
its expected hit rate (the share of map pixels inside the finding's boxes,
exact rather than sampled): the fair baseline for findings whose boxes
always hold the centre (an enlarged heart, bilateral perihilar oedema),
where the centre point hits every time and no map can beat it; `uniform`
is a map equal everywhere, which covers the whole image once thresholded
(IoU = box area / image area; a uniform map has no single maximum, so it
plays no pointing game).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def box_mask(boxes: Sequence[dict[str, float]], frame: tuple[int, int], shape: tuple[int, int], grow: float = 0.0) -> np.ndarray:
    """(h, w) bool: map pixels whose centres lie inside any box (image-pixel
    boxes on a `frame`-sized image, scaled to `shape`), grown by `grow` of the side."""
    height, width = shape
    rows = (np.arange(height) + 0.5) / height * frame[0]
    cols = (np.arange(width) + 0.5) / width * frame[1]
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        pad_y, pad_x = grow * frame[0], grow * frame[1]
        inside_rows = (rows >= box["y"] - pad_y) & (rows <= box["y"] + box["h"] + pad_y)
        inside_cols = (cols >= box["x"] - pad_x) & (cols <= box["x"] + box["w"] + pad_x)
        mask |= inside_rows[:, None] & inside_cols[None, :]
    return mask


def pointing_hit(saliency: np.ndarray, boxes: Sequence[dict[str, float]], frame: tuple[int, int], tolerance: float = 0.0) -> bool:
    row, col = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    return bool(box_mask(boxes, frame, saliency.shape, tolerance)[row, col])


def map_iou(saliency: np.ndarray, boxes: Sequence[dict[str, float]], frame: tuple[int, int], threshold: float = 0.5) -> float:
    predicted = saliency >= threshold
    truth = box_mask(boxes, frame, saliency.shape)
    union = (predicted | truth).sum()
    return float((predicted & truth).sum() / union) if union else 0.0


def localisation_scores(
    maps: Sequence[np.ndarray],
    boxes: Sequence[Sequence[dict[str, float]]],
    frames: Sequence[tuple[int, int]],
    findings: Sequence[str],
    *,
    method: str,
    tolerance: float = 0.0,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Per finding and overall: `localisation/<method>/pointing_game/<finding>`,
    `.../iou/<finding>`, `.../n/<finding>`, and the `centre`, `random_point`
    and `uniform` baselines under `localisation/baselines/...`."""
    per: dict[str, dict[str, list[float]]] = {}
    for saliency, finding_boxes, frame, finding in zip(maps, boxes, frames, findings):
        if not finding_boxes:
            continue
        saliency = np.asarray(saliency)
        entry = per.setdefault(finding, {"hit": [], "iou": [], "centre": [], "random_point": [], "uniform": []})
        entry["hit"].append(float(pointing_hit(saliency, finding_boxes, frame, tolerance)))
        entry["iou"].append(map_iou(saliency, finding_boxes, frame, threshold))
        centre = np.zeros(saliency.shape)
        centre[saliency.shape[0] // 2, saliency.shape[1] // 2] = 1.0
        entry["centre"].append(float(pointing_hit(centre, finding_boxes, frame, tolerance)))
        entry["random_point"].append(float(box_mask(finding_boxes, frame, saliency.shape, tolerance).mean()))
        entry["uniform"].append(map_iou(np.ones(saliency.shape), finding_boxes, frame, threshold))
    out: dict[str, Any] = {}
    totals = {"hit": [], "iou": [], "centre": [], "random_point": [], "uniform": []}
    for finding, entry in sorted(per.items()):
        out[f"localisation/{method}/pointing_game/{finding}"] = float(np.mean(entry["hit"]))
        out[f"localisation/{method}/iou/{finding}"] = float(np.mean(entry["iou"]))
        out[f"localisation/{method}/n/{finding}"] = len(entry["hit"])
        out[f"localisation/baselines/centre/pointing_game/{finding}"] = float(np.mean(entry["centre"]))
        out[f"localisation/baselines/random_point/pointing_game/{finding}"] = float(np.mean(entry["random_point"]))
        out[f"localisation/baselines/uniform/iou/{finding}"] = float(np.mean(entry["uniform"]))
        for key in totals:
            totals[key].extend(entry[key])
    if totals["hit"]:
        out[f"localisation/{method}/pointing_game"] = float(np.mean(totals["hit"]))
        out[f"localisation/{method}/iou"] = float(np.mean(totals["iou"]))
        out["localisation/baselines/centre/pointing_game"] = float(np.mean(totals["centre"]))
        out["localisation/baselines/random_point/pointing_game"] = float(np.mean(totals["random_point"]))
        out["localisation/baselines/uniform/iou"] = float(np.mean(totals["uniform"]))
    out["localisation/tolerance"] = tolerance
    out["localisation/iou_threshold"] = threshold
    return out
