"""`medcap explain`: saliency maps of a trained findings classifier on image files.

For each image the model's probabilities are computed; the findings
explained are `label` (one name, for every image) or each image's `top`
most probable findings. All (image, finding) pairs are explained in
batches of `batch_size` through one `Explainer`, then drawn: one overlay
PNG per pair, `<image stem>__<finding>__<method>.png`, and one
`explanations.json` listing, per pair, the image, finding, probability,
threshold, method, map peak (pixel row/column and fractions of the side)
and overlay file; the raw maps go to `maps.npz` (`maps`, float32, in the
JSON's order) so localisation can be measured without redrawing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medcap.explanations.methods import Explainer, peaks
from medcap.explanations.overlays import draw_overlay, safe_name

RECORD_FILE = "explanations.json"
MAPS_FILE = "maps.npz"


def choose_pairs(probabilities: np.ndarray, label_names: Sequence[str], *, label: str = "", top: int = 0) -> list[tuple[int, int]]:
    """(image index, label index) pairs to explain."""
    if label and top:
        raise ValueError("give a label or --top, not both")
    if label:
        if label not in label_names:
            raise ValueError(f"unknown finding {label!r}; this model's findings: {', '.join(label_names)}")
        return [(i, list(label_names).index(label)) for i in range(len(probabilities))]
    top = top or 1
    if top > len(label_names):
        raise ValueError(f"--top {top}: this model has {len(label_names)} findings")
    return [(i, int(j)) for i, row in enumerate(probabilities) for j in np.argsort(-row, kind="stable")[:top]]


def explain_files(
    task,
    model,
    image_paths: Sequence[str],
    *,
    method: str = "gradcam",
    label: str = "",
    top: int = 0,
    out_dir: str | Path,
    batch_size: int = 16,
    draw: bool = True,
    thresholds: Sequence[float] | None = None,
) -> dict[str, Any]:
    import tensorflow as tf

    from medcap.data.pipeline import read_image

    feature_layer = getattr(model, "feature_layer", "")
    if not feature_layer or not hasattr(task, "label_names"):
        raise ValueError(f"medcap explain needs an image classifier with a feature layer; model {task.config.model.name} has none")
    size = tuple(task.config.data.image_size)
    images = np.stack([read_image(tf.constant(str(path)), size).numpy() for path in image_paths])
    probabilities = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64)
    pairs = choose_pairs(probabilities, task.label_names, label=label, top=top)
    explainer = Explainer(model, method, feature_layer=feature_layer)
    maps = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        maps.append(explainer(images[[i for i, _ in chunk]], [j for _, j in chunk]))
    all_maps = np.concatenate(maps) if maps else np.zeros((0, *size))
    thresholds = list(thresholds) if thresholds is not None else [0.5] * len(task.label_names)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for (i, j), saliency, peak in zip(pairs, all_maps, peaks(all_maps)):
        name = task.label_names[j]
        record = {
            "image": str(image_paths[i]),
            "finding": name,
            "probability": float(probabilities[i, j]),
            "threshold": float(thresholds[j]),
            "method": method,
            "peak": peak,
        }
        if draw:
            file_name = f"{safe_name(Path(image_paths[i]).stem)}__{safe_name(name)}__{safe_name(method)}.png"
            title = f"{name}: p = {probabilities[i, j]:.2f} ({method})"
            draw_overlay(images[i], saliency, out / file_name, title=title, peak=peak)
            record["overlay"] = file_name
        records.append(record)
    np.savez_compressed(out / MAPS_FILE, maps=all_maps.astype(np.float32))
    summary = {"method": method, "image_size": list(size), "explanations": records}
    (out / RECORD_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    return summary
