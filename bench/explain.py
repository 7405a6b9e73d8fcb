"""Batched saliency maps vs a per-image loop, same model, same maps; and each method's cost.

    python bench/explain.py [--preset tiny|chexnet|resnet50|efficientnet_b0] [--size 64] [--images 32]
                            [--batch 16] [--methods gradcam,gradcam++,scorecam,smoothgrad,integrated_gradients]

The model is the findings classifier of `--preset` (random weights; speed
does not depend on them) with 7 outputs. For Grad-CAM it times:

* batched: `medcap.explanations.methods.Explainer` on batches of `--batch`
  images (one visualiser, one gradient call per batch), as `medcap explain`
  and the run's evaluation use it;
* loop: the same explainer called on one image at a time.

It asserts the two give the same maps (atol 1e-4) and prints maps/s for
both and their ratio. Then it prints every method's milliseconds per map,
batched (Score-CAM keeps every channel of the last block; SmoothGrad 20
noisy copies; integrated gradients 32 steps). Goal: batched Grad-CAM at
least 3x the loop on CPU.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from medcap.explanations.methods import METHODS, Explainer  # noqa: E402
from medcap.models.findings_classifier import build_findings_classifier  # noqa: E402


def timed(function, repeats: int = 2) -> tuple[float, np.ndarray]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    labels = ("Atelectasis", "Cardiomegaly", "Effusion", "Nodule", "Pneumothorax", "Consolidation", "Edema")
    model, _ = build_findings_classifier(args.preset, labels, encoder_weights="none", image_size=args.size)
    images = np.random.default_rng(0).uniform(0, 255, (args.images, args.size, args.size, 3)).astype("float32")
    targets = [i % len(labels) for i in range(args.images)]

    explainer = Explainer(model, "gradcam", feature_layer=model.feature_layer)
    explainer(images[:2], targets[:2])  # trace once

    def batched() -> np.ndarray:
        return np.concatenate([explainer(images[i : i + args.batch], targets[i : i + args.batch]) for i in range(0, args.images, args.batch)])

    def loop() -> np.ndarray:
        return np.concatenate([explainer(images[i : i + 1], targets[i : i + 1]) for i in range(args.images)])

    batched_s, batched_maps = timed(batched)
    loop_s, loop_maps = timed(loop)
    np.testing.assert_allclose(batched_maps, loop_maps, atol=1e-4)
    print(f"preset {args.preset}, {args.size} px, {args.images} images, batch {args.batch}")
    print(f"grad-cam batched: {args.images / batched_s:8.1f} maps/s")
    print(f"grad-cam loop:    {args.images / loop_s:8.1f} maps/s")
    print(f"ratio batched/loop: {loop_s / batched_s:.1f}x (same maps, atol 1e-4)")
    print("cost per map, batched:")
    for method in args.methods.split(","):
        method_explainer = Explainer(model, method, feature_layer=model.feature_layer)
        method_explainer(images[:2], targets[:2])
        start = time.perf_counter()
        for i in range(0, args.images, args.batch):
            method_explainer(images[i : i + args.batch], targets[i : i + args.batch])
        seconds = time.perf_counter() - start
        print(f"  {method:22s} {1000 * seconds / args.images:8.1f} ms")


if __name__ == "__main__":
    main()
