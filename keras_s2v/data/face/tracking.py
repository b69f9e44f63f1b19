"""One face followed through a video: landmarks refitted from frame to frame, re-detected on a schedule, smoothed.

Detecting the face on every frame (BlazeFace, then dlib's predictor twice)
is the slow part of finding it. ``LandmarkTracker`` instead

* refits the landmarks in the box the last frame's landmarks give
  (``dlib_box_from_landmarks``: the second pass of ``FaceAnalyzer``, with
  the last frame as the first pass), one predictor run per frame;
* checks each refit: the box of the new landmarks must overlap the box it
  was fitted in, and the aligned upper face (eyes and nose, which speech
  does not move) must still look like the one at the last detection
  (normalised cross-correlation); a face that left, a cut or a fast turn
  fails, and the face is detected afresh on that frame;
* detects again every ``redetect_every`` frames, keeping the track when the
  detection is the same face (it then only confirms it) and starting a new
  one when it is not.

Each frame's fit jitters: dlib rounds landmarks to whole pixels and fits
every frame afresh, so a face pasted where they say shakes by about half a
pixel from frame to frame at 512 px. Heads move fast, though (the mouth of a
speaker crosses 60 px in a third of a second in the HDTF clips): a causal
smoother (an EMA, a One-Euro filter) that removes the shake lags the head by
pixels as soon as it moves, which is worse. ``TrackSmoother`` smooths with a
short look-ahead instead: each frame's alignment (``pose``: where the crop
sits, its size and angle) and the landmarks' shape in the crop are replaced
by a local quadratic fit over the frames around it (Savitzky-Golay, 7
frames, 3 ahead), which follows a moving head without lag and cuts the
shake to about a third. A re-dub reads its video ahead anyway; the cost is 3
frames of delay and of memory.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from keras_s2v.data.face import align
from keras_s2v.data.face.landmarks import Face, FaceAnalyzer, dlib_box_from_landmarks

TRACK_IOU = 0.3  # a detection overlapping the followed face this much is that face
REFIT_IOU = 0.6  # a refit whose landmarks' box overlaps its input box less has lost the face
MIN_LIKENESS = 0.6  # normalised cross-correlation of the upper face with the last detection's
TEMPLATE_SIDE = 32  # px of the aligned crop the likeness is measured on


@dataclasses.dataclass
class TrackerStats:
    """What the tracker did, frame by frame: how often it detected and why."""

    frames: int = 0
    detections: int = 0  # frames the detector ran on
    scheduled: int = 0  # of those, because ``redetect_every`` frames had passed
    lost: int = 0  # of those, because a refit failed its checks
    new_tracks: int = 0  # a face found with no track, or a different face than the one followed
    no_face: int = 0  # frames with no face


def pose(transform: np.ndarray, size: int) -> np.ndarray:
    """(centre x, centre y, log side, angle) of a frame -> crop similarity: where the crop's centre is in the
    frame, how many frame pixels its side spans (log) and its tilt (radians)."""
    inverse = align.invert_transform(transform).astype(np.float64)
    centre = inverse[:, :2] @ np.array([size / 2, size / 2]) + inverse[:, 2]
    scale = math.hypot(inverse[0, 0], inverse[1, 0])  # frame px per crop px
    return np.array([centre[0], centre[1], math.log(scale * size), math.atan2(inverse[1, 0], inverse[0, 0])])


def pose_transform(values: np.ndarray, size: int) -> np.ndarray:
    """``pose``'s inverse: the 2 x 3 frame -> crop similarity."""
    centre_x, centre_y, log_side, angle = values
    scale = math.exp(log_side) / size
    a, b = scale * math.cos(angle), scale * math.sin(angle)
    inverse = np.array([[a, -b, 0.0], [b, a, 0.0]])
    inverse[:, 2] = np.array([centre_x, centre_y]) - inverse[:, :2] @ np.array([size / 2, size / 2])
    return align.invert_transform(inverse)


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class LandmarkTracker:
    """The landmarks of one face through a video, frame by frame (``update``); see the module's docstring.

    redetect_every: frames between detections while the track holds (0:
    only when it is lost). ``new_track`` says whether the last ``update``
    started a new track (the first face, or another one after a loss): the
    frames before it are not the same face's, and smoothing starts afresh.
    Not thread-safe (the analyzer is not).
    """

    def __init__(self, analyzer: FaceAnalyzer, redetect_every: int = 10):
        if redetect_every < 0:
            raise ValueError(f"redetect_every must be 0 (only when lost) or more, got {redetect_every}")
        self.analyzer = analyzer
        self.redetect_every = redetect_every
        self.stats = TrackerStats()
        self.reset()

    def reset(self) -> None:
        """Forget the face: the next frame is detected afresh."""
        self.landmarks = None  # the last frame's landmarks (frame pixels)
        self.score = 0.0  # the detector's score at the last detection
        self.new_track = False
        self._template = None
        self._since_detection = 0

    def update(self, frame: np.ndarray) -> Face | None:
        """The followed face in this frame, or None when there is none."""
        self.stats.frames += 1
        self.new_track = False
        if self.landmarks is None:
            face = self._detect(frame)
        elif self.redetect_every and self._since_detection >= self.redetect_every:
            self.stats.scheduled += 1
            face = self._detect(frame)
        else:
            face = self._refit(frame)
            if face is None:
                self.stats.lost += 1
                face = self._detect(frame)
        if face is None:
            self.stats.no_face += 1
            self.reset()
            return None
        self._since_detection += 1
        return face

    def _refit(self, frame: np.ndarray) -> Face | None:
        """The landmarks refitted from the last frame's, or None when the checks say the face is lost."""
        box = dlib_box_from_landmarks(self.landmarks)
        landmarks = self.analyzer.predictor.predict(frame, box)
        if _box_iou(box, dlib_box_from_landmarks(landmarks)) < REFIT_IOU:
            return None
        if _likeness(self._template, _upper_face(frame, landmarks)) < MIN_LIKENESS:
            return None
        self.landmarks = landmarks
        return Face(dlib_box_from_landmarks(landmarks), self.score, landmarks)

    def _detect(self, frame: np.ndarray) -> Face | None:
        """Detect; keep following the same face (refitted from the track) or start on the largest."""
        self.stats.detections += 1
        self._since_detection = 0
        detections = self.analyzer.detect(frame)
        if not detections:
            return None
        if self.landmarks is not None:
            tracked = dlib_box_from_landmarks(self.landmarks)
            overlap, best = max(
                (_box_iou(tracked, _dlib_box(self.analyzer, d.box)), i) for i, d in enumerate(detections)
            )
            if overlap >= TRACK_IOU:  # the same face: refit from the track, if the refit holds
                landmarks = self.analyzer.predictor.predict(frame, tracked)
                if _box_iou(tracked, dlib_box_from_landmarks(landmarks)) < REFIT_IOU:
                    landmarks = None
                return self._start(frame, detections[best], landmarks, new_track=False)
        detection = max(detections, key=lambda d: d.width * d.height)
        return self._start(frame, detection, None, new_track=True)

    def _start(self, frame, detection, landmarks, new_track: bool) -> Face:
        if landmarks is None:
            landmarks = self.analyzer.landmarks_for_box(frame, detection.box)
        if new_track:
            self.stats.new_tracks += 1
            self.new_track = True
        self.landmarks, self.score = landmarks, detection.score
        self._template = _upper_face(frame, landmarks)
        return Face(detection.box, detection.score, landmarks)


