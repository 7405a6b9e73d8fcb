"""Where the findings classifier looks: localisation, the sanity check and a gallery, per run.

`measure_explanations(task, model, examples, workdir)` explains, with
`eval.explain_method` (Grad-CAM by default), every (test image, finding)
pair that has boxes of that finding: NIH's boxes on a real ChestX-ray14
run (`example["boxes"]`), or every drawn lesion's box on a synthetic tree
(`synthetic_truth.json`), and scores the maps with
`medcap.evaluation.localisation` (pointing game and IoU, with the
centre-point and uniform-map baselines). On up to `SANITY_PAIRS` of those
pairs (or, without boxes, each test image's most probable finding) it runs
the model-parameter randomisation test (`medcap.explanations.sanity`).
The first `eval.gallery_size` pairs are drawn, boxes dashed, into
`<workdir>/explanations/` and listed for report.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import synthetic
from medcap.data.findings_labels import first_view
from medcap.evaluation.localisation import localisation_scores
from medcap.explanations.methods import Explainer, peaks
from medcap.explanations.overlays import draw_overlay, safe_name
from medcap.explanations.sanity import randomisation_test
from medcap.models.findings_classifier import HEAD_LAYERS

SANITY_PAIRS = 32
GALLERY_DIR = "explanations"


def _frame(path: str) -> tuple[int, int]:
    """(height, width) of the image file, the frame its boxes are given in."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return image.height, image.width
    except Exception:  # noqa: BLE001  (DICOM and other formats PIL does not open)
        from medcap.data.images import load_pixels

        return tuple(load_pixels(path).shape[:2])  # type: ignore[return-value]


def measure_explanations(task, model, examples: list[dict], workdir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import tensorflow as tf

    from medcap.data.pipeline import read_image

    config = task.config
    method = config.eval.explain_method
    if method == "none" or not examples:
        return {}, []
    names = task.label_names
    truth_boxes = synthetic.truth_boxes_for(config.data)
    source = "synthetic_truth.json (every drawn lesion)" if truth_boxes else "the dataset's boxes"
    pairs: list[tuple[int, int, list[dict]]] = []
    for index, example in enumerate(examples):
        boxes = truth_boxes.get(str(example["id"]), []) if truth_boxes else example.get("boxes", [])
        for j, name in enumerate(names):
            mine = [b for b in boxes if b["finding"] == name]
            if mine:
                pairs.append((index, j, mine))
    size = tuple(config.data.image_size)
    # Without boxes the sanity check explains the first test images' top finding instead.
    needed = sorted({i for i, _, _ in pairs}) if pairs else list(range(min(len(examples), SANITY_PAIRS)))
    decoded = {i: read_image(tf.constant(first_view(examples[i]["image"])), size).numpy() for i in needed}
    explainer = Explainer(model, method, feature_layer=model.feature_layer)
    batch = config.train.batch_size
    maps = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        maps.append(explainer(np.stack([decoded[i] for i, _, _ in chunk]), [j for _, j, _ in chunk]))
    maps_array = np.concatenate(maps) if maps else np.zeros((0, *size))
    frames = {i: _frame(first_view(examples[i]["image"])) for i in {i for i, _, _ in pairs}}
    metrics: dict[str, Any] = {"localisation/pairs": len(pairs), "meta/localisation/boxes": source}
    if pairs:
        metrics.update(
            localisation_scores(
                list(maps_array), [b for _, _, b in pairs], [frames[i] for i, _, _ in pairs], [names[j] for _, j, _ in pairs], method=method
            )
        )
    if pairs:
        sanity_pairs = [(i, j) for i, j, _ in pairs[:SANITY_PAIRS]]
    else:
        probabilities = np.asarray(model.predict(np.stack([decoded[i] for i in needed]), verbose=0))
        sanity_pairs = [(i, int(np.argmax(p))) for i, p in zip(needed, probabilities)]
    metrics.update(
        randomisation_test(
            model,
            np.stack([decoded[i] for i, _ in sanity_pairs]),
            [j for _, j in sanity_pairs],
            method=method,
            feature_layer=model.feature_layer,
            head_layers=[name for name in HEAD_LAYERS if model.get_layer(name).weights],
            top_block=model.top_block,
            # Not the training seed: that would redraw the model's own initial weights.
            seed=config.train.seed + 1,
            batch_size=batch,
        )
    )
    gallery = []
    out = Path(workdir) / GALLERY_DIR
    chosen = pairs[: config.eval.gallery_size]
    if chosen:
        predicted = np.asarray(model.predict(np.stack([decoded[i] for i, _, _ in chosen]), verbose=0))
        for row, ((i, j, boxes), saliency, peak) in enumerate(zip(chosen, maps_array, peaks(maps_array[: len(chosen)]))):
            name = names[j]
            file_name = f"{safe_name(str(examples[i]['id']))}__{safe_name(name)}__{safe_name(method)}.png"
            title = f"{name}: p = {predicted[row, j]:.2f} ({method})"
            draw_overlay(decoded[i], saliency, out / file_name, title=title, peak=peak, boxes=boxes, frame=frames[i])
            gallery.append({"id": str(examples[i]["id"]), "finding": name, "probability": float(predicted[row, j]), "file": f"{GALLERY_DIR}/{file_name}"})
    return metrics, gallery
