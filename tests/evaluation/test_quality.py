"""Per-frame quality metrics: skimage agreement, blur response on real faces, landmark metrics."""

from itertools import pairwise

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from keras_s2v.data.face.align import canonical_landmarks
from keras_s2v.evaluation import quality as q

SIGMAS = (0, 0.5, 1, 1.5, 2, 3)


def _frames(path, indices):
    cap = cv2.VideoCapture(str(path))
    frames = []
    for index in range(max(indices) + 1):
        ok, frame = cap.read()
        assert ok, f"{path} ended before frame {index}"
        if index in indices:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def _rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _blurred(image, sigma):
    return image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma)


def test_psnr_and_ssim_match_skimage_on_real_frames(media):
    first, later = _frames(media / "clips/hdtf_aoc.mp4", (0, 10))
    noise = np.random.default_rng(0).normal(0, 8, first.shape)
    noisy = np.clip(first + noise, 0, 255).astype(np.uint8)
    for real, fake in ((first, later), (first, noisy)):
        expected_psnr = peak_signal_noise_ratio(real, fake, data_range=255)
        expected_ssim = structural_similarity(
            real, fake, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert q.psnr(real, fake) == pytest.approx(expected_psnr, rel=1e-6)
        assert q.ssim(real, fake) == pytest.approx(expected_ssim, abs=1e-6)
        # floats in [0, 1] with data_range=1 give the same numbers
        assert q.psnr(real / 255, fake / 255, data_range=1) == pytest.approx(expected_psnr, rel=1e-6)
        assert q.ssim(real / 255, fake / 255, data_range=1) == pytest.approx(expected_ssim, abs=1e-6)
    assert 0.3 < q.ssim(first, noisy) < q.ssim(first, later) < 1  # the pairs differ in a sensible order
    assert q.psnr(first, first) == np.inf and q.ssim(first, first) == pytest.approx(1.0)
    assert q.lower_half(first).shape == (256, 512, 3)


@pytest.mark.parametrize("side", [None, 112])
def test_sharpness_falls_as_a_real_face_is_blurred(media, side):
    still = _rgb(media / "stills/woman_portrait.jpg")
    h, w = still.shape[:2]
    face = still[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]  # the face fills the centre half
    if side:  # evaluation runs on 112 px aligned crops
        face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    cpbd = [q.cpbd(_blurred(face, s)) for s in SIGMAS]
    fdbm = [q.fdbm(_blurred(face, s)) for s in SIGMAS]
    assert cpbd[0] > 0.15 and cpbd[-1] < 0.01, cpbd
    # strictly falling until nothing is left sharp
    assert all(b < a or a == b == 0 for a, b in pairwise(cpbd)), cpbd
    assert all(b < a for a, b in pairwise(fdbm)), fdbm
    assert q.cpbd(face / 255.0) == q.cpbd(face)  # floats in [0, 1] are the same image


def test_cpbd_of_real_stills_is_in_the_range_published_for_natural_images(media):
    # The CPBD paper (Narvekar & Karam, TIP 2011) gives its LIVE/TID results as
    # plots, without a printed value for reference images that we could check.
    # Printed values: the python-cpbd port of the authors' code (README at
    # pypi.org/project/cpbd) gets 0.753 for img4.bmp of LIVE's Gaussian-blur set,
    # a photograph; talking-face tables (ITU J-FET vol. 2 no. 4, 2021, p. 56,
    # Tables 1-3, with Vougioukas et al.'s models) give 0.18-0.49 for face video
    # frames of GRID, CREMA-D and Lombard GRID. Faces, mostly smooth skin, sit
    # below photographs full of texture: [0.15, 0.8] covers both.
    stills = sorted(p for p in (media / "stills").glob("*") if p.suffix in (".jpg", ".png"))
    values = {p.name: q.cpbd(_rgb(p)) for p in stills}
    assert len(values) >= 5
    assert all(0.15 <= v <= 0.8 for v in values.values()), values
    assert q.cpbd(cv2.GaussianBlur(_rgb(media / "stills/woman_smile.png"), (0, 0), 3)) < 0.02


def _stripes(contrast: int, ramp: int, size: int = 64) -> np.ndarray:
    """Vertical stripes, period 32 px: flat, a linear ramp of ``ramp`` steps up, flat, the same down."""
    up = np.linspace(0, contrast, ramp + 1)
    period = np.concatenate([np.zeros(6), up, np.full(16 - ramp, contrast), up[::-1][1:-1], np.zeros(10 - ramp)])
    row = 100 + np.resize(period, size)
    return np.repeat(np.tile(row, (size, 1))[..., None], 3, axis=-1).astype(np.uint8)


def test_cpbd_judges_edge_widths_against_the_contrast_dependent_jnb_width():
    # A ramp of r steps measures r px wide (2 for r = 1 or 2). w_JNB is 3 px above
    # 50 grey levels of block contrast and 5 px at or below: 4 px edges are blurred
    # at contrast 100 (P = 0.94) but not at contrast 40 (P = 0.36).
    assert q.cpbd(_stripes(100, ramp=2)) == 1.0
    assert q.cpbd(_stripes(100, ramp=4)) == 0.0
    assert q.cpbd(_stripes(40, ramp=4)) == 1.0
    assert q.cpbd(_stripes(40, ramp=6)) == 0.0
    # Widths are measured along rows at near-vertical edges only (as in the
    # authors' code): horizontal edges, however sharp, give nothing to measure.
    assert q.cpbd(_stripes(100, ramp=2).transpose(1, 0, 2)) == 0.0
    # Blocks tile the whole 112 px crop: sharp stripes only in the partial
    # right-hand blocks count, and so does the mouth half (56 x 112) alone.
    crop = np.full((112, 112, 3), 100, np.uint8)
    crop[:, 64:] = _stripes(100, ramp=2, size=112)[:, 64:]
    assert q.cpbd(crop) == 1.0
    crop[:, 64:] = _stripes(100, ramp=6, size=112)[:, 64:]
    assert q.cpbd(crop) == 0.0
    assert q.cpbd(_stripes(100, ramp=2, size=112)[56:]) == 1.0


def test_cpbd_refuses_tiny_images():
    with pytest.raises(ValueError, match="at least 16 px"):
        q.cpbd(np.zeros((8, 112, 3), np.uint8))
    assert q.cpbd(np.full((64, 64, 3), 128, np.uint8)) == 0.0  # no edges: nothing is sharp


def test_landmark_distance():
    face = canonical_landmarks(112).astype(np.float64)
    assert q.landmark_distance(face, face) == 0
    assert q.landmark_distance(face, face + [5.0, -3.0]) == pytest.approx(0, abs=1e-12)  # translation removed
    lower_lip = [55, 56, 57, 58, 59, 65, 66, 67]  # outer and inner lower lip, corners excluded
    moved = face.copy()
    moved[lower_lip, 1] += 2.0
    # the mouth mean moves 8 * 2 / 20 = 0.8 px: 8 points are 1.2 px off, 12 points 0.8 px
    assert q.landmark_distance(face, moved) == pytest.approx((8 * 1.2 + 12 * 0.8) / 20)
    frames = np.stack([face, face, face])
    assert q.landmark_distance(frames, np.stack([face, moved, face + 7])) == pytest.approx(0.96 / 3)
    with pytest.raises(ValueError):
        q.landmark_distance(face[q.MOUTH], face[q.MOUTH])


def test_eye_aspect_ratio_and_blinks():
    eye = np.array([[0, 0], [2, -1], [4, -1], [6, 0], [4, 1], [2, 1]], np.float64)  # p1..p6
    face = canonical_landmarks(112).astype(np.float64)
    face[36:42], face[42:48] = eye, eye + [20, 0]
    assert q.eye_aspect_ratio(face) == pytest.approx((2 + 2) / (2 * 6))
    assert q.eye_aspect_ratio(np.stack([face, face])).shape == (2,)

    fps, rng = 25, np.random.default_rng(0)
    still = 0.3 * (1 + rng.uniform(-0.03, 0.03, 10 * fps))  # 10 s, a still face with landmark jitter
    assert q.count_blinks(still, fps=fps) == 0
    assert q.count_blinks(np.full(250, 0.3), fps=fps) == 0
    blinking = still.copy()
    blinking[50:54] = 0.12  # two 160 ms blinks
    blinking[180:183] = 0.15
    assert q.count_blinks(blinking, fps=fps) == 2
    assert q.blink_rate(blinking, fps) == pytest.approx(12.0)  # 2 blinks in 10 s
    closed = still.copy()
    closed[100:150] = 0.1  # eyes shut for 2 s: not a blink
    assert q.count_blinks(closed, fps=fps) == 0
    assert q.count_blinks(blinking, threshold=0.1, fps=fps) == 0  # an explicit threshold is used as given


def test_mouth_opening_correlation():
    t = np.linspace(0, 4, 100)
    opening = 3 + 2 * np.abs(np.sin(3 * t)) + np.random.default_rng(1).normal(0, 0.2, t.size)
    assert q.mouth_opening_correlation(opening, opening) == pytest.approx(1.0)
    assert q.mouth_opening_correlation(opening, 2.5 * opening + 4) == pytest.approx(1.0)
    assert q.mouth_opening_correlation(opening, -opening) == pytest.approx(-1.0)
    assert np.isnan(q.mouth_opening_correlation(opening, np.full_like(opening, 5.0)))  # a still mouth


def test_silence_jitter_counts_mouth_motion_in_pauses_only():
    rms = np.array([0.3, 0.3, 0.001, 0.001, 0.001, 0.3])
    silent = q.silent_frames(rms)
    assert silent.tolist() == [False, False, True, True, True, False]
    still = np.zeros((6, 68, 2))
    assert q.silence_jitter(still, silent) == 0.0
    moving = still.copy()
    moving[:, q.MOUTH, 1] = np.array([0, 5, 0, 1, 0, 9])[:, None]  # 1 px twitches in the pause; speech moves more
    assert q.silence_jitter(moving, silent) == pytest.approx(1.0)
    assert np.isnan(q.silence_jitter(moving, np.zeros(6, bool)))
