"""Paste a generated face back into the full frame: inverse similarity warp + gradient-domain blending.

Speech2Vid re-dubs a video by aligning each generated face to its frame and
blending only the lower half of the face, from just below the eyes, where
the mouth and jaw move: eyes, brows, hair and background stay the source's
own. Poisson blending keeps the generated gradients inside the region and
takes its boundary colour from the frame, so lighting and skin tone
differences leave no seam: the result is the generated face plus a smooth
membrane, the harmonic interpolation into the region of the difference
(frame - generated) on its boundary.

Two ways to make it (``BLENDS``; ``paste_face(..., blend=)``, ``FaceBlender``):

``pyramid`` (the default) works in the aligned crop, where the mask is
drawn, enlarged to about the face's own size in the frame (``work_side``:
112 to 224 px, so the frame's detail along the mask's edge survives): the
frame is warped to that crop (low-passed with ``pyrDown`` first when it
shrinks), the boundary difference is filled into the mask by pull-push on
an image pyramid (normalised convolution down, confidence-weighted fill
up: an O(pixels) approximation of the membrane), and the corrected face is
warped once into the face's bounding box of the frame and mixed in through
the feathered mask. Its cost hardly depends on the frame's size, and the
mask, the feathering, the box and the weight pyramid are reused while the
face stays put (``generate``'s still photo).

``poisson`` is ``cv2.seamlessClone`` on the frame at a working scale of at
most ``max_work_side`` pixels: only its correction (blended minus
generated, a smooth membrane) is upsampled and added to the generated face
warped at full resolution. Several times slower; kept for comparison
(``--blend poisson``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_s2v.data.face import align

BLENDS = ("pyramid", "poisson")
DEFAULT_BLEND = "pyramid"
BLEND_HELP = (
    "How the generated lower face is blended into the frame: pyramid (pull-push membrane at the face's size, "
    "several times faster) or poisson (cv2.seamlessClone, the former default)."
)

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
    import cv2

    left, top, width, height = cv2.boundingRect(mask_crop)
    right, bottom = left + width, top + height
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]], np.float32)
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
    blend: str = DEFAULT_BLEND,
) -> np.ndarray:
    """The frame with the generated face's lower half blended in (``blend``: one of ``BLENDS``).

    frame: uint8 (H, W, 3). generated: uint8 (S, S, 3) aligned face.
    transform: the 2 x 3 alignment (frame -> crop) that made the crop.
    landmarks_crop: (68, 2) the frame face's landmarks in crop pixels.
    Returns a new frame; a face wholly outside the frame leaves it unchanged.
    One face pasted again and again (a video of a photo) is faster through one ``FaceBlender``.
    """
    return FaceBlender(blend).paste(frame, generated, transform, landmarks_crop)


def poisson_paste(
    frame: np.ndarray,
    generated: np.ndarray,
    transform: np.ndarray,
    landmarks_crop: np.ndarray,
    max_work_side: int = 256,
) -> np.ndarray:
    """``paste_face`` with ``blend="poisson"``: ``cv2.seamlessClone`` at <= ``max_work_side`` px."""
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


# --- The pyramid blend -------------------------------------------------------------------------

CONFIDENCE_GAIN = 4.0  # a coarse pixel counts as known once a quarter of what it averages is known
MAX_WORK_SCALE = 2.0  # the pyramid blend works at the face's own size in the frame, up to this x the crop's


@dataclasses.dataclass(eq=False)
class _Placement:
    """What pasting into one face needs besides its pixels: the same while the face stays put."""

    work: int  # side of the crop the membrane is made at (the generated face is resized to it)
    transform: np.ndarray  # 2 x 3, frame -> work crop
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the frame the pasted face covers
    to_box: np.ndarray  # 2 x 3, work crop -> box
    alpha: np.ndarray  # float32 (h, w): the feathered mask in the box, the generated face's weight
    beta: np.ndarray  # 1 - alpha, the frame's
    ring: np.ndarray  # float32 (W, W, 1): 1 on the pixels just outside the mask, where the frame is known
    on_ring: np.ndarray  # bool (W, W, 3)
    # Per pyramid level (index 0, the work crop itself, is None: there the ring's own values are kept):
    inverse_weights: list[np.ndarray | None]  # 1 / (the ring's share of each pixel), (h, w, 1)
    confidence: list[np.ndarray | None]  # how much of a pixel's value that level gives, (h, w)
    doubt: list[np.ndarray | None]  # 1 - confidence: how much the coarser level gives


def work_side(transform: np.ndarray, size: int, max_scale: float = MAX_WORK_SCALE) -> int:
    """The pyramid blend's crop side: about the face's own size in the frame, from ``size`` to ``max_scale`` x it.

    A face smaller than the crop is blended at the crop's size; a larger one
    at its own, so the frame's detail along the mask's edge is kept (in steps
    of 16 px, so a face that moves slightly keeps its work size).
    """
    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(transform, np.float64)[:, :2]))))  # crop px per frame px
    face = size / max(scale, 1e-6)
    return int(np.clip(16 * round(face / 16), size, round(max_scale * size)))


def _placement(
    frame_shape, transform: np.ndarray, landmarks_crop: np.ndarray, size: int, max_scale: float = MAX_WORK_SCALE
) -> _Placement | None:
    """None when there is nothing to paste (no mask, or a face outside the frame)."""
    import cv2

    work = work_side(transform, size, max_scale)
    zoom = np.float32(work / size)
    transform, landmarks_crop = transform * zoom, landmarks_crop * zoom
    mask = lower_face_mask(landmarks_crop, work)
    if not mask.any():
        return None
    alpha_crop = feathered(mask)
    crop_to_frame = align.invert_transform(transform)
    x0, y0, x1, y1 = _region((alpha_crop > 1 / 512).astype(np.uint8), crop_to_frame, frame_shape, margin=0.0)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    to_box = crop_to_frame.copy()
    to_box[:, 2] -= (x0, y0)
    alpha = cv2.warpAffine(alpha_crop, to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    ring = ((cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0) & (mask == 0)).astype(np.float32)
    weights = [ring]
    while weights[-1].shape[0] > 1 or weights[-1].shape[1] > 1:
        weights.append(cv2.pyrDown(weights[-1]))
    confidence = [np.minimum(CONFIDENCE_GAIN * w, 1.0) for w in weights[1:]]  # level 0 is the ring itself
    return _Placement(
        work=work,
        transform=transform,
        box=(x0, y0, x1, y1),
        to_box=to_box,
        alpha=alpha,
        beta=1.0 - alpha,
        ring=ring[..., None],
        on_ring=np.repeat(ring[..., None] > 0, 3, axis=-1),
        inverse_weights=[None] + [(1.0 / np.maximum(w, 1e-6))[..., None] for w in weights[1:]],
        confidence=[None, *confidence],
        doubt=[None] + [1.0 - c for c in confidence],
    )


def _pull_push(values: np.ndarray, placement: _Placement) -> np.ndarray:
    """``values`` (W, W, 3) known on the ring, filled smoothly everywhere else (the membrane).

    Pull: the ring's values and weights are averaged down the pyramid
    (normalised convolution with ever wider kernels). Push: from the
    coarsest level up, each pixel keeps its own level's average as far as
    it is confident of it and takes the upsampled coarser estimate for the
    rest. On the ring itself the result is ``values``.
    """
    import cv2

    pulled = [values * placement.ring]
    for _ in placement.inverse_weights[1:]:
        pulled.append(cv2.pyrDown(pulled[-1]))
    estimate = pulled[-1] * placement.inverse_weights[-1]
    for level in range(len(pulled) - 2, 0, -1):
        height, width = pulled[level].shape[:2]
        coarse = cv2.pyrUp(estimate, dstsize=(width, height)).reshape(pulled[level].shape)
        own = pulled[level] * placement.inverse_weights[level]
        estimate = cv2.blendLinear(own, coarse, placement.confidence[level], placement.doubt[level])
        estimate = estimate.reshape(pulled[level].shape)
    estimate = cv2.pyrUp(estimate, dstsize=values.shape[1::-1]).reshape(values.shape)
    np.copyto(estimate, values, where=placement.on_ring)  # level 0: the ring's own values, nothing else
    return estimate


def frame_crop(frame: np.ndarray, placement: _Placement) -> tuple[np.ndarray, bool]:
    """(the frame at the work crop, low-passed so the ring does not alias; whether it is black and white)."""
    crop = align.warp_face(frame, placement.transform, placement.work, fast=True)
    return crop, _is_grey(crop[::4, ::4])


def pyramid_paste(
    frame: np.ndarray, generated: np.ndarray, placement: _Placement, cropped: tuple[np.ndarray, bool] | None = None
) -> np.ndarray:
    """``paste_face`` with ``blend="pyramid"`` for a ``_placement`` of this face (``cropped``: ``frame_crop``'s,
    when it is known)."""
    import cv2

    work = placement.work
    background, grey = cropped if cropped is not None else frame_crop(frame, placement)
    if grey:  # a black-and-white photo gets a black-and-white mouth
        generated = np.repeat(cv2.cvtColor(generated, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)
    if generated.shape[0] != work:
        generated = cv2.resize(generated, (work, work), interpolation=cv2.INTER_CUBIC)
    membrane = _pull_push(cv2.subtract(background, generated, dtype=cv2.CV_32F), placement)
    corrected = cv2.add(generated, membrane, dtype=cv2.CV_8U)  # rounded and saturated
    x0, y0, x1, y1 = placement.box
    # Bilinear: the work crop is about the face's own size (the 112 px face was enlarged to it bicubically).
    warped = cv2.warpAffine(
        corrected, placement.to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    out = frame.copy()
    out[y0:y1, x0:x1] = cv2.blendLinear(warped, frame[y0:y1, x0:x1], placement.alpha, placement.beta)
    return out


class FaceBlender:
    """Pastes generated faces into frames with one of ``BLENDS``; keeps the last face's placement.

    ``generate`` pastes every frame into the same photo at the same place:
    the mask, its feathering, the face's box and the pull-push weights are
    made once, and so is the photo's crop while the same read-only array
    comes again (``inference.photo_identity`` makes it read-only). A face
    that moves (``redub``) gets a new placement per frame, which costs
    little (it is all at the work crop's size, at most 224 px).
    """

    def __init__(self, blend: str = DEFAULT_BLEND, max_work_side: int = 256, max_work_scale: float = MAX_WORK_SCALE):
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        self.blend = blend
        self.max_work_side = max_work_side  # poisson
        self.max_work_scale = max_work_scale  # pyramid
        self._key = None
        self._placement = None
        self._cropped = (None, None)  # (the frame, its frame_crop) while the same frame comes again

    def paste(
        self, frame: np.ndarray, generated: np.ndarray, transform: np.ndarray, landmarks_crop: np.ndarray
    ) -> np.ndarray:
        """``paste_face``: a new frame with the generated face's lower half blended in."""
        frame, generated = np.asarray(frame), np.asarray(generated, np.uint8)
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"the frame must be an RGB image (H, W, 3), got shape {frame.shape}")
        if generated.ndim != 3 or generated.shape[-1] != 3 or generated.shape[0] != generated.shape[1]:
            raise ValueError(f"the generated face must be a square RGB crop (S, S, 3), got shape {generated.shape}")
        if self.blend == "poisson":
            return poisson_paste(frame, generated, transform, landmarks_crop, self.max_work_side)
        transform = np.asarray(transform, np.float32)
        landmarks_crop = np.asarray(landmarks_crop, np.float32)
        key = (frame.shape, generated.shape, transform.tobytes(), landmarks_crop.tobytes())
        if key != self._key:
            self._placement = _placement(
                frame.shape, transform, landmarks_crop, generated.shape[0], self.max_work_scale
            )
            self._key, self._cropped = key, (None, None)
        if self._placement is None:
            return frame
        if frame.flags.writeable:  # it may change between calls
            return pyramid_paste(frame, generated, self._placement)
        if self._cropped[0] is not frame:  # the same read-only photo every frame (generate, stream): its crop once
            self._cropped = (frame, frame_crop(frame, self._placement))
        return pyramid_paste(frame, generated, self._placement, self._cropped[1])


