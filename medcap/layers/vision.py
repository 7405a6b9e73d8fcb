"""Paper 002's additions on top of DenseNet121 (section 3.3), as Keras layers.

Rahman, Lee, Kim, "Leveraging Contrastive Learning and Domain Prompts for
Efficient Radiology Report Generation", section 3.3, eqs. 8-12:

* `MultiScaleDepthwiseBlock` (eqs. 8-9): parallel depthwise 3x3 and 5x5
  convolutions of the DenseNet feature map X, each projected by a pointwise
  1x1 convolution to d channels, concatenated to 2d channels:
  F_m = [PW(DW3(X)); PW(DW5(X))].
* `SqueezeExcitation` (eq. 10): s = sigmoid(W2 relu(W1 GAP(F_m))), F_c = F_m * s,
  with W1: 2d -> 2d/r, W2: 2d/r -> 2d. The paper's W1 in R^(256x64) with r = 4
  fixes 2d = 256, so the paper preset uses d = 128.
* `SpatialAttention` (eq. 11): A_s = sigmoid(Conv7x7([mean_c(F); max_c(F)])),
  an (h, w, 1) map from the channel-wise mean and max of its input.
* `AdaptivePooling` (eq. 12): w * GAP(F) + (1 - w) * GMP(F) with w in [0, 1]
  learned, here w = sigmoid(theta) for one scalar theta.

Choices the paper leaves open, ours:

* Depthwise convolutions: depth multiplier 1, "same" padding, stride 1, no
  bias and no activation (the pointwise convolution that follows has a bias).
  Pointwise convolutions: bias and a ReLU (`activation`), so the block is more
  than a linear re-mix of DenseNet's channels. No batch normalisation (none
  is stated).
* SE: both dense layers have biases (as in the original squeeze-and-excitation
  network); reduction r = 4 as stated.
* Spatial attention: one 7x7 convolution, 2 -> 1 channels, "same" padding,
  with bias. Eq. 11 computes A_s from F_m (the multi-scale features, not the
  SE output) and then writes F_att = s * A_s; we read that as
  F_att = F_c * A_s (the channel-recalibrated features weighted by the
  spatial map computed from F_m). `ClipVisionEncoder(spatial_source=...)`
  can compute A_s from F_c instead (CBAM's sequential order).
* Adaptive pooling: theta initialised at 0 (w = 0.5, an even mix). The
  paper's w is one learned scalar ("a learned weight"), not a function of
  the image, despite the prose about "image-specific characteristics".
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medcap")
class MultiScaleDepthwiseBlock(keras.layers.Layer):
    """Parallel depthwise 3x3 / 5x5 paths, pointwise-projected and concatenated (eqs. 8-9).

    Args:
        filters: d, the channels of each path; the output has 2 * filters.
        kernel_sizes: depthwise kernel sizes of the paths (paper: 3 and 5).
        activation: activation after each pointwise convolution.

    Input: (batch, h, w, c). Output: (batch, h, w, len(kernel_sizes) * filters).
    """

    def __init__(
        self,
        filters: int,
        kernel_sizes: tuple[int, ...] = (3, 5),
        activation: str | None = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if filters < 1:
            raise ValueError(f"filters={filters}: must be >= 1")
        if not kernel_sizes:
            raise ValueError("kernel_sizes must name at least one path")
        self.filters = int(filters)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.activation = activation
        self.depthwise = [
            keras.layers.DepthwiseConv2D(
                k,
                padding="same",
                use_bias=False,
                dtype=self.dtype_policy,
                name=f"depthwise_{k}x{k}",
            )
            for k in self.kernel_sizes
        ]
        self.pointwise = [
            keras.layers.Conv2D(
                self.filters,
                1,
                activation=activation,
                dtype=self.dtype_policy,
                name=f"pointwise_{k}x{k}",
            )
            for k in self.kernel_sizes
        ]

    def build(self, input_shape):
        for depthwise, pointwise in zip(self.depthwise, self.pointwise):
            depthwise.build(input_shape)
            pointwise.build(input_shape)  # depthwise keeps the channel count
        self.built = True

    def call(self, inputs):
        paths = [
            pointwise(depthwise(inputs))
            for depthwise, pointwise in zip(self.depthwise, self.pointwise)
        ]
        return ops.concatenate(paths, axis=-1) if len(paths) > 1 else paths[0]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters * len(self.kernel_sizes))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_sizes": self.kernel_sizes,
            "activation": self.activation,
        }


@keras.saving.register_keras_serializable(package="medcap")
class SqueezeExcitation(keras.layers.Layer):
    """Channel attention (eq. 10): F * sigmoid(W2 relu(W1 GAP(F))).

    Args:
        reduction: r; the bottleneck has channels // r units (paper: 4).
        return_weights: also return the channel weights s, (batch, channels).
    """

    def __init__(self, reduction: int = 4, return_weights: bool = False, **kwargs):
        super().__init__(**kwargs)
        if reduction < 1:
            raise ValueError(f"reduction={reduction}: must be >= 1")
        self.reduction = int(reduction)
        self.return_weights = bool(return_weights)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        bottleneck = max(1, channels // self.reduction)
        self.squeeze = keras.layers.Dense(
            bottleneck, activation="relu", dtype=self.dtype_policy, name="squeeze"
        )
        self.excite = keras.layers.Dense(
            channels, activation="sigmoid", dtype=self.dtype_policy, name="excite"
        )
        self.squeeze.build((input_shape[0], channels))
        self.excite.build((input_shape[0], bottleneck))
        self.built = True

    def call(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2))
        weights = self.excite(self.squeeze(pooled))
        outputs = inputs * weights[:, None, None, :]
        return (outputs, weights) if self.return_weights else outputs

    def compute_output_shape(self, input_shape):
        if self.return_weights:
            return tuple(input_shape), (input_shape[0], input_shape[-1])
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "reduction": self.reduction,
            "return_weights": self.return_weights,
        }


@keras.saving.register_keras_serializable(package="medcap")
class SpatialAttention(keras.layers.Layer):
    """The spatial attention map of eq. 11: sigmoid(Conv_kxk([mean_c(F); max_c(F)])).

    Returns the map A_s, (batch, h, w, 1); the caller multiplies it with the
    features it weighs (they need not be the features it was computed from).

    Args:
        kernel_size: the convolution's kernel (paper: 7).
    """

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        if kernel_size < 1:
            raise ValueError(f"kernel_size={kernel_size}: must be >= 1")
        self.kernel_size = int(kernel_size)
        self.conv = keras.layers.Conv2D(
            1,
            self.kernel_size,
            padding="same",
            activation="sigmoid",
            dtype=self.dtype_policy,
            name="conv",
        )

    def build(self, input_shape):
        self.conv.build((*input_shape[:-1], 2))
        self.built = True

    def call(self, inputs):
        descriptors = ops.concatenate(
            [ops.mean(inputs, axis=-1, keepdims=True), ops.max(inputs, axis=-1, keepdims=True)],
            axis=-1,
        )
        return self.conv(descriptors)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="medcap")
class AdaptivePooling(keras.layers.Layer):
    """Eq. 12: w * GAP(F) + (1 - w) * GMP(F), w = sigmoid(theta) for a learned scalar theta.

    Args:
        initial_logit: theta's initial value (0: w = 0.5).
    """

    def __init__(self, initial_logit: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_logit = float(initial_logit)

    def build(self, input_shape):
        self.logit = self.add_weight(
            name="logit",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_logit),
            trainable=True,
        )
        self.built = True

    @property
    def average_weight(self):
        """w in [0, 1], the share of global average pooling."""
        return ops.sigmoid(self.logit)

    def call(self, inputs):
        weight = ops.cast(ops.sigmoid(self.logit), inputs.dtype)
        return weight * ops.mean(inputs, axis=(1, 2)) + (1.0 - weight) * ops.max(
            inputs, axis=(1, 2)
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "initial_logit": self.initial_logit}
