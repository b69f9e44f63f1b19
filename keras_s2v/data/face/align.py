"""Face alignment: a similarity transform from eye and nose landmarks to a canonical face.

Only the eyes and the nose fix the transform, never the mouth or the jaw, so
that what the mouth does while speaking cannot move the crop (Speech2Vid
aligns the same way). The canonical face is the Procrustes mean of dlib
68-point shapes over real portraits and talking-face clips, eyes level,
scaled so that brows-to-chin spans 0.75 of the crop; it is stored in unit
coordinates and scaled to any crop size.
"""

from __future__ import annotations

import numpy as np

# (68, 2) canonical landmarks in a unit square crop (x right, y down).
# Laid out by hand, four (x, y) points a row (the formatter would put each point on its own line).
# fmt: off
CANONICAL_68 = np.array([
    [0.1321, 0.3193], [0.1364, 0.4149], [0.1475, 0.5101], [0.1646, 0.6041],
    [0.1954, 0.6929], [0.2456, 0.7708], [0.3153, 0.8357], [0.3995, 0.8842],
    [0.4952, 0.9000], [0.5917, 0.8847], [0.6762, 0.8373], [0.7474, 0.7747],
    [0.8003, 0.6976], [0.8314, 0.6081], [0.8486, 0.5130], [0.8617, 0.4175],
    [0.8681, 0.3218], [0.2047, 0.2149], [0.2481, 0.1698], [0.3101, 0.1515],
    [0.3762, 0.1561], [0.4373, 0.1815], [0.5633, 0.1795], [0.6248, 0.1543],
    [0.6910, 0.1500], [0.7531, 0.1702], [0.7951, 0.2177], [0.5000, 0.2648],
    [0.4992, 0.3234], [0.4986, 0.3817], [0.4975, 0.4419], [0.4290, 0.4987],
    [0.4624, 0.5092], [0.4976, 0.5187], [0.5332, 0.5096], [0.5672, 0.4997],
    [0.2755, 0.2888], [0.3144, 0.2632], [0.3618, 0.2630], [0.4034, 0.2926],
    [0.3599, 0.3015], [0.3134, 0.3027], [0.5977, 0.2924], [0.6386, 0.2627],
    [0.6850, 0.2632], [0.7228, 0.2891], [0.6865, 0.3026], [0.6410, 0.3017],
    [0.3651, 0.6495], [0.4124, 0.6084], [0.4629, 0.5883], [0.4980, 0.5969],
    [0.5337, 0.5885], [0.5851, 0.6092], [0.6334, 0.6493], [0.5876, 0.6971],
    [0.5378, 0.7178], [0.4989, 0.7216], [0.4602, 0.7175], [0.4106, 0.6962],
    [0.3896, 0.6483], [0.4627, 0.6264], [0.4979, 0.6284], [0.5341, 0.6264],
    [0.6097, 0.6485], [0.5354, 0.6632], [0.4989, 0.6668], [0.4627, 0.6626],
], dtype=np.float32)
# fmt: on

RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
ALIGNMENT_POINTS = np.r_[27:36, 36:48]  # nose bridge and base, both eyes


MOUTH = slice(48, 68)


def lip_box(size: int) -> tuple[int, int, int]:
    """``(top, left, side)`` of the mouth box in a ``size`` x ``size`` aligned crop: what lips-at-a-glance sees.

    Half the crop's side, centred on the canonical mouth: lips, their corners
    and the chin's upper part with room to open. Alignment fixes the face by
    eyes and nose only, so one box serves every frame and the crop never
    follows the mouth. At 112: rows 45..100, columns 28..83.
    """
    side = size // 2
    centre_x, centre_y = CANONICAL_68[MOUTH].mean(axis=0) * size
    top = int(np.clip(round(centre_y - side / 2), 0, size - side))
    left = int(np.clip(round(centre_x - side / 2), 0, size - side))
    return top, left, side


LIP_SIZE = 64  # side of the lip frames the glance model sees and makes


def lip_crops(frames, lip_size: int = LIP_SIZE, face_size: int | None = None):
    """(..., S, S, 3) aligned faces in [0, 1] -> (..., lip_size, lip_size, 3): ``lip_box``, bilinear.

    ``face_size``: S where the tensor's static shape does not say it (decoded JPEG frames).
    TensorFlow ops: the tf.data pipeline, the exported graph and the Keras backend crop alike.
    """
    import tensorflow as tf

    frames = tf.convert_to_tensor(frames, tf.float32)
    top, left, side = lip_box(face_size or int(frames.shape[-2]))
    crops = frames[..., top : top + side, left : left + side, :]
    lead = tf.shape(crops)[:-3]
    flat = tf.reshape(crops, tf.concat([[-1], [side, side, 3]], 0))
    resized = tf.image.resize(flat, (lip_size, lip_size), method="bilinear")
    return tf.reshape(resized, tf.concat([lead, [lip_size, lip_size, 3]], 0))


SYNC_CROPS = ("lower_half", "mouth")  # what of each aligned face the video encoder sees (``sync_region``)


