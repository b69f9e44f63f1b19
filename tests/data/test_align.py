"""Alignment: similarity fit on eyes and nose only, exact on transformed canonical faces."""

import numpy as np

from keras_s2v.data.face import align


def _rotate_scale_shift(points, angle, scale, shift):
    c, s = np.cos(angle), np.sin(angle)
    return (points @ (scale * np.array([[c, -s], [s, c]])).T + shift).astype(np.float32)


def test_similarity_transform_recovers_a_known_one():
    src = np.random.default_rng(0).uniform(0, 100, (20, 2))
    dst = _rotate_scale_shift(src, 0.3, 1.7, [5, -3])
    matrix = align.similarity_transform(src, dst)
    np.testing.assert_allclose(align.apply_transform(matrix, src), dst, atol=1e-3)
    np.testing.assert_allclose(align.apply_transform(align.invert_transform(matrix), dst), src, atol=1e-3)


def test_a_moved_canonical_face_aligns_back_exactly():
    face = _rotate_scale_shift(align.canonical_landmarks(1), -0.4, 300.0, [200, 120])
    image = np.zeros((600, 600, 3), np.uint8)
    crop, landmarks, _ = align.align_face(image, face, 112)
    assert crop.shape == (112, 112, 3)
    np.testing.assert_allclose(landmarks, align.canonical_landmarks(112), atol=1e-2)
    assert align.eye_alignment_error(landmarks, 112).max() < 1e-2


def test_the_mouth_does_not_move_the_crop():
    face = _rotate_scale_shift(align.canonical_landmarks(1), 0.1, 250.0, [100, 100])
    open_mouth = face.copy()
    open_mouth[48:68, 1] += 30  # jaw drops, lips part
    open_mouth[5:12, 1] += 30
    np.testing.assert_allclose(
        align.alignment_transform(face, 112), align.alignment_transform(open_mouth, 112), atol=1e-5
    )


def test_downscaled_crop_matches_direct_warp_on_smooth_image():
    import cv2

    yy, xx = np.mgrid[0:2000, 0:2000]
    image = np.stack([xx % 256, yy % 256, (xx + yy) // 16 % 256], -1).astype(np.uint8)
    image = cv2.GaussianBlur(image, (0, 0), 8)
    face = _rotate_scale_shift(align.canonical_landmarks(1), 0.05, 1200.0, [400, 380])
    crop, _, matrix = align.align_face(image, face, 112)
    direct = cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR)
    assert np.abs(crop.astype(int) - direct).mean() < 6
