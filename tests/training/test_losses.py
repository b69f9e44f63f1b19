"""The generators' reconstruction loss against NumPy references."""

import numpy as np
import tensorflow as tf

from keras_s2v.training.losses import FaceReconstructionLoss


def _faces(seed):
    return np.random.default_rng(seed).random((3, 112, 112, 3), dtype=np.float32)


def test_with_no_weights_it_is_the_papers_l1():
    truth, generated = _faces(0), _faces(1)
    np.testing.assert_allclose(float(FaceReconstructionLoss()(truth, generated)), np.abs(truth - generated).mean(), rtol=1e-6)


def test_the_mouth_box_counts_extra_and_ssim_rewards_the_mouths_structure():
    truth = _faces(0)
    off_mouth, on_mouth = truth.copy(), truth.copy()
    off_mouth[:, :20] += 0.2  # forehead: outside the mouth box (rows 45..100)
    on_mouth[:, 60:80, 40:70] += 0.2 * (20 * 112) / (20 * 30)  # the same total error, inside it
    loss = FaceReconstructionLoss(mouth_weight=4.0)
    assert abs(float(FaceReconstructionLoss()(truth, off_mouth)) - float(FaceReconstructionLoss()(truth, on_mouth))) < 1e-4
    expected_extra = 4.0 * np.abs(truth[:, 45:101, 28:84] - on_mouth[:, 45:101, 28:84]).mean()
    np.testing.assert_allclose(float(loss(truth, on_mouth)) - float(loss(truth, off_mouth)), expected_extra, rtol=1e-4)
    ssim_loss = FaceReconstructionLoss(ssim_weight=1.0)
    blurred = tf.nn.avg_pool2d(truth, 5, 1, "SAME").numpy()
    ssim = tf.image.ssim(truth[:, 45:101, 28:84], blurred[:, 45:101, 28:84], max_val=1.0).numpy().mean()
    np.testing.assert_allclose(float(ssim_loss(truth, blurred)) - np.abs(truth - blurred).mean(), 1 - ssim, rtol=1e-4)
    config = FaceReconstructionLoss(2.0, 0.5).get_config()
    assert FaceReconstructionLoss.from_config(config).get_config() == config
