"""Layers that move between sequences ``(B, T, ...)`` and frames ``(B * T, ...)``.

Per-frame encoders and decoders run on all frames of all sequences at once
(one batch of ``B * T``: BatchNorm sees every frame, no per-step loop), and the
recurrent parts run on ``(B, T, ...)``. ``T`` may differ from batch to batch.
"""

from __future__ import annotations

import keras
from keras import ops


def _dims(x, start: int):
    """x's dimensions from ``start`` on: static where known, else read at run time (decoded JPEGs)."""
    return [ops.shape(x)[i] if x.shape[i] is None else x.shape[i] for i in range(start, len(x.shape))]


def fold_time(x):
    """(B, T, ...) -> (B * T, ...), sequence-major: row ``b * T + t``."""
    return ops.reshape(x, (-1, *_dims(x, 2)))


@keras.saving.register_keras_serializable(package="keras_s2v")
class FoldTime(keras.layers.Layer):
    """(B, T, ...) -> (B * T, ...), sequence-major: row ``b * T + t``."""

    def call(self, x):
        return fold_time(x)

    def compute_output_shape(self, input_shape):
        batch, steps = input_shape[:2]
        return (None if batch is None or steps is None else batch * steps, *input_shape[2:])


@keras.saving.register_keras_serializable(package="keras_s2v")
class UnfoldTime(keras.layers.Layer):
    """[(B * T, ...), reference (B, T, ...)] -> (B, T, ...)."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return ops.reshape(x, (shape[0], shape[1], *_dims(x, 1)))

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        return (*reference[:2], *x[1:])


@keras.saving.register_keras_serializable(package="keras_s2v")
class RepeatPerStep(keras.layers.Layer):
    """[(B, ...), reference (B, T, ...)] -> (B * T, ...): one copy per step, rows ordered like ``FoldTime``."""

    def call(self, inputs):
        x, reference = inputs
        return ops.repeat(x, ops.shape(reference)[1], axis=0)

    def compute_output_shape(self, input_shapes):
        return (None, *input_shapes[0][1:])


@keras.saving.register_keras_serializable(package="keras_s2v")
class SpatialPyramidPooling1D(keras.layers.Layer):
    """(B, T, C) -> (B, C * sum(levels)) for any T >= 1: max over each of ``n`` near-equal bins, n in ``levels``.

    He et al.'s spatial pyramid pooling along time: bin ``i`` of level ``n``
    covers steps ``[floor(i T / n), ceil((i + 1) T / n))``, never empty, so a
    sequence of any length gives the same-sized vector.
    """

    def __init__(self, levels=(1, 2, 4), **kwargs):
        super().__init__(**kwargs)
        self.levels = tuple(int(n) for n in levels)

    def call(self, x):
        steps = ops.shape(x)[1]
        position = ops.cast(ops.arange(steps), "float32")[None, :]  # (1, T)
        t = ops.cast(steps, "float32")
        pooled = []
        for n in self.levels:
            i = ops.cast(ops.arange(n), "float32")[:, None]  # (n, 1)
            inside = (position >= ops.floor(i * t / n)) & (position < ops.ceil((i + 1) * t / n))  # (n, T)
            masked = ops.where(inside[None, :, :, None], x[:, None, :, :], ops.cast(-1e9, x.dtype))  # (B, n, T, C)
            pooled.append(ops.reshape(ops.max(masked, axis=2), (-1, n * x.shape[-1])))  # (B, n C)
        return ops.concatenate(pooled, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * sum(self.levels))

    def get_config(self):
        return {**super().get_config(), "levels": list(self.levels)}


@keras.saving.register_keras_serializable(package="keras_s2v")
class RepeatAlongAxis(keras.layers.Layer):
    """(B, ...) -> a new axis at ``axis`` (>= 1) holding ``repeats`` copies: ``(B, 8, 8, C)`` -> ``(B, T, 8, 8, C)``.

    The glance model's fusion by duplication. A static ``repeats`` makes it a
    single TFLite ``TILE``, and it has no weights, so sub-models can rebuild it.
    """

    def __init__(self, repeats: int, axis: int = 1, **kwargs):
        super().__init__(**kwargs)
        if axis < 1:
            raise ValueError(f"axis must be >= 1 (the batch axis stays first), got {axis}")
        self.repeats = int(repeats)
        self.axis = int(axis)

    def call(self, x):
        x = ops.expand_dims(x, self.axis)
        multiples = [1] * len(x.shape)
        multiples[self.axis] = self.repeats
        return ops.tile(x, multiples)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        return tuple(shape[: self.axis] + [self.repeats] + shape[self.axis :])

    def get_config(self):
        return {**super().get_config(), "repeats": self.repeats, "axis": self.axis}
