"""Per-frame quality metrics as the talking-face papers define them.

Full reference: PSNR and SSIM (Wang et al., "Image quality assessment: from
error visibility to structural similarity", IEEE TIP 2004), with the settings
the papers use, i.e. those of ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

No reference (sharpness): CPBD (Narvekar & Karam, "A No-Reference Image Blur
Metric Based on the Cumulative Probability of Blur Detection (CPBD)", IEEE
TIP 2011), as Vougioukas et al. and Chen et al. report it, and FDBM (De &
Masilamani, "Image sharpness measure for blurred images in frequency
domain", Procedia Engineering 64, 2013).

Landmarks (68-point iBUG scheme): the mouth landmark distance LMD (Chen et
al., "Lip movements generation at a glance", ECCV 2018), the eye aspect ratio
(Soukupova & Cech, "Real-time eye blink detection using facial landmarks",
CVWW 2016) with a blink count, and the correlation of mouth openings.

Images are uint8 RGB (H, W, 3) or floats in [0, 1] (pass ``data_range=1`` to
PSNR/SSIM; the no-reference metrics scale floats by 255 themselves because
CPBD's thresholds are in 8-bit grey levels). Grey (H, W) images work too.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

MOUTH = slice(48, 68)  # 20 mouth points of the 68-point scheme (outer 48-59, inner 60-67)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)


# --- full reference --------------------------------------------------------


def psnr(real, fake, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; inf for identical images."""
    real, fake = _pair(real, fake)
    mse = np.mean((real - fake) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(real, fake, data_range: float = 255.0) -> float:
    """Mean SSIM (Wang et al. 2004), averaged over the colour channels.

    11 x 11 Gaussian window (sigma 1.5, truncated at 3.5 sigma), K1 = 0.01,
    K2 = 0.03, population (co)variances; the 5-pixel border the window hangs
    over is left out of the mean, as in scikit-image.
    """
    x, y = _pair(real, fake)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a):  # per channel: no smoothing across the channel axis
        return gaussian_filter(a, sigma=(1.5, 1.5, 0), truncate=3.5, mode="reflect")

    mx, my = blur(x), blur(y)
    vx, vy, vxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = (2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())


def lower_half(image):
    """The mouth region of an aligned face crop."""
    return image[image.shape[0] // 2 :]


def lip_region(frames):
    """The lip box (``align.lip_box``) of aligned face crops, (..., S, S, C) -> (..., S/2, S/2, C)."""
    from keras_s2v.data.face import align

    top, left, side = align.lip_box(np.shape(frames)[-2])
    return frames[..., top : top + side, left : left + side, :]


def _pair(real, fake):
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.shape != fake.shape:
        raise ValueError(f"shapes differ: {real.shape} vs {fake.shape}")
    return real, fake


# --- no reference: sharpness ----------------------------------------------


def _gray255(image) -> np.ndarray:
    """BT.601 luma on the 0-255 scale, rounded as MATLAB's rgb2gray does for uint8."""
    image = np.asarray(image)
    gray = image.astype(np.float64) * (255.0 if np.issubdtype(image.dtype, np.floating) else 1.0)
    if gray.ndim == 3:
        gray = gray[..., :3] @ np.array([0.299, 0.587, 0.114])
    return np.round(gray)


def _canny(gray: np.ndarray) -> np.ndarray:
    """Canny with MATLAB's defaults (edge(I, 'canny')), which the CPBD code uses.

    Gaussian sigma sqrt(2); the high threshold leaves 70 % of the pixels
    below it, the low one is 0.4 x the high one. OpenCV takes the thresholds in
    the gradient's own units, so they are set from its percentile.
    """
    smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), np.sqrt(2))
    dx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_REPLICATE)
    dy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, borderType=cv2.BORDER_REPLICATE)
    high = np.percentile(np.hypot(dx, dy), 70) * 16  # x16: keep precision in the int16 Canny wants
    dx, dy = (np.round(d * 16).astype(np.int16) for d in (dx, dy))
    return cv2.Canny(dx, dy, 0.4 * high, high, L2gradient=True) > 0


