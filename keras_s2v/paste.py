"""Paste a generated face back into the full frame: inverse similarity warp + Poisson blending.

Speech2Vid re-dubs a video by aligning each generated face to its frame and
blending only the lower half of the face, from just below the eyes, where
the mouth and jaw move: eyes, brows, hair and background stay the source's
own. Poisson blending (``cv2.seamlessClone``) keeps the generated gradients
inside the region and takes its boundary colour from the frame, so lighting
and skin tone differences leave no seam.

The generated face is 112 x 112; a large face in a big photo spans far more
pixels. The Poisson solve runs at a working scale of at most
``max_work_side`` pixels and only its correction (blended minus generated,
a smooth membrane) is upsampled and added to the generated face warped at
full resolution: the same result as solving at full size, in a fraction of
the time.
"""

from __future__ import annotations

import numpy as np

from keras_s2v.data.face import align

JAW_LINE = slice(0, 17)
CHIN = slice(5, 12)
EYES = slice(36, 48)
NOSE_TIP = 30


def lower_face_mask(
    landmarks: np.ndarray, size: int, below_eyes: float = 0.05, chin_drop: float = 0.04, cheek_inset: float = 0.12
) -> np.ndarray:
    """uint8 (size, size) mask, 255 on the lower face of an aligned crop.

    ``landmarks`` (68, 2) in crop pixels. The region is the jaw line's hull
    from ``below_eyes`` x size under the lowest eye landmark down to the
    chin. The cheeks are drawn ``cheek_inset`` of the way in towards the
    nose, so the blend's boundary lies on skin, not on hair or background
    (which the generator does not reproduce), and the chin is lowered by
    ``chin_drop`` x size so a mouth opened wider than the frame's own fits.
    """
    import cv2

    landmarks = np.asarray(landmarks, np.float32)
    points = landmarks[JAW_LINE].copy()
    nose_x = landmarks[NOSE_TIP, 0]
    points[:, 0] += cheek_inset * (nose_x - points[:, 0])
    points[CHIN, 1] += chin_drop * size
    points = np.clip(points, 1, size - 2)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
    top = int(np.ceil(np.asarray(landmarks)[EYES, 1].max() + below_eyes * size))
    mask[: max(top, 0)] = 0
    return mask


def _region(mask_crop: np.ndarray, crop_to_frame: np.ndarray, frame_shape, margin: float = 0.15):
    """(x0, y0, x1, y1) of the frame covering the warped mask plus a margin, clipped to the frame."""
    ys, xs = np.nonzero(mask_crop)
    corners = np.array(
        [[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1], [xs.max() + 1, ys.max() + 1]],
        np.float32,
    )
    mapped = align.apply_transform(crop_to_frame, corners)
    low, high = mapped.min(0), mapped.max(0)
    pad = margin * (high - low).max() + 3
    height, width = frame_shape[:2]
    x0, y0 = np.clip(np.floor(low - pad).astype(int), 0, [width, height])
    x1, y1 = np.clip(np.ceil(high + pad).astype(int), 0, [width, height])
    return int(x0), int(y0), int(x1), int(y1)


