"""Paste-back: the lower-face mask, and the reduced-scale Poisson solve against the full-size one."""

import cv2
import numpy as np

from keras_s2v.data.face import align
from keras_s2v.paste import lower_face_mask, paste_face


def _scene(face_side: int, frame_side: int = 900):
    """A smooth frame, a textured generated face, and the transform that puts the crop at ``face_side`` px."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:frame_side, :frame_side] / frame_side
    frame = np.stack([120 + 60 * xx, 90 + 40 * yy, 140 - 30 * xx * yy], -1).astype(np.uint8)
    generated = cv2.GaussianBlur(rng.integers(0, 255, (112, 112, 3), np.uint8), (0, 0), 3)
    generated = cv2.normalize(generated, None, 40, 220, cv2.NORM_MINMAX)  # soft, like an L1-trained face
    scale = 112 / face_side
    offset = (frame_side - face_side) / 2
    transform = np.float32([[scale, 0, -offset * scale], [0, scale, -offset * scale]])  # frame -> crop
    return frame, generated, transform, align.canonical_landmarks(112)


def test_mask_covers_mouth_and_jaw_but_not_the_eyes():
    landmarks = align.canonical_landmarks(112)
    mask = lower_face_mask(landmarks, 112) > 0
    for point in landmarks[48:68]:  # the mouth
        assert mask[int(point[1]), int(point[0])]
    assert not mask[: int(landmarks[36:48, 1].max()) + 1].any()  # nothing at or above the eyes
    assert not mask[:, :10].any() and not mask[:, -10:].any()  # cheeks drawn in off the crop's background


def test_reduced_scale_blend_matches_the_full_size_solve():
    frame, generated, transform, landmarks = _scene(face_side=600)
    full = paste_face(frame, generated, transform, landmarks, max_work_side=4000).astype(float)
    fast = paste_face(frame, generated, transform, landmarks).astype(float)
    changed = np.abs(full - frame).max(-1) > 0
    assert changed.sum() > 100_000  # the face region was blended in
    assert np.abs(fast - full)[changed].mean() < 1.5
    near = cv2.dilate(changed.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # the upsampled mask's edge
    assert np.array_equal(fast[~near], frame[~near].astype(float))  # nothing else touched


def test_a_face_that_differs_only_in_brightness_blends_into_the_frame_itself():
    """Poisson blending keeps the source's gradients: the frame's own face, 25 levels brighter,
    blends back to the frame exactly, which also proves the face is pasted without a shift."""
    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (300, 300, 3), np.uint8), (0, 0), 2)
    frame = cv2.normalize(frame, None, 40, 200, cv2.NORM_MINMAX)
    transform = np.float32([[1, 0, -90], [0, 1, -80]])  # the crop is frame[80:192, 90:202]
    brighter = (frame[80:192, 90:202].astype(int) + 25).astype(np.uint8)
    out = paste_face(frame, brighter, transform, align.canonical_landmarks(112))
    changed_region = lower_face_mask(align.canonical_landmarks(112), 112) > 0
    inside = np.zeros((300, 300), bool)
    inside[80:192, 90:202] = cv2.erode(changed_region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert np.abs(out.astype(int) - frame)[inside].mean() < 1.0
    shifted = np.abs(np.roll(out, 1, axis=0).astype(int) - frame)[inside].mean()
    assert shifted > 3.0  # a one-pixel shift would show


def test_small_faces_blend_at_full_resolution_and_blends_are_seamless():
    frame, generated, transform, landmarks = _scene(face_side=150)
    out = paste_face(frame, generated, transform, landmarks)
    region = np.abs(out.astype(int) - frame).max(-1) > 0
    edge = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~region
    inside_edge = region & ~cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    # Poisson blending takes the boundary from the frame: no step at the mask's edge.
    assert np.abs(out[inside_edge].astype(int) - frame[inside_edge]).mean() < 6
    assert edge.any()


def test_a_face_outside_the_frame_leaves_it_unchanged():
    frame, generated, transform, landmarks = _scene(face_side=200)
    transform = transform.copy()
    transform[:, 2] += 5000  # the crop maps far outside the frame
    assert np.array_equal(paste_face(frame, generated, transform, landmarks), frame)


def _smooth_face(size: int = 112) -> np.ndarray:
    rng = np.random.default_rng(1)
    face = cv2.GaussianBlur(rng.uniform(0, 1, (size, size, 3)).astype(np.float32), (0, 0), 4)
    return cv2.normalize(face, None, 0.1, 0.9, cv2.NORM_MINMAX)


def test_lips_cut_from_the_face_paste_back_into_the_same_face():
    from keras_s2v.paste import lips_into_face

    face = _smooth_face()
    top, left, side = align.lip_box(112)
    lips = cv2.resize(face[top : top + side, left : left + side], (64, 64), interpolation=cv2.INTER_LINEAR)
    pasted = lips_into_face(face, lips)
    assert pasted.dtype == np.float32 and pasted.shape == face.shape
    assert np.abs(pasted - face).max() < 0.01  # only the resize there and back differs
    outside = np.ones(face.shape[:2], bool)
    outside[top : top + side, left : left + side] = False
    np.testing.assert_array_equal(pasted[outside], face[outside])


def test_pasted_lips_fade_in_without_a_seam():
    from keras_s2v.paste import lip_mask, lips_into_face

    mask = lip_mask(56)
    assert mask[18:38, 18:38].min() == 1.0 and mask.max() == 1.0  # the inner part is the generated lips alone
    assert mask[0].max() < 0.01 and mask[:, 0].max() < 0.01  # the edge is the face's
    np.testing.assert_array_equal(mask, mask.T)
    face = np.full((112, 112, 3), 0.5, np.float32)
    pasted = lips_into_face(face, np.ones((64, 64, 3), np.float32))
    top, left, side = align.lip_box(112)
    column = pasted[top - 1 : top + side + 1, left + side // 2, 0]
    assert np.abs(np.diff(column)).max() < 0.1  # a ramp, not a step from 0.5 to 1
    assert pasted[top + side // 2, left + side // 2, 0] == 1.0
