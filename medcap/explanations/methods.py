"""Saliency maps of a classifier's decision, for a batch of images in one pass.

`explain(model, images, labels, method)` returns one map per image at the
input resolution, min-max normalised to [0, 1] per map (the convention of
the libraries below, and what localisation and the sanity check compare).
`labels[i]` is the output unit explained for image i. Methods:

    gradcam               Selvaraju et al. 2017        tf-keras-vis Gradcam
    gradcam++             Chattopadhay et al. 2018     tf-keras-vis GradcamPlusPlus
    scorecam              Wang et al. 2020             ours, batched (below)
    smoothgrad            Smilkov et al. 2017          tf-keras-vis Saliency (smooth_samples)
    integrated_gradients  Sundararajan et al. 2017     ours, batched; equal to PAIR's

The CAM methods read the feature maps of `feature_layer` (the model's last
convolutional block, `FindingsClassifier.feature_layer`); tf-keras-vis
0.8.7 runs them on a whole batch through our flat Keras 3 functional graph
and upsamples each map bilinearly to the input size. The score explained
is the unit's output (a sigmoid probability: its gradient is the logit's
times p(1 - p), a positive factor per image that per-map normalisation
removes).

Score-CAM is ours because tf-keras-vis 0.8.7's `Scorecam` weighs each
masked input by a softmax over the model's outputs: right for one softmax
classifier, wrong for independent sigmoid findings (the weight of a
finding would depend on the others' probabilities). Ours weighs channel k
by the explained finding's own probability on the image masked by the
channel's upsampled, min-max normalised activation (Wang et al. 2020, eq.
for C(A^k) without the constant baseline term), and the map is
ReLU(sum_k weight_k x upsampled A^k), as the authors' code computes it. With
`scorecam_channels` = N > 0 it keeps each image's N channels of largest
spatial standard deviation (Faster Score-CAM's choice, per image: the
library pools the choice over the batch, so a map would depend on its
batch-mates).

Integrated gradients are ours because PAIR's `saliency` (0.2.1) computes
them one image at a time (`GetMask` on one input, batching only the path
steps); ours integrates every image's path in one batched gradient call
with PAIR's exact formula, IG = (x - x') * mean over alpha in
linspace(0, 1, steps) of dF/dx(x' + alpha (x - x')), baseline x' = black,
and the map is |sum over colour channels| (the test checks equality with
PAIR's `IntegratedGradients.GetMask`). SmoothGrad's map is tf-keras-vis'
(max over channels of |gradient|, averaged over noisy copies with noise
20% of the image range).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

METHODS = ("gradcam", "gradcam++", "scorecam", "smoothgrad", "integrated_gradients")
CAM_METHODS = ("gradcam", "gradcam++", "scorecam")


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max per map to [0, 1]; a constant map becomes all zeros."""
    maps = np.asarray(maps, dtype=np.float64)
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - low
    out = np.where(span > 0, (flat - low) / np.where(span > 0, span, 1.0), 0.0)
    return out.reshape(maps.shape)


class Explainer:
    """Builds a method's visualiser once and explains batches with it.

    Args:
        model: a Keras functional model with one (batch, labels) output.
        method: one of METHODS.
        feature_layer: the convolutional layer the CAM methods read.
        smooth_samples: SmoothGrad's noisy copies.
        ig_steps: points on the integrated-gradients path.
        scorecam_channels: Score-CAM's channel cap (tf-keras-vis `max_N`;
            -1 keeps every channel, the original method).
    """

    def __init__(
        self,
        model,
        method: str,
        *,
        feature_layer: str = "",
        smooth_samples: int = 20,
        ig_steps: int = 32,
        scorecam_channels: int = -1,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown explanation method {method!r}; valid: {', '.join(METHODS)}")
        if method in CAM_METHODS and not feature_layer:
            raise ValueError(f"{method} needs the feature layer to read")
        self.model = model
        self.method = method
        self.feature_layer = feature_layer
        self.smooth_samples = int(smooth_samples)
        self.ig_steps = int(ig_steps)
        self.scorecam_channels = int(scorecam_channels)
        self._visualiser = self._build()

    def _build(self) -> Any:
        if self.method == "integrated_gradients":
            return None
        if self.method == "scorecam":
            import keras

            return keras.Model(self.model.inputs[0], [self.model.get_layer(self.feature_layer).output, self.model.outputs[0]])
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency

        cls = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "smoothgrad": Saliency}[self.method]
        # clone=False: the visualisers only read the model (no activation is swapped).
        return cls(self.model, clone=False)

    def __call__(self, images: Any, labels: Sequence[int]) -> np.ndarray:
        """(n, height, width) maps in [0, 1] for `images` (n, height, width, 3)."""
        images = np.asarray(images, dtype=np.float32)
        labels = [int(i) for i in labels]
        if len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        if self.method == "integrated_gradients":
            attributions = integrated_gradients(self.model, images, labels, steps=self.ig_steps)
            return normalize_maps(np.abs(attributions.sum(axis=-1)))
        if self.method == "scorecam":
            return normalize_maps(score_cam(self._visualiser, self.model, images, labels, channels=self.scorecam_channels))
        from tf_keras_vis.utils.scores import CategoricalScore

        score = CategoricalScore(labels)
        if self.method == "smoothgrad":
            maps = self._visualiser(score, images, smooth_samples=self.smooth_samples, smooth_noise=0.2, normalize_map=False)
        else:
            kwargs: dict[str, Any] = {"penultimate_layer": self.feature_layer, "seek_penultimate_conv_layer": False, "normalize_cam": False}
            maps = self._visualiser(score, images, **kwargs)
        return normalize_maps(np.asarray(maps))


