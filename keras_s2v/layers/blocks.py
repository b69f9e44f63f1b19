"""Convolution blocks as functions with named layers (stable weight and TFLite tensor names)."""

from __future__ import annotations

import keras


def batch_norm(name: str):
    """Synchronized across replicas, so N replicas x B samples behave like one batch of N x B."""
    return keras.layers.BatchNormalization(synchronized=True, name=name)


# A depthwise convolution over fewer input channels saves almost nothing (RGB, MFCC): keep those standard.
MIN_SEPARABLE_CHANNELS = 16


def conv_bn_relu(
    x, filters: int, kernel_size, strides=1, padding: str = "same", separable: bool = False, name: str = "conv"
):
    """Conv2D -> BatchNorm -> ReLU, layers named ``{name}``, ``{name}_bn``, ``{name}_relu``.

    With ``separable``, a k x k kernel (k > 1) over at least ``MIN_SEPARABLE_CHANNELS``
    input channels becomes ``separable_conv_bn_relu`` (same output shape, same
    names for the last three layers); 1 x 1 kernels and thin inputs stay standard.
    """
    kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if separable and max(kernel) > 1 and x.shape[-1] >= MIN_SEPARABLE_CHANNELS:
        return separable_conv_bn_relu(x, filters, kernel, strides, padding, name=name)
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def separable_conv_bn_relu(x, filters: int, kernel_size, strides=1, padding: str = "same", name: str = "conv"):
    """MobileNet block: depthwise k x k -> BN -> ReLU -> pointwise 1 x 1 -> BN -> ReLU.

    Layers ``{name}_dw``, ``{name}_dw_bn``, ``{name}_dw_relu`` (spatial, per
    channel; carries the strides and padding), then ``{name}``, ``{name}_bn``,
    ``{name}_relu`` (mixes channels), so the block's output keeps the name a
    standard ``conv_bn_relu`` gives it. Per output position it costs
    k^2 C_in + C_in C_out multiply-adds instead of k^2 C_in C_out.
    """
    # He initialisation over the k x k taps each output sums. Keras's "he_normal" counts the input
    # channels too (fan_in k^2 C), so each block shrank the signal by sqrt(C), and s2v_mobile's
    # untrained audio vector barely varied with the audio (BatchNorm's moving statistics start at 1).
    he_depthwise = keras.initializers.VarianceScaling(2.0 * int(x.shape[-1]), "fan_in", "truncated_normal")
    x = keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=he_depthwise,
        name=f"{name}_dw",
    )(x)
    x = batch_norm(f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_dw_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal", name=name)(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def deconv_bn_relu(x, filters: int, kernel_size, strides=2, padding: str = "same", name: str = "deconv"):
    """Conv2DTranspose -> BatchNorm -> ReLU (the decoder's upsampling step)."""
    x = keras.layers.Conv2DTranspose(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def resize_conv_bn_relu(x, filters: int, size: int, separable: bool = False, name: str = "upconv"):
    """Resize to ``size`` x ``size`` (nearest for exact doublings, else bilinear) -> 3 x 3 Conv -> BN -> ReLU.

    Odena et al. (2016): upsampling then convolving cannot make the checkerboard that strided
    transposed convolutions leave. Layers ``{name}_resize`` then ``conv_bn_relu``'s ``{name}``...
    """
    doubling = size == 2 * x.shape[1]
    x = (
        keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")
        if doubling
        else BilinearResize(size, name=f"{name}_resize")
    )(x)
    return conv_bn_relu(x, filters, 3, separable=separable, name=name)


@keras.saving.register_keras_serializable(package="keras_s2v")
class BilinearResize(keras.layers.Layer):
    """(B, h, w, C) -> (B, size, size, C), ``tf.image.resize``'s bilinear (half-pixel centres) as two
    products with constant interpolation matrices.

    The same numbers as ``keras.layers.Resizing(size, size, "bilinear")`` when enlarging, but every
    exporter keeps the output size: tf2onnx turns a 6 -> 14 resize into a scale of 2.33 whose
    ONNX output is 13 pixels.
    """

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def build(self, input_shape):
        self.in_height, self.in_width = int(input_shape[1]), int(input_shape[2])

    def _weights(self, in_size: int):  # (size, in_size): each output pixel's two source weights
        import numpy as np

        centres = np.clip((np.arange(self.size) + 0.5) * in_size / self.size - 0.5, 0, in_size - 1)
        low = np.floor(centres).astype(int)
        high = np.minimum(low + 1, in_size - 1)
        weights = np.zeros((self.size, in_size), np.float32)
        np.add.at(weights, (np.arange(self.size), low), 1 - (centres - low))
        np.add.at(weights, (np.arange(self.size), high), centres - low)
        return keras.ops.convert_to_tensor(weights, self.compute_dtype)

    def call(self, x):
        rows, cols = self._weights(self.in_height), self._weights(self.in_width)
        x = keras.ops.einsum("oh,bhwc->bowc", rows, x)  # (B, size, w, C)
        return keras.ops.einsum("pw,bowc->bopc", cols, x)  # (B, size, size, C)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="keras_s2v")
class Centered(keras.layers.Layer):
    """``x`` minus its mean over ``axis``: what varies along it (a window's motion, its audio's changes)."""

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        return x - keras.ops.mean(x, axis=self.axis, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@keras.saving.register_keras_serializable(package="keras_s2v")
class MaskLowerHalf(keras.layers.Layer):
    """Zeroes the lower half of the first ``channels`` channels of (B, S, S, C) images.

    What Wav2Lip and LipGAN give the generator: the frame to be re-dubbed with its
    mouth and jaw hidden (rows ``S // 2`` on; the aligned lips start at 0.6 S), so
    it keeps that frame's pose, light and background and must draw the mouth from
    the audio. A constant multiply: exported graphs and int8 keep it exactly.
    """

    def __init__(self, channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def build(self, input_shape):
        self.size, self.depth = int(input_shape[1]), int(input_shape[-1])  # the model's Input: static

    def call(self, images):
        # The mask is made in the graph, not kept from build(): exported functions capture a kept tensor
        # from outside, and tf2onnx turned that capture into an extra ONNX graph input.
        rows = (keras.ops.arange(self.size) < self.size // 2)[None, :, None, None]
        depths = (keras.ops.arange(self.depth) >= self.channels)[None, None, None, :]
        return images * keras.ops.cast(keras.ops.logical_or(rows, depths), images.dtype)  # mask (1, S, 1, C)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def scaled(filters: int, width: float) -> int:
    """Filter count times a width multiplier (tiny configs), at least 4."""
    return max(4, int(round(filters * width)))


def conv_bn_leaky(
    x, filters: int, kernel_size, strides=1, padding: str = "same", normalize: bool = True, name: str = "conv"
):
    """Conv2D [-> BatchNorm] -> LeakyReLU(0.2): the discriminators' block (DCGAN: no BatchNorm on the first)."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=not normalize,
        kernel_initializer="he_normal",
        name=name,
    )(x)
    if normalize:
        x = batch_norm(f"{name}_bn")(x)
    return keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def conv1d_bn_relu(x, filters: int, kernel_size: int, strides: int = 1, padding: str = "same", name: str = "conv"):
    """Conv1D -> BatchNorm -> ReLU over a waveform or feature sequence."""
    x = keras.layers.Conv1D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def conv2plus1d(
    x,
    filters: int,
    kernel_size=(3, 3, 3),
    strides=(1, 1, 1),
    normalize: bool = True,
    activation: str | None = "relu",
    use_bias: bool | None = None,
    name: str = "conv3d",
):
    """A 3-D convolution factorised into space then time (R(2+1)D, Tran et al. 2018).

    (B, T, H, W, C) -> (B, T', H', W', f).

    A k x k Conv2D on every frame (``{name}_space``, the spatial strides),
    then a Conv2D of kernel (k_t, 1) over (time, pixels) (``{name}_time``, the
    temporal stride), each [-> BatchNorm] -> ReLU or LeakyReLU(0.2). Same
    receptive field as a k_t x k x k kernel, fewer weights, and only Conv2D
    ops: TensorFlow's strided Conv3D gradients run about 100x slower on CPU
    (measured 3.6-6.6 s against 0.05 s for one layer at batch 2 x 8 frames),
    and phones' TFLite delegates take Conv2D, not CONV_3D. Any T.
    ``use_bias`` defaults to ``not normalize``; ``activation``: relu, leaky or None.
    """
    from keras_s2v.layers.sequence import FoldTime, UnfoldTime

    kernel_size = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
    strides = (strides,) * 3 if isinstance(strides, int) else tuple(strides)
    t_kernel, s_kernel = kernel_size[0], kernel_size[1]
    t_stride, s_stride = strides[0], strides[1]
    use_bias = not normalize if use_bias is None else use_bias

    def finish(y, suffix):
        if normalize:
            y = batch_norm(f"{name}_{suffix}_bn")(y)
        if activation == "relu":
            return keras.layers.ReLU(name=f"{name}_{suffix}_relu")(y)
        if activation == "leaky":
            return keras.layers.LeakyReLU(0.2, name=f"{name}_{suffix}_lrelu")(y)
        return y

    y = FoldTime(name=f"{name}_fold")(x)  # (B T, H, W, C)
    y = keras.layers.Conv2D(
        filters,
        s_kernel,
        strides=s_stride,
        padding="same",
        use_bias=use_bias,
        kernel_initializer="he_normal",
        name=f"{name}_space",
    )(y)
    y = finish(y, "space")
    y = UnfoldTime(name=f"{name}_unfold")([y, x])  # (B, T, H', W', f)
    height, width = y.shape[2], y.shape[3]
    y = keras.layers.Reshape((-1, height * width, filters), name=f"{name}_pixels")(y)  # (B, T, H' W', f)
    y = keras.layers.Conv2D(
        filters,
        (t_kernel, 1),
        strides=(t_stride, 1),
        padding="same",
        use_bias=use_bias,
        kernel_initializer="he_normal",
        name=f"{name}_time",
    )(y)
    y = finish(y, "time")
    return keras.layers.Reshape((-1, height, width, filters), name=f"{name}_frames")(y)  # (B, T', H', W', f)