class TrackSmoother:
    """Vectors in, one per frame, and each smoothed by a local polynomial over its neighbours out, ``ahead`` late.

    ``push(item, values, new_segment)``: ``values`` a vector (float), or None
    for a frame outside any segment (no face); ``new_segment`` starts a new
    one (no smoothing across it). It returns the (item, smoothed values) pairs
    now ready, in order: frame t once frame t + ``ahead`` has come or its
    segment has ended. ``flush()`` returns the rest. Frame t's value is a
    least-squares polynomial of degree ``degree`` through the segment's frames
    t - ``ahead`` .. t + ``ahead`` (fewer at a segment's ends, the degree
    lowered to fit), at t: Savitzky-Golay's filter, without lag on motion
    that a parabola follows over the window. ``ahead`` 0: no smoothing.
    """

    def __init__(self, ahead: int = 3, degree: int = 2):
        if ahead < 0 or degree < 0:
            raise ValueError(f"ahead and degree must be 0 or more, got {ahead} and {degree}")
        self.ahead, self.degree = ahead, degree
        self._segment: list[np.ndarray] = []  # the current segment's last 2 ahead + 1 values at most
        self._first = 0  # segment index of _segment[0]
        self._pending: list[tuple[object, int | None]] = []  # (item, segment index or None), not yet out
        self._weights: dict[tuple[int, int], np.ndarray] = {}

    def push(
        self, item, values: np.ndarray | None, new_segment: bool = False
    ) -> list[tuple[object, np.ndarray | None]]:
        ready = []
        if values is None or new_segment:
            ready = self._end_segment()
        if values is None:
            self._pending.append((item, None))
            return ready + self._ready()
        self._segment.append(np.asarray(values, np.float64))
        self._pending.append((item, self._first + len(self._segment) - 1))
        return ready + self._ready()

    def flush(self) -> list[tuple[object, np.ndarray | None]]:
        return self._end_segment()

    def _end_segment(self) -> list[tuple[object, np.ndarray | None]]:
        out = self._ready(final=True)
        self._segment, self._first = [], 0
        return out

    def _ready(self, final: bool = False) -> list[tuple[object, np.ndarray | None]]:
        out = []
        last = self._first + len(self._segment) - 1  # segment index of the newest value
        while self._pending:
            item, index = self._pending[0]
            if index is not None and not final and index + self.ahead > last:
                break
            out.append((item, None if index is None else self._smoothed(index, last)))
            self._pending.pop(0)
        drop = self._next_index() - self.ahead - self._first
        if drop > 0:  # values no frame still to come needs
            self._segment, self._first = self._segment[drop:], self._first + drop
        return out

    def _next_index(self) -> int:
        indices = [index for _, index in self._pending if index is not None]
        return indices[0] if indices else self._first + len(self._segment)

    def _smoothed(self, index: int, last: int) -> np.ndarray:
        before = min(self.ahead, index - self._first)
        after = min(self.ahead, last - index)
        window = np.stack(self._segment[index - before - self._first : index + after + 1 - self._first])
        return self._weights_for(before, after) @ window

    def _weights_for(self, before: int, after: int) -> np.ndarray:
        """The weights that give a degree-``degree`` least-squares fit's value at offset 0."""
        key = (before, after)
        if key not in self._weights:
            offsets = np.arange(-before, after + 1, dtype=np.float64)
            degree = min(self.degree, len(offsets) - 1)
            vandermonde = offsets[:, None] ** np.arange(degree + 1)
            self._weights[key] = np.linalg.pinv(vandermonde)[0]
        return self._weights[key]


