"""Pixel normalisation inside the model, so a saved model takes raw pixels.

`PixelNormalization(mode)` does in the graph what `medcap.data.pipeline.normalize`
does in tf.data, with the same modes and numbers (keras.applications'
`imagenet_utils.preprocess_input`): `caffe` flips RGB to BGR and subtracts
the ImageNet BGR means (VGG16, ResNet50); `torch` scales to [0, 1] and
standardises by the ImageNet RGB mean and standard deviation (DenseNet121);
`unit`, `symmetric` and `none` as the pipeline names them. A model that
normalises its own input can be explained (`medcap explain`) and called
(`medcap caption`) on the image as read, and its gradients are with respect
to the pixels a clinician sees.
"""

from __future__ import annotations

import keras
from keras import ops

#: keras.applications.imagenet_utils' constants.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCH_RGB_MEAN = (0.485, 0.456, 0.406)
TORCH_RGB_STD = (0.229, 0.224, 0.225)
MODES = ("none", "unit", "symmetric", "imagenet_caffe", "imagenet_torch")


@keras.saving.register_keras_serializable(package="medcap")
class PixelNormalization(keras.layers.Layer):
    """[0, 255] RGB pixels -> the input a backbone's ImageNet weights expect.

    Args:
        mode: one of MODES (the names of `medcap.data.pipeline.normalize`).

    Input and output: (batch, height, width, 3).
    """

    def __init__(self, mode: str = "imagenet_torch", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "none":
            return images
        if self.mode == "unit":
            return images / 255.0
        if self.mode == "symmetric":
            return images / 127.5 - 1.0
        if self.mode == "imagenet_caffe":
            return ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_BGR_MEAN, self.compute_dtype)
        mean = ops.convert_to_tensor(TORCH_RGB_MEAN, self.compute_dtype)
        std = ops.convert_to_tensor(TORCH_RGB_STD, self.compute_dtype)
        return (images / 255.0 - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
