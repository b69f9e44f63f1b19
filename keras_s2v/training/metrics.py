"""Image metrics as Keras metric functions (averaged per batch by compile), and the trainers' shared ones."""

from __future__ import annotations

import keras
from keras import ops


def _float32(*images):
    """Generated images of a mixed-precision model (bfloat16 or float16) beside float32 truth: both float32."""
    return [ops.cast(image, "float32") for image in images]


def psnr(y_true, y_pred):
    """Peak signal-to-noise ratio in dB of images in [0, 1], per sample."""
    import tensorflow as tf

    return tf.image.psnr(*_float32(y_true, y_pred), max_val=1.0)


def ssim(y_true, y_pred):
    """Structural similarity of images in [0, 1], per sample (Gaussian window, as skimage's gaussian_weights)."""
    import tensorflow as tf

    return tf.image.ssim(*_float32(y_true, y_pred), max_val=1.0)


def mean_psnr(real, fake):
    """PSNR in dB of images in [0, 1] (any leading axes: frames or clips), averaged over them: a trainer's tracker."""
    real, fake = _float32(real, fake)
    mse = ops.mean(ops.square(real - fake), axis=(-3, -2, -1))
    return ops.mean(10.0 * ops.log(1.0 / ops.maximum(mse, 1e-10)) / ops.log(10.0))


@keras.saving.register_keras_serializable(package="keras_s2v")
def offset_accuracy(y_true, y_pred):
    """The sync expert's: 1 where the nearest audio offset (``SyncNet``'s distances) is the in-sync one."""
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return ops.cast(ops.equal(ops.argmin(y_pred, axis=-1), labels), "float32")