def face_values(transform: np.ndarray, landmarks_crop: np.ndarray, size: int, previous: np.ndarray | None = None):
    """One frame's alignment and landmark shape as the vector ``TrackSmoother`` smooths: ``pose`` then the
    (68, 2) landmarks in the crop; the angle continued from ``previous``'s (no jump at +-pi)."""
    values = np.concatenate([pose(transform, size), np.asarray(landmarks_crop, np.float64).reshape(-1)])
    if previous is not None:
        values[3] = previous[3] + math.remainder(values[3] - previous[3], 2 * math.pi)
    return values


def face_from_values(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``face_values``' inverse: (2 x 3 transform, (68, 2) float32 landmarks in the crop)."""
    return pose_transform(values[:4], size), values[4:].reshape(-1, 2).astype(np.float32)


def _dlib_box(analyzer: FaceAnalyzer, box):
    """A detector box as the box dlib's predictor is fitted in (what ``dlib_box_from_landmarks`` gives)."""
    from keras_s2v.data.face.landmarks import dlib_box_from_blazeface

    if analyzer.detector_name == "dlib":
        return box
    return dlib_box_from_blazeface(box, "short_range" if analyzer.detector_name == "blazeface_short" else "full_range")


def _upper_face(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """float32 grey (TEMPLATE_SIDE / 2, TEMPLATE_SIDE) eyes-and-nose band of the aligned face, zero mean, unit norm."""
    import cv2

    crop = align.warp_face(frame, align.alignment_transform(landmarks, TEMPLATE_SIDE), TEMPLATE_SIDE, fast=True)
    band = cv2.cvtColor(crop[: TEMPLATE_SIDE // 2 + 2], cv2.COLOR_RGB2GRAY).astype(np.float32)
    band -= band.mean()
    norm = float(np.linalg.norm(band))
    return band / norm if norm > 1e-3 else np.zeros_like(band)


def _likeness(template: np.ndarray | None, patch: np.ndarray) -> float:
    """Normalised cross-correlation of two ``_upper_face`` bands (0 for a flat one)."""
    if template is None:
        return 1.0
    return float((template * patch).sum())
