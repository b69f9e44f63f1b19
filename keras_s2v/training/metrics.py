"""Image metrics as Keras metric functions (averaged per batch by compile)."""

from __future__ import annotations


def psnr(y_true, y_pred):
    """Peak signal-to-noise ratio in dB of images in [0, 1], per sample."""
    import tensorflow as tf

    return tf.image.psnr(y_true, y_pred, max_val=1.0)


def ssim(y_true, y_pred):
    """Structural similarity of images in [0, 1], per sample (Gaussian window, as skimage's gaussian_weights)."""
    import tensorflow as tf

    return tf.image.ssim(y_true, y_pred, max_val=1.0)