def seam_strength(
    out: np.ndarray, frame: np.ndarray, transform: np.ndarray, landmarks_crop: np.ndarray, size: int = 112
) -> float:
    """How strongly a pasted face's edge shows: the mean gradient, in levels per pixel, of the change
    (``out`` - ``frame``, blurred over 2 px so texture averages out) in a band around the mask's edge
    (``landmarks_crop`` in a ``size`` px crop).

    A step where the blended region ends shows as a gradient there; a seamless blend fades in. For
    comparing blends of the same face (tests, ``benchmarks/realtime_bench.py``), not an absolute scale.
    """
    import cv2

    mask = cv2.warpAffine(lower_face_mask(landmarks_crop, size), align.invert_transform(transform), frame.shape[1::-1])
    mask = (mask > 127).astype(np.uint8)
    square = np.ones((3, 3), np.uint8)
    band = cv2.dilate(cv2.dilate(mask, square) - cv2.erode(mask, square), np.ones((9, 9), np.uint8)) > 0
    change = cv2.GaussianBlur(out.astype(np.float32) - frame, (0, 0), 2)
    gradient = np.hypot(cv2.Sobel(change, cv2.CV_32F, 1, 0), cv2.Sobel(change, cv2.CV_32F, 0, 1)).mean(-1)
    return float(gradient[band].mean()) if band.any() else 0.0


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