def _edge_widths(gray: np.ndarray) -> np.ndarray:
    """Marziliano edge widths at vertical edges, 0 elsewhere (CPBD's reference code).

    Edges: MATLAB's edge(I, 'Sobel', 2, 'vertical'): horizontal Sobel
    derivative (per pixel) above 2 grey levels, thinned to local maxima of its
    square. Width: only where the gradient points within 22.5 degrees of
    horizontal, the distance along the row between the intensity extrema on
    either side of the edge (Marziliano et al. 2002), capped at 101 a side.
    (The MATLAB code also measures pixels whose horizontal gradient is exactly
    0, as if rising; those few are left out here.)
    """
    w = gray.shape[1]
    bx2 = (cv2.Sobel(gray, cv2.CV_64F, 1, 0, borderType=cv2.BORDER_REPLICATE) / 8) ** 2
    pad = np.pad(bx2, 1, mode="edge")
    centre = pad[1:-1, 1:-1]
    thin = ((pad[1:-1, :-2] < centre) & (pad[1:-1, 2:] <= centre)) | (
        (pad[:-2, 1:-1] < centre) & (pad[2:, 1:-1] <= centre)
    )
    edges = (bx2 > 4) & thin
    edges[[0, -1]] = edges[:, [0, -1]] = False  # the reference skips the border

    gy, gx = np.gradient(gray)
    angle = np.degrees(np.arctan2(gy, gx))
    rising, falling = edges & (np.abs(angle) < 22.5), edges & (np.abs(angle) >= 157.5)

    step = np.diff(gray, axis=1)  # step[:, j] = I[:, j+1] - I[:, j]
    widths = np.zeros_like(gray)
    for edge_map, sign in ((rising, 1), (falling, -1)):
        mono = sign * step > 0  # steps that continue the edge's slope
        run_left, run_right = _runs(mono), _runs(np.ascontiguousarray(mono[:, ::-1]))[:, ::-1]
        rows, cols = np.nonzero(edge_map)
        right = np.where(cols + 1 <= w - 2, run_right[rows, np.minimum(cols + 1, w - 2)], 0)
        left = np.where(cols - 2 >= 0, run_left[rows, np.maximum(cols - 2, 0)], 0)
        widths[rows, cols] = np.minimum(left, 100) + np.minimum(right, 100) + 2
    return widths


def _runs(mask: np.ndarray) -> np.ndarray:
    """Length of the run of True ending at each position of each row (0 where False)."""
    index = np.arange(mask.shape[1])
    last_false = np.maximum.accumulate(np.where(mask, -1, index), axis=1)
    return index - last_false


MIN_CPBD_SIDE = 16


def cpbd(image) -> float:
    """Cumulative probability of blur detection (Narvekar & Karam 2011); higher = sharper.

    In each 64 x 64 block with Canny edge pixels on more than 0.2 % of it, every
    edge of width w is blurred with probability P = 1 - exp(-|w / w_JNB|^3.6),
    w_JNB = 5 for block contrast <= 50 grey levels, else 3. CPBD is the share
    of edges with P <= 63 % (P_JNB), read from a 1 %-bin histogram as in the
    authors' code, so an edge exactly at the JNB width (P = 63.2 %) counts as
    sharp. The 64 x 64 blocks tile the whole image, the last row and column
    of blocks narrower where the size is not a multiple of 64: the authors'
    code keeps whole blocks only, which would judge a 112 px face crop on its
    top-left block (eye and brow, never the mouth) and the 56 x 112 lower
    half on nothing.
    """
    gray = _gray255(image)
    if min(gray.shape) < MIN_CPBD_SIDE:
        raise ValueError(f"CPBD needs an image of at least {MIN_CPBD_SIDE} px a side, got {gray.shape}")
    canny, widths = _canny(gray), _edge_widths(gray)
    p_blur = []
    for i in range(0, gray.shape[0], 64):
        for j in range(0, gray.shape[1], 64):
            block = np.s_[i : i + 64, j : j + 64]
            if canny[block].sum() <= 0.002 * canny[block].size:
                continue
            w = widths[block][widths[block] > 0]
            w_jnb = 5.0 if np.ptp(gray[block]) <= 50 else 3.0
            p_blur.append(1 - np.exp(-(np.abs(w / w_jnb) ** 3.6)))
    p_blur = np.concatenate(p_blur) if p_blur else np.zeros(0)
    return float(np.mean(np.round(p_blur * 100) <= 63)) if p_blur.size else 0.0


def fdbm(image) -> float:
    """Frequency-domain blur measure (De & Masilamani 2013); higher = sharper.

    Share of Fourier coefficients with magnitude above 1/1000 of the largest
    (the DC term, in practice). The paper centres the spectrum first, which
    does not change the count. Since the DC term grows with the image's size
    and brightness, compare FDBM only between images of one size.
    """
    magnitude = np.abs(np.fft.fft2(_gray255(image)))
    return float(np.count_nonzero(magnitude > magnitude.max() / 1000) / magnitude.size)


# --- landmarks ----------------------------------------------------------------