def score_cam(maps_model, model, images: np.ndarray, labels: Sequence[int], *, channels: int = -1, batch_size: int = 64) -> np.ndarray:
    """(n, h, w) Score-CAM maps (module docstring), every masked input of the
    batch predicted in one `predict` call."""
    import tensorflow as tf

    activations = np.asarray(maps_model.predict(images, batch_size=batch_size, verbose=0)[0], dtype=np.float32)
    n, _, _, total = activations.shape
    if 0 < channels < total:
        spread = activations.reshape(n, -1, total).std(axis=1)
        keep = np.argsort(-spread, axis=1, kind="stable")[:, :channels]
        activations = np.take_along_axis(activations, keep[:, None, None, :], axis=-1)
    height, width = images.shape[1:3]
    upsampled = tf.image.resize(activations, (height, width), method="bilinear").numpy()
    low = upsampled.min(axis=(1, 2), keepdims=True)
    high = upsampled.max(axis=(1, 2), keepdims=True)
    masks = (upsampled - low) / np.where(high > low, high - low, 1.0)
    k = masks.shape[-1]
    # (n, k, h, w, 3): image i masked by each of its k channel masks.
    masked = images[:, None] * np.moveaxis(masks, -1, 1)[..., None]
    probabilities = model.predict(masked.reshape((-1, *images.shape[1:])), batch_size=batch_size, verbose=0)
    weights = np.asarray(probabilities).reshape(n, k, -1)[np.arange(n), :, np.asarray(labels)]
    return np.maximum(np.einsum("nhwk,nk->nhw", upsampled, weights), 0.0)


def integrated_gradients(model, images: np.ndarray, labels: Sequence[int], *, steps: int = 32, baseline: np.ndarray | None = None) -> np.ndarray:
    """(n, h, w, c) integrated gradients of output unit `labels[i]` of image i,
    every image's whole path in one gradient call (module docstring)."""
    import tensorflow as tf

    images = np.asarray(images, dtype=np.float32)
    baseline = np.zeros_like(images) if baseline is None else np.asarray(baseline, dtype=np.float32)
    alphas = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    # (steps, n, h, w, c) -> one batch of steps * n images.
    path = baseline[None] + alphas[:, None, None, None, None] * (images - baseline)[None]
    batch = tf.constant(path.reshape((-1, *images.shape[1:])))
    index = tf.constant(np.tile(np.asarray(labels), steps)[:, None])
    with tf.GradientTape() as tape:
        tape.watch(batch)
        outputs = model(batch, training=False)
        picked = tf.gather(outputs, index, batch_dims=1)
    grads = tape.gradient(picked, batch).numpy().reshape(path.shape)
    return (images - baseline) * grads.mean(axis=0)


def peaks(maps: np.ndarray) -> list[dict[str, float]]:
    """Each map's maximum: pixel row/column and the same as fractions of the side."""
    out = []
    for single in np.asarray(maps):
        row, col = np.unravel_index(int(np.argmax(single)), single.shape)
        out.append(
            {
                "row": int(row),
                "col": int(col),
                "y": (row + 0.5) / single.shape[0],
                "x": (col + 0.5) / single.shape[1],
                "value": float(single[row, col]),
            }
        )
    return out
