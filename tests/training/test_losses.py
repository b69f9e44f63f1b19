"""The trainers' losses (training.losses) against NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2v.training import losses
from keras_s2v.training.losses import FaceReconstructionLoss

rng = np.random.default_rng(0)


def _faces(seed):
    return np.random.default_rng(seed).random((3, 112, 112, 3), dtype=np.float32)


def test_with_no_weights_it_is_the_papers_l1():
    truth, generated = _faces(0), _faces(1)
    np.testing.assert_allclose(
        float(FaceReconstructionLoss()(truth, generated)), np.abs(truth - generated).mean(), rtol=1e-6
    )


def test_the_mouth_box_counts_extra_and_ssim_rewards_the_mouths_structure():
    truth = _faces(0)
    off_mouth, on_mouth = truth.copy(), truth.copy()
    off_mouth[:, :20] += 0.2  # forehead: outside the mouth box (rows 45..100)
    on_mouth[:, 60:80, 40:70] += 0.2 * (20 * 112) / (20 * 30)  # the same total error, inside it
    loss = FaceReconstructionLoss(mouth_weight=4.0)
    assert (
        abs(float(FaceReconstructionLoss()(truth, off_mouth)) - float(FaceReconstructionLoss()(truth, on_mouth))) < 1e-4
    )
    expected_extra = 4.0 * np.abs(truth[:, 45:101, 28:84] - on_mouth[:, 45:101, 28:84]).mean()
    np.testing.assert_allclose(float(loss(truth, on_mouth)) - float(loss(truth, off_mouth)), expected_extra, rtol=1e-4)
    ssim_loss = FaceReconstructionLoss(ssim_weight=1.0)
    blurred = tf.nn.avg_pool2d(truth, 5, 1, "SAME").numpy()
    ssim = tf.image.ssim(truth[:, 45:101, 28:84], blurred[:, 45:101, 28:84], max_val=1.0).numpy().mean()
    np.testing.assert_allclose(float(ssim_loss(truth, blurred)) - np.abs(truth - blurred).mean(), 1 - ssim, rtol=1e-4)
    config = FaceReconstructionLoss(2.0, 0.5).get_config()
    assert FaceReconstructionLoss.from_config(config).get_config() == config


def test_lower_face_l1_sees_only_the_mouth_half():
    real = np.zeros((2, 3, 8, 8, 3), np.float32)
    upper = real.copy()
    upper[..., :4, :, :] = 1.0
    lower = real.copy()
    lower[..., 4:, :, :] = 0.5
    loss = losses.LowerFaceL1()
    assert float(loss(real, upper)) == 0.0
    assert float(loss(real, lower)) == pytest.approx(0.5)


def test_correlation_loss_zero_when_features_change_together_and_bounded():
    loss = losses.CorrelationLoss(reduction=None)
    a = rng.standard_normal((3, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(loss(a, a), 0.0, atol=1e-6)
    np.testing.assert_allclose(loss(a, 2.5 * a + 4.0), 0.0, atol=1e-6)  # scale and offset: still perfectly correlated
    np.testing.assert_allclose(loss(a, -a), 2.0, atol=1e-6)
    values = np.asarray(loss(rng.standard_normal((500, 7, 5)), rng.standard_normal((500, 7, 5))))
    assert values.min() >= 0.0 and values.max() <= 2.0
    assert 0.8 < values.mean() < 1.2  # unrelated features: cosine near 0
    constant = np.ones((1, 7, 5), np.float32)  # no change over time: no correlation, and no NaN
    assert np.isfinite(loss(constant, constant)).all() and float(loss(constant, constant)[0]) == pytest.approx(1.0)


def test_flow_smoothness_and_photometric_losses():
    flow = np.zeros((2, 8, 8, 2), np.float32)
    assert float(losses.FlowSmoothness()(flow, flow)) == 0.0
    flow[:, :, 4:, 0] = 1.0  # one vertical edge in the x flow
    assert float(losses.FlowSmoothness()(flow, flow)) == pytest.approx(1.0 / 7 / 2)
    image = rng.random((2, 8, 8, 3)).astype(np.float32)
    assert float(losses.PhotometricLoss()(image, image)) == pytest.approx(1e-3, rel=1e-3)  # Charbonnier's floor