def landmark_distance(real_landmarks, fake_landmarks) -> float:
    """Mouth landmark distance LMD (Chen et al. 2018, eq. 5), in the inputs' pixels.

    (68, 2) or (T, 68, 2) arrays. Each frame's 20 mouth points are taken
    relative to their own mean point, which removes the translation between
    the two faces; LMD is the mean Euclidean distance over points and frames.
    """
    real = np.asarray(real_landmarks, np.float64)
    fake = np.asarray(fake_landmarks, np.float64)
    if real.shape != fake.shape or real.shape[-2:] != (68, 2):
        raise ValueError(f"need matching (..., 68, 2) landmarks, got {real.shape} and {fake.shape}")
    real, fake = real[..., MOUTH, :], fake[..., MOUTH, :]
    real = real - real.mean(-2, keepdims=True)
    fake = fake - fake.mean(-2, keepdims=True)
    return float(np.linalg.norm(real - fake, axis=-1).mean())


def eye_aspect_ratio(landmarks) -> np.ndarray:
    """EAR (Soukupova & Cech 2016) of (..., 68, 2) landmarks, mean of both eyes.

    EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|) for each eye's six points.
    """
    landmarks = np.asarray(landmarks, np.float64)

    def ear(eye):
        pairs = ((1, 5), (2, 4), (0, 3))  # p2-p6, p3-p5, p1-p4
        p2_p6, p3_p5, p1_p4 = (np.linalg.norm(eye[..., i, :] - eye[..., j, :], axis=-1) for i, j in pairs)
        return (p2_p6 + p3_p5) / (2 * p1_p4)

    return (ear(landmarks[..., RIGHT_EYE, :]) + ear(landmarks[..., LEFT_EYE, :])) / 2


def count_blinks(ear, threshold: float | None = None, fps: float = 25.0, max_seconds: float = 0.5) -> int:
    """Blinks in an EAR series: runs of 1 .. ``max_seconds * fps`` frames below ``threshold``.

    The default threshold is 0.75 x the clip's 90th-percentile EAR, i.e. a drop
    of a quarter from the clip's own open-eye level. The EAR paper's absolute
    0.2 is about 2/3 of a typical open-eye EAR (0.31 for this project's
    canonical face), but that level moves with the person, the landmark
    scheme and the alignment. A closed eye drops far below either, while
    landmark jitter on a still face moves EAR by a few per cent, so a still
    face gives 0 blinks. Closures longer than ``max_seconds`` (eyes shut,
    looking down) and NaN frames (no landmarks) are not blinks; blinks
    typically last 0.1-0.4 s.
    """
    ear = np.asarray(ear, np.float64)
    if ear.size == 0 or np.all(np.isnan(ear)):
        return 0
    if threshold is None:
        threshold = 0.75 * np.nanpercentile(ear, 90)
    closed = np.concatenate([[0], (ear < threshold).astype(np.int8), [0]])
    starts, ends = np.nonzero(np.diff(closed) == 1)[0], np.nonzero(np.diff(closed) == -1)[0]
    lengths = ends - starts
    return int(np.count_nonzero(lengths <= max(1, round(max_seconds * fps))))


def blink_rate(ear, fps: float, threshold: float | None = None) -> float:
    """Blinks per minute of an EAR series sampled at ``fps``."""
    minutes = len(ear) / fps / 60
    return count_blinks(ear, threshold, fps=fps) / minutes if minutes > 0 else float("nan")


def mouth_opening_correlation(real_opening, fake_opening) -> float:
    """Pearson correlation of two mouth-opening series.

    NaN when either series is constant (a still face): the correlation is
    undefined there, and a 0 would read as "uncorrelated" rather than "no motion".
    """
    a, b = _pair(np.ravel(real_opening), np.ravel(fake_opening))
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


SILENCE_FRACTION = 0.1  # a frame is silent below this share of the clip's 95th-percentile RMS


def silent_frames(frame_rms: np.ndarray, fraction: float = SILENCE_FRACTION) -> np.ndarray:
    """(T,) bool: frames whose audio is quiet relative to the clip's loud frames (pauses between words)."""
    frame_rms = np.asarray(frame_rms, np.float64)
    return frame_rms < max(fraction * np.percentile(frame_rms, 95), 1e-4)


def silence_jitter(landmarks, silent) -> float:
    """Mean mouth-landmark movement (px per frame) between consecutive silent frames; NaN without such pairs.

    What a temporal model should keep low: the mouth at rest does not
    twitch while nobody speaks (Vougioukas et al.'s claim against frame-wise
    models). Measured on aligned crops, so head motion is mostly removed.
    """
    landmarks, silent = np.asarray(landmarks, np.float64), np.asarray(silent, bool)
    pairs = silent[1:] & silent[:-1]
    if not pairs.any():
        return float("nan")
    motion = np.linalg.norm(np.diff(landmarks[:, MOUTH], axis=0), axis=-1).mean(axis=-1)  # (T - 1,)
    return float(motion[pairs].mean())
