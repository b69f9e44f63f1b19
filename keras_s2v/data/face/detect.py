"""Face detectors: MediaPipe BlazeFace on LiteRT (fast) and dlib's HOG (what the papers used).

BlazeFace post-processing follows MediaPipe's ``face_detection_*_range`` graphs
(mediapipe/modules/face_detection/face_detection.pbtxt and the short/full range
option files): SSD anchors with a fixed anchor size, box decoding scaled by the
input size, sigmoid scores with clipping at +-100, then *weighted* NMS
(IoU > 0.3 clusters are averaged, weighted by score). The input is letterboxed
(aspect kept, zero padding, centred) and normalised to [-1, 1].

Coordinates everywhere are OpenCV pixel coordinates: integer values are pixel
centres, so pixel ``i`` spans ``[i - 0.5, i + 0.5]``. A box ``(x0, y0, x1, y1)``
is the continuous extent of the face region in those coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from keras_s2v.data.face.models import model_path

Box = tuple[float, float, float, float]

#: BlazeFace keypoint order (subject's right/left, i.e. image left/right for a frontal face).
BLAZEFACE_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")


@dataclass(frozen=True, eq=False)  # eq on a numpy field would be ambiguous
class Detection:
    """One detected face; ``keypoints`` is (6, 2) float32 pixels or None (dlib HOG)."""

    box: Box
    score: float
    keypoints: np.ndarray | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]: ...


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Accept HxWx3 RGB (or HxW / HxWx1 grey, HxWx4 RGBA) uint8; return contiguous HxWx3."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image)


# --------------------------------------------------------------------------- BlazeFace


@dataclass(frozen=True)
class BlazeFaceConfig:
    """Options of MediaPipe's FaceDetectionOptions / SsdAnchorsCalculatorOptions."""

    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    num_boxes: int
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset: float = 0.5
    num_keypoints: int = 6
    score_clipping_thresh: float = 100.0


# face_detection_short_range.pbtxt / face_detection_full_range.pbtxt (mediapipe 0.10.x).
BLAZEFACE_CONFIGS: dict[str, BlazeFaceConfig] = {
    "short_range": BlazeFaceConfig(128, (8, 16, 16, 16), 1.0, 896),
    "full_range": BlazeFaceConfig(192, (4,), 0.0, 2304),
}


def ssd_anchors(config: BlazeFaceConfig) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], as MediaPipe's SsdAnchorsCalculator makes them.

    Consecutive layers with the same stride share one feature map; each layer
    adds ``len(aspect_ratios)`` anchors per cell plus one when
    ``interpolated_scale_aspect_ratio > 0``. With ``fixed_anchor_size: true``
    every anchor is 1x1, so only the centres matter. Order: y, x, anchor.
    """
    centres: list[np.ndarray] = []
    strides = config.strides
    layer = 0
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += len(config.aspect_ratios) + (1 if config.interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        fm = int(np.ceil(config.input_size / strides[layer]))
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        grid = np.stack([(xs + config.anchor_offset) / fm, (ys + config.anchor_offset) / fm], axis=-1)
        centres.append(np.repeat(grid.reshape(-1, 2), per_cell, axis=0))
        layer = last
    return np.concatenate(centres).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box against (N, 4) boxes, all (xmin, ymin, xmax, ymax)."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WEIGHTED non-max suppression.

    Take the best remaining detection, gather every remaining one whose IoU with
    it exceeds the threshold (itself included), and emit the score-weighted mean
    box and keypoints with the best detection's score. BlazeFace fires on many
    neighbouring anchors, so averaging them gives a steadier box than hard NMS.
    """
    order = np.argsort(-scores, kind="stable")
    out: list[tuple[np.ndarray, np.ndarray, float]] = []
    while order.size:
        best = order[0]
        overlap = _iou(boxes[best], boxes[order]) > iou_threshold
        members = order[overlap]
        if members.size == 0:  # degenerate (zero-area) box: keep it as is
            members = order[:1]
            overlap = np.zeros_like(overlap)
            overlap[0] = True
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kps = (keypoints[members] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, kps, float(scores[best])))
        order = order[~overlap]
    return out