def paste_face(
    frame: np.ndarray,
    generated: np.ndarray,
    transform: np.ndarray,
    landmarks_crop: np.ndarray,
    max_work_side: int = 256,
) -> np.ndarray:
    """The frame with the generated face's lower half Poisson-blended in.

    frame: uint8 (H, W, 3). generated: uint8 (S, S, 3) aligned face.
    transform: the 2 x 3 alignment (frame -> crop) that made the crop.
    landmarks_crop: (68, 2) the frame face's landmarks in crop pixels.
    Returns a new frame; a face wholly outside the frame leaves it unchanged.
    """
    import cv2

    size = generated.shape[0]
    mask_crop = lower_face_mask(landmarks_crop, size)
    if not mask_crop.any():
        return frame
    crop_to_frame = align.invert_transform(transform)
    x0, y0, x1, y1 = _region(mask_crop, crop_to_frame, frame.shape)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return frame
    width, height = x1 - x0, y1 - y0
    to_region = crop_to_frame.copy()
    to_region[:, 2] -= (x0, y0)
    scale = min(1.0, max_work_side / max(width, height))
    work_size = (max(8, round(width * scale)), max(8, round(height * scale)))

    region = frame[y0:y1, x0:x1]
    if _is_grey(region):  # a black-and-white photo gets a black-and-white mouth
        generated = np.repeat(cv2.cvtColor(generated, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)
    generated_full = cv2.warpAffine(
        generated, to_region, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if scale == 1.0:
        frame_work, generated_work = region, generated_full
    else:  # area-averaged, so fine texture does not alias into the Poisson boundary values
        frame_work, generated_work = (
            cv2.resize(x, work_size, interpolation=cv2.INTER_AREA) for x in (region, generated_full)
        )
    to_work = to_region * np.float32([[work_size[0] / width], [work_size[1] / height]])
    mask_work = (cv2.warpAffine(mask_crop, to_work, work_size, flags=cv2.INTER_LINEAR) > 127).astype(np.uint8) * 255
    mask_work[:2], mask_work[-2:], mask_work[:, :2], mask_work[:, -2:] = 0, 0, 0, 0  # seamlessClone needs a frame
    if not mask_work.any():
        return frame
    blended = _seamless_clone(generated_work, frame_work, mask_work).astype(np.float32)
    if scale == 1.0:
        pasted = blended
    else:  # upsample only the smooth Poisson correction; the face keeps its full-resolution warp
        correction = cv2.resize(
            blended - generated_work.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
        )
        pasted = generated_full.astype(np.float32) + correction
    # Feathered inside the solved region: no hard line under the eyes, no stair-steps from the 112 px mask.
    alpha = cv2.warpAffine(feathered(mask_crop), to_region, (width, height), flags=cv2.INTER_LINEAR)[..., None]
    alpha *= cv2.resize(mask_work, (width, height), interpolation=cv2.INTER_LINEAR)[..., None] / 255.0
    mixed = alpha * pasted + (1.0 - alpha) * region.astype(np.float32)
    out = frame.copy()
    out[y0:y1, x0:x1] = np.clip(mixed, 0, 255).round().astype(np.uint8)
    return out


def feathered(mask: np.ndarray, width: float = 0.03) -> np.ndarray:
    """float32 alpha in [0, 1]: ``mask`` shrunk and blurred over ``width`` x its size, 0 on its edge."""
    import cv2

    pixels = max(1, round(width * mask.shape[0]))
    inner = cv2.erode(mask, np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8))
    return cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), pixels / 1.5)


def _is_grey(image: np.ndarray) -> bool:
    channels = image.astype(np.int16)
    return bool(np.abs(channels - channels.mean(-1, keepdims=True)).max() <= 4)


def _seamless_clone(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``cv2.seamlessClone`` (NORMAL_CLONE) of same-size images, the source kept in place.

    seamlessClone centres the mask's bounding box on the given point, and
    rounding half its size can shift the source by a pixel. Two anchor
    pixels in opposite corners make the bounding box the whole image less
    its 1-pixel border, whose centre is known exactly; the anchors
    themselves are not composited (callers use ``mask``).
    """
    import cv2

    height, width = mask.shape
    anchored = mask.copy()
    anchored[1, 1] = anchored[height - 2, width - 2] = 255
    centre = (1 + (width - 2) // 2, 1 + (height - 2) // 2)
    return cv2.seamlessClone(source, target, anchored, centre, cv2.NORMAL_CLONE)


# --- Lips at a glance: generated lips into the aligned face ---------------------------------

LIP_FEATHER = 1 / 6  # outer part of the lip box over which the generated lips fade into the face


def lip_mask(side: int, feather: float = LIP_FEATHER) -> np.ndarray:
    """float32 (side, side) alpha: 1 inside, a raised-cosine ramp to ~0 over the outer ``feather`` of the box.

    Separable (the product of one ramp per axis), so the corners fade smoothly
    too; the edge pixels keep a small weight, the face beyond none.
    """
    ramp_width = max(feather * side, 1.0)
    distance = np.minimum(np.arange(side) + 0.5, side - 0.5 - np.arange(side))  # pixel centre to nearest edge
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.minimum(distance / ramp_width, 1.0))
    return np.outer(ramp, ramp).astype(np.float32)


def lips_into_face(face: np.ndarray, lips: np.ndarray, feather: float = LIP_FEATHER) -> np.ndarray:
    """The aligned face with generated lips blended into its ``align.lip_box``.

    face: float (S, S, 3) in [0, 1]. lips: float (L, L, 3), the lip frame a
    glance model made from ``align.lip_crops`` of this face. The lips are
    resized to the box (area-averaged when shrinking, bilinear when growing)
    and mixed in through ``lip_mask``, so the box's edges do not show.
    Returns a new float32 face; outside the box it is ``face`` unchanged.
    """
    import cv2

    face = np.asarray(face, np.float32)
    lips = np.asarray(lips, np.float32)
    top, left, side = align.lip_box(face.shape[0])
    interpolation = cv2.INTER_AREA if lips.shape[0] > side else cv2.INTER_LINEAR
    resized = cv2.resize(lips, (side, side), interpolation=interpolation)
    alpha = lip_mask(side, feather)[..., None]
    out = face.copy()
    box = out[top : top + side, left : left + side]
    out[top : top + side, left : left + side] = alpha * resized + (1.0 - alpha) * box
    return out