def sync_region(face_size: int = 112, crop: str = "lower_half") -> tuple[int, int, int, int]:
    """(top, left, height, width) of the video input in a ``face_size`` crop.

    ``lower_half``: the lower half of the face (the original SyncNet, Wav2Lip's expert);
    ``mouth``: the mouth box of ``align.lip_box`` (56 x 56 at 112), lips and chin without
    the cheeks and background a small corpus lets the expert memorise speakers by.
    """
    if crop == "lower_half":
        return face_size // 2, 0, face_size - face_size // 2, face_size
    if crop == "mouth":
        top, left, side = lip_box(face_size)
        return top, left, side, side
    raise ValueError(f"sync crop must be one of {SYNC_CROPS}, got {crop!r}")


def canonical_landmarks(size: int) -> np.ndarray:
    """Canonical 68 points in pixels of a size x size crop."""
    return CANONICAL_68 * np.float32(size)


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """(..., 2, 2): centres of the right and left eye (subject's right first)."""
    return np.stack([landmarks[..., RIGHT_EYE, :].mean(-2), landmarks[..., LEFT_EYE, :].mean(-2)], axis=-2)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) src -> dst.

    Umeyama's closed form, without reflection. Returns the 2 x 3 matrix that
    cv2.warpAffine takes.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    u, d, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    rotation = u @ e @ vt
    scale = np.trace(np.diag(d) @ e) / (src_c**2).sum() * len(src)
    a = scale * rotation
    return np.hstack([a, (mu_dst - a @ mu_src)[:, None]]).astype(np.float32)


def alignment_transform(landmarks: np.ndarray, size: int) -> np.ndarray:
    """2 x 3 similarity mapping a face's landmarks (source pixels) into the canonical crop."""
    return similarity_transform(landmarks[ALIGNMENT_POINTS], canonical_landmarks(size)[ALIGNMENT_POINTS])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a 2 x 3 affine matrix."""
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def invert_transform(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine matrix (crop -> source, for pasting back)."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2].astype(np.float32)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112):
    """Crop an aligned size x size face.

    Returns (crop uint8, landmarks in crop pixels, 2 x 3 transform). Pixels
    outside the source image are filled by edge replication so a face near the
    border does not get black wedges.
    """
    matrix = alignment_transform(landmarks, size)
    return warp_face(image, matrix, size), apply_transform(matrix, landmarks), matrix


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int = 112, fast: bool = False) -> np.ndarray:
    """The size x size crop a 2 x 3 alignment ``matrix`` maps ``image`` to (``align_face``'s crop).

    ``fast``: low-pass a face that shrinks by halving its region with ``pyrDown``
    (until it shrinks by less than 1.5 x) instead of an area resize to the
    exact scale: several times cheaper, for crops that only need to be free of
    aliasing (paste-back's boundary, tracking's likeness check), not the very
    pixels ``prepare`` writes.
    """
    import cv2

    warp_image, warp_matrix = (_halved if fast else _prefilter)(image, matrix, size)
    return cv2.warpAffine(
        warp_image, warp_matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _prefilter(image: np.ndarray, matrix: np.ndarray, size: int):
    """Area-downscale the face's region first when the crop shrinks it a lot.

    warpAffine samples bilinearly, which aliases (jagged edges, moire) when a
    500 px face becomes 112 px; resizing the region with INTER_AREA first and
    warping at about unit scale avoids it. Returns (image, matrix) to warp.
    """
    import cv2

    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale >= 0.8:
        return image, matrix
    corners = apply_transform(
        invert_transform(matrix), np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float32)
    )
    height, width = image.shape[:2]
    x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 2, 0, [width, height])
    x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 2, 0, [width, height])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image, matrix
    new_w, new_h = max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale))
    region = cv2.resize(image[y0:y1, x0:x1], (new_w, new_h), interpolation=cv2.INTER_AREA)
    fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
    # source p = region_point / f + origin, so crop = A (q / f + origin) + t.
    a = matrix[:, :2] / np.array([fx, fy], np.float32)[None, :]
    t = matrix[:, :2] @ np.array([x0, y0], np.float32) + matrix[:, 2]
    return region, np.hstack([a, t[:, None]]).astype(np.float32)


def _halved(image: np.ndarray, matrix: np.ndarray, size: int):
    """``_prefilter`` by ``pyrDown``: the face's region halved while the crop shrinks it more than 1.5 x."""
    import cv2

    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale >= 2 / 3:
        return image, matrix
    corners = apply_transform(
        invert_transform(matrix), np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float32)
    )
    height, width = image.shape[:2]
    x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 4, 0, [width, height])
    x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 4, 0, [width, height])
    if x1 - x0 < 16 or y1 - y0 < 16:
        return image, matrix
    region, factor = image[y0:y1, x0:x1], 1
    while scale * factor < 2 / 3 and min(region.shape[:2]) >= 16:
        region, factor = cv2.pyrDown(region), factor * 2  # pixel i of the result is centred on pixel 2 i
    # source p = factor q + origin, so crop = A (factor q + origin) + t.
    a = matrix[:, :2] * np.float32(factor)
    t = matrix[:, :2] @ np.array([x0, y0], np.float32) + matrix[:, 2]
    return region, np.hstack([a, t[:, None]]).astype(np.float32)


def eye_alignment_error(aligned_landmarks: np.ndarray, size: int) -> np.ndarray:
    """Distance (pixels) of each aligned eye centre from its canonical position, (..., 2)."""
    canonical = eye_centres(canonical_landmarks(size))
    return np.linalg.norm(eye_centres(aligned_landmarks) - canonical, axis=-1)
