"""The radiograph augmentation: the transform moves pixels where the geometry says, seeded."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from medcap.data.augment import RadiographAugment, affine_transform, augment_radiograph


def _apply(image: np.ndarray, transform: tf.Tensor) -> np.ndarray:
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=[32, 32], fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT"
    )[0].numpy()


def test_shift_and_rotation_move_a_pixel_where_expected():
    image = np.zeros((32, 32, 1), np.float32)
    image[10, 20] = 255.0
    shifted = _apply(image, affine_transform(32, 32, 0.0, 1.0, 3.0, -2.0))
    assert np.argwhere(shifted[..., 0] > 0).tolist() == [[8, 23]]
    # 90 degrees about the centre (15.5, 15.5): (x 20, y 10) -> (x 21, y 20).
    rotated = _apply(image, affine_transform(32, 32, np.pi / 2, 1.0, 0.0, 0.0))
    assert np.argwhere(rotated[..., 0] > 0).tolist() == [[20, 21]]
    # Zoom 2x about the centre: (x 20, y 10) -> (x 24.5, y 4.5), between pixels 24/25 and 4/5.
    zoomed = _apply(image, affine_transform(32, 32, 0.0, 2.0, 0.0, 0.0))
    rows, cols = np.nonzero(zoomed[..., 0])
    assert set(rows) <= {4, 5} and set(cols) <= {24, 25}


def test_augmentation_is_a_function_of_the_seed_and_never_flips_by_default():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 255, (48, 48, 3)).astype("float32"))
    a = augment_radiograph(image, tf.constant([1, 2], tf.int64)).numpy()
    b = augment_radiograph(image, tf.constant([1, 2], tf.int64)).numpy()
    c = augment_radiograph(image, tf.constant([1, 3], tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and a.min() >= 0 and a.max() <= 255
    # A left-bright image stays left-bright: no horizontal flip unless asked for.
    half = np.zeros((48, 48, 3), np.float32)
    half[:, :24] = 200.0
    for seed in range(10):
        out = augment_radiograph(tf.constant(half), tf.constant([seed, 0], tf.int64), RadiographAugment(brightness=0, contrast=0)).numpy()
        assert out[:, :16].mean() > out[:, 32:].mean()