class BlazeFaceDetector:
    """MediaPipe BlazeFace face detector run with LiteRT.

    ``model="full_range"`` (192x192 input, sparse model) finds faces down to a
    few percent of the frame; ``"short_range"`` (128x128) is faster and meant
    for faces filling a good part of the frame (selfie distance). Not
    thread-safe: use one instance per thread.
    """

    def __init__(
        self,
        model: str = "full_range",
        min_score: float = 0.5,
        iou_threshold: float = 0.3,
        num_threads: int = 1,
        model_file: str | Path | None = None,
    ) -> None:
        if model not in BLAZEFACE_CONFIGS:
            raise ValueError(f"model must be one of {sorted(BLAZEFACE_CONFIGS)}, got {model!r}")
        from ai_edge_litert.interpreter import Interpreter

        self.config = BLAZEFACE_CONFIGS[model]
        self.model = model
        self.min_score = float(min_score)
        self.iou_threshold = float(iou_threshold)
        path = Path(model_file) if model_file is not None else model_path(model)
        self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        (inp,) = self._interpreter.get_input_details()
        size = self.config.input_size
        if tuple(inp["shape"]) != (1, size, size, 3):
            raise ValueError(f"{path}: input shape {tuple(inp['shape'])}, expected (1, {size}, {size}, 3)")
        self._input_index = inp["index"]
        outputs = {int(d["shape"][-1]): d for d in self._interpreter.get_output_details()}
        if set(outputs) != {16, 1}:
            raise ValueError(f"{path}: unexpected outputs {[tuple(d['shape']) for d in outputs.values()]}")
        self._reg_index = outputs[16]["index"]
        self._cls_index = outputs[1]["index"]
        self.anchors = ssd_anchors(self.config)
        n_out = int(outputs[16]["shape"][1])
        if n_out != len(self.anchors) or n_out != self.config.num_boxes:
            raise ValueError(f"{path}: model has {n_out} boxes, anchors give {len(self.anchors)}")
        self._tensor = np.full((1, size, size, 3), -1.0, np.float32)

    def _letterbox(self, image: np.ndarray) -> tuple[float, float, float, float, float]:
        """Resize into the input tensor keeping aspect; return (sx, sy, off, pad_x, pad_y).

        Pixel-edge mapping: tensor_edge_x = (image_edge_x + off) * sx + pad_x.
        INTER_AREA rather than MediaPipe's bilinear warp, because frames are
        shrunk 5-20x here and bilinear would alias; images over 8x the input
        size are first halved with pyrDown, which is ~3x faster than INTER_AREA
        at such ratios (a 3511 px still: 15 ms instead of 41 ms).
        """
        size = self.config.input_size
        levels = 0
        while max(image.shape[:2]) >= 8 * size:
            image = cv2.pyrDown(image)  # output pixel i is centred on input pixel 2i
            levels += 1
        h, w = image.shape[:2]
        scale = size / max(h, w)
        nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (nw, nh), interpolation=interp)
        px, py = (size - nw) // 2, (size - nh) // 2
        t = self._tensor
        t.fill(-1.0)  # BORDER_ZERO: black padding, i.e. -1 after normalisation
        t[0, py : py + nh, px : px + nw] = resized.astype(np.float32) * (1.0 / 127.5) - 1.0
        factor = 2.0**levels
        return nw / w / factor, nh / h / factor, (factor - 1.0) / 2.0, float(px), float(py)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image of any size, best score first."""
        image = as_rgb_uint8(image)
        sx, sy, off, px, py = self._letterbox(image)
        it = self._interpreter
        it.set_tensor(self._input_index, self._tensor)
        it.invoke()
        raw = it.get_tensor(self._reg_index)[0]
        logits = it.get_tensor(self._cls_index)[0, :, 0]
        clip = self.config.score_clipping_thresh
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -clip, clip)))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        size = float(self.config.input_size)
        anchors = self.anchors[keep]
        r = raw[keep] / size  # x_scale = y_scale = w_scale = h_scale = input size; anchors are 1x1
        cx, cy = r[:, 0] + anchors[:, 0], r[:, 1] + anchors[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], axis=1)
        nk = self.config.num_keypoints
        kps = r[:, 4 : 4 + 2 * nk].reshape(-1, nk, 2) + anchors[:, None, :]
        h, w = image.shape[:2]
        dets = []
        for box, kp, score in weighted_nms(boxes, kps, scores[keep], self.iou_threshold):
            # normalised tensor coords -> tensor pixel edges -> image pixel edges -> pixel centres
            bx = (box[[0, 2]] * size - px) / sx - off - 0.5
            by = (box[[1, 3]] * size - py) / sy - off - 0.5
            kx = (kp[:, 0] * size - px) / sx - off - 0.5
            ky = (kp[:, 1] * size - py) / sy - off - 0.5
            if bx[1] <= -0.5 or by[1] <= -0.5 or bx[0] >= w - 0.5 or by[0] >= h - 0.5:
                continue  # entirely in the letterbox padding
            dets.append(
                Detection(
                    box=(float(bx[0]), float(by[0]), float(bx[1]), float(by[1])),
                    score=score,
                    keypoints=np.stack([kx, ky], axis=1).astype(np.float32),
                )
            )
        dets.sort(key=lambda d: -d.score)
        return dets


# --------------------------------------------------------------------------- dlib HOG


def dlib_rect_to_box(rect: object, sx: float = 1.0, sy: float = 1.0) -> Box:
    """dlib rectangle (inclusive integer pixel indices) -> continuous box.

    ``sx``/``sy`` are the factors the image was resized by before detection;
    pixel edges are divided by them so the box maps back exactly.
    """
    x0, y0 = rect.left(), rect.top()  # type: ignore[attr-defined]
    x1, y1 = rect.right() + 1, rect.bottom() + 1  # type: ignore[attr-defined]
    return (x0 / sx - 0.5, y0 / sy - 0.5, x1 / sx - 0.5, y1 / sy - 0.5)


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal face detector (the Speech2Vid papers' detector).

    Slow (~25 ms for a 512 px frame, ~60 ms for 1080p on one core) and misses
    faces under ~80 px (~40 px with ``upsample=1``), but its boxes are what
    dlib's 68-point predictor was trained on. Images larger than ``max_side`` are shrunk first: HOG cost grows
    with pixel count and a face filling a 3511 px still needs no such detail.
    """

    def __init__(self, upsample: int = 0, adjust_threshold: float = 0.0, max_side: int | None = 1024) -> None:
        import dlib

        self.upsample = int(upsample)
        self.adjust_threshold = float(adjust_threshold)
        self.max_side = max_side
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, best score first (keypoints are None)."""
        image = as_rgb_uint8(image)
        h, w = image.shape[:2]
        sx = sy = 1.0
        if self.max_side is not None and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
            sx, sy = nw / w, nh / h
        rects, scores, _ = self._detector.run(image, self.upsample, self.adjust_threshold)
        dets = [Detection(box=dlib_rect_to_box(r, sx, sy), score=float(s)) for r, s in zip(rects, scores)]
        dets.sort(key=lambda d: -d.score)
        return dets


def make_detector(name: str = "blazeface", **kwargs: object) -> FaceDetector:
    """``"blazeface"`` (full range), ``"blazeface_short"`` or ``"dlib"`` (HOG)."""
    if name == "blazeface":
        return BlazeFaceDetector("full_range", **kwargs)  # type: ignore[arg-type]
    if name == "blazeface_short":
        return BlazeFaceDetector("short_range", **kwargs)  # type: ignore[arg-type]
    if name == "dlib":
        return DlibHogDetector(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown detector {name!r}; use 'blazeface', 'blazeface_short' or 'dlib'")


__all__ = [
    "BLAZEFACE_CONFIGS",
    "BLAZEFACE_KEYPOINTS",
    "BlazeFaceConfig",
    "BlazeFaceDetector",
    "Box",
    "Detection",
    "DlibHogDetector",
    "FaceDetector",
    "as_rgb_uint8",
    "dlib_rect_to_box",
    "make_detector",
    "ssd_anchors",
    "weighted_nms",
]
