"""Convolution blocks as functions with named layers (stable weight and TFLite tensor names)."""

from __future__ import annotations

import keras


def batch_norm(name: str):
    """Synchronized across replicas, so N replicas x B samples behave like one batch of N x B."""
    return keras.layers.BatchNormalization(synchronized=True, name=name)


def conv_bn_relu(x, filters: int, kernel_size, strides=1, padding: str = "same", name: str = "conv"):
    """Conv2D -> BatchNorm -> ReLU, layers named ``{name}``, ``{name}_bn``, ``{name}_relu``."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                            kernel_initializer="he_normal", name=name)(x)  # fmt: skip
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def deconv_bn_relu(x, filters: int, kernel_size, strides=2, padding: str = "same", name: str = "deconv"):
    """Conv2DTranspose -> BatchNorm -> ReLU (the decoder's upsampling step)."""
    x = keras.layers.Conv2DTranspose(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                                     kernel_initializer="he_normal", name=name)(x)  # fmt: skip
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def scaled(filters: int, width: float) -> int:
    """Filter count times a width multiplier (tiny configs), at least 4."""
    return max(4, int(round(filters * width)))
