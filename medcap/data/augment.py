"""Seeded geometric augmentation for radiographs: small rotation, shift and zoom.

What radiograph classifiers use (CheXNet-style training and its successors):
the film is rotated by a few degrees, shifted by a few percent and zoomed
slightly, as patient positioning varies; brightness and contrast jitter as
exposure does. Never flipped vertically (a radiograph is never upside
down); horizontal flips are off by default because laterality matters (the
heart sits on the patient's left, a right-sided finding is not a left-sided
one), and can be turned on where a task is side-agnostic.

Every draw is stateless from the element seed, so an epoch's augmentation is
a pure function of (seed, epoch, index) and a resumed run sees the same
images as an uninterrupted one (`medcap.data.pipeline`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class RadiographAugment:
    """Ranges of the random transform (each drawn uniformly in [-r, r])."""

    rotation_degrees: float = 7.0
    #: Fraction of the image side.
    shift: float = 0.05
    #: Relative scale change: 0.1 zooms between 0.9x and 1.1x.
    zoom: float = 0.1
    #: Added to [0, 255] pixels.
    brightness: float = 20.0
    #: Contrast factor in [1 - contrast, 1 + contrast].
    contrast: float = 0.15
    horizontal_flip: bool = False


def affine_transform(height: int | tf.Tensor, width: int | tf.Tensor, angle, scale, shift_x, shift_y) -> tf.Tensor:
    """The (1, 8) projective transform mapping output pixels to input pixels
    for a rotation by `angle` (radians) and a zoom by `scale` about the image
    centre, then a shift of (shift_x, shift_y) pixels."""
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    ox, oy = cx + shift_x, cy + shift_y
    return tf.reshape(
        tf.stack([cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy, 0.0, 0.0]),
        [1, 8],
    )


def augment_radiograph(image: tf.Tensor, seed: tf.Tensor, params: RadiographAugment = RadiographAugment()) -> tf.Tensor:
    """One random transform of a (height, width, channels) [0, 255] image."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)

    def uniform(index: int, limit: float) -> tf.Tensor:
        return tf.random.stateless_uniform([], seeds[index], -limit, limit)

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    angle = uniform(0, params.rotation_degrees * math.pi / 180.0)
    scale = 1.0 + uniform(1, params.zoom)
    shift_x = uniform(2, params.shift) * tf.cast(width, tf.float32)
    shift_y = uniform(3, params.shift) * tf.cast(height, tf.float32)
    transform = affine_transform(height, width, angle, scale, shift_x, shift_y)
    image = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform,
        output_shape=tf.stack([height, width]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )[0]
    image = image + uniform(4, params.brightness)
    mean = tf.reduce_mean(image)
    image = (image - mean) * (1.0 + uniform(5, params.contrast)) + mean
    if params.horizontal_flip:
        flip = tf.random.stateless_uniform([], seeds[6]) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    return tf.clip_by_value(image, 0.0, 255.0)
