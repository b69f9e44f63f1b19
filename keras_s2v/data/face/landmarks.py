"""68-point facial landmarks: a face detector followed by dlib's shape predictor.

dlib's ERT predictor (iBUG 68-point scheme) was trained on boxes from dlib's HOG
detector, and it is sensitive to where the box sits on the face. BlazeFace boxes
are larger and placed differently, so each BlazeFace box is first mapped to the
square box the HOG detector would most likely have produced (constants fitted by
``benchmarks/calibrate_landmark_box.py``), and, after a first prediction, the
box is re-derived from those landmarks the way HOG boxes relate to dlib's own
landmarks and the predictor runs once more. This gives dlib-HOG-pipeline
landmarks at BlazeFace speed.

Coordinates are OpenCV pixel coordinates (integer = pixel centre). dlib rounds
its output to whole pixels, so landmarks are integer-valued.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_s2v.data.face.detect import BlazeFaceDetector, Box, Detection, DlibHogDetector, as_rgb_uint8
from keras_s2v.data.face.landmark_scheme import LEFT_EYE, MOUTH, NUM_LANDMARKS, RIGHT_EYE
from keras_s2v.data.face.models import shape_predictor_path


@dataclass(frozen=True)
class BoxMapping:
    """A square box placed relative to a reference point and length.

    centre = ref + (dx, dy) * length;  side = size * length.
    """

    dx: float
    dy: float
    size: float

    def apply(self, ref_x: float, ref_y: float, length: float) -> Box:
        cx, cy = ref_x + self.dx * length, ref_y + self.dy * length
        half = 0.5 * self.size * length
        return (cx - half, cy - half, cx + half, cy + half)


# Fitted by benchmarks/calibrate_landmark_box.py on the 174 faces dlib's HOG detector
# finds in KERAS_S2V_MEDIA (8 stills + 11 evenly spaced frames of each of the 15
# clips; 23 sources). Reference = BlazeFace box centre, length = BlazeFace box width
# (its boxes are square); dx, dy are means, size the geometric mean of HOG side /
# BlazeFace side. RMS residual as a fraction of the HOG side (leave-one-source-out):
#   full_range:  centre 0.052 (0.053), side 0.090 (0.092)
#   short_range: centre 0.087 (0.090), side 0.141 (0.148)
# about as large as the HOG box's own wander relative to the face (next constant).
# References from BlazeFace's eye/mouth keypoints fitted no better (full range) or
# worse (short range), and a box-only mapping also serves boxes from a tracker.
# Landmarks from these boxes vs the HOG + predictor pipeline, mean over 68 points:
#   full_range 1.15 px (1.3 % of inter-ocular distance, max 11 %),
#   short_range 1.60 px (1.8 %, max 28 %); after the refinement pass
#   1.12 / 1.11 px (1.2 %, p95 2.7 %, max 5.5 %).
BLAZEFACE_TO_DLIB_BOX: dict[str, BoxMapping] = {
    "full_range": BoxMapping(dx=0.0004, dy=0.0026, size=0.9031),
    "short_range": BoxMapping(dx=0.0036, dy=-0.0486, size=0.9557),
}

# HOG box from dlib's own landmarks (same 174 faces): reference = mean of right-eye,
# left-eye and mouth centres; length = hypot(inter-eye distance, eye-midpoint-to-mouth
# distance). RMS residual: centre 0.049 (LOSO 0.050), side 0.090 (0.092) of HOG side.
LANDMARKS_TO_DLIB_BOX = BoxMapping(dx=0.0024, dy=0.0847, size=1.5737)


def landmark_reference(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(x, y, length) of the eye/mouth reference used by LANDMARKS_TO_DLIB_BOX.

    Eye and mouth centres average many points, so they are stable under
    expression and the small errors of any one landmark.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    right_eye, left_eye, mouth = pts[RIGHT_EYE].mean(0), pts[LEFT_EYE].mean(0), pts[MOUTH].mean(0)
    ref = (right_eye + left_eye + mouth) / 3.0
    eye_dist = float(np.linalg.norm(left_eye - right_eye))
    eye_mouth = float(np.linalg.norm((left_eye + right_eye) / 2.0 - mouth))
    return float(ref[0]), float(ref[1]), float(np.hypot(eye_dist, eye_mouth))


def dlib_box_from_landmarks(landmarks: np.ndarray) -> Box:
    """The HOG-detector-like box for a face with these 68 landmarks (for tracking/refining)."""
    return LANDMARKS_TO_DLIB_BOX.apply(*landmark_reference(landmarks))


def dlib_box_from_blazeface(box: Box, model: str = "full_range") -> Box:
    """Map a BlazeFace box to the box dlib's HOG detector would give for the same face."""
    x0, y0, x1, y1 = box
    return BLAZEFACE_TO_DLIB_BOX[model].apply((x0 + x1) / 2.0, (y0 + y1) / 2.0, x1 - x0)


class LandmarkPredictor:
    """dlib's 68-point shape predictor on a HOG-style box."""

    def __init__(self, model_file: str | Path | None = None) -> None:
        import dlib

        self._dlib = dlib
        path = Path(model_file) if model_file is not None else shape_predictor_path()
        if not path.is_file():
            raise FileNotFoundError(f"dlib shape predictor not found: {path}")
        self._predictor = dlib.shape_predictor(str(path))

    def predict(self, image: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) float32 landmarks for the face in ``box`` (a dlib-HOG-like box).

        dlib rectangles hold inclusive integer pixel indices, hence the +-0.5.
        """
        image = as_rgb_uint8(image)
        x0, y0, x1, y1 = box
        rect = self._dlib.rectangle(
            int(round(x0 + 0.5)), int(round(y0 + 0.5)), int(round(x1 - 0.5)), int(round(y1 - 0.5))
        )
        shape = self._predictor(image, rect)
        out = np.empty((NUM_LANDMARKS, 2), np.float32)
        for i in range(NUM_LANDMARKS):
            p = shape.part(i)
            out[i] = (p.x, p.y)
        return out


@dataclass(frozen=True, eq=False)  # eq on numpy fields would be ambiguous
class Face:
    """A face: detector ``box`` (x0, y0, x1, y1), detector ``score``, (68, 2) float32 ``landmarks``."""

    box: Box
    score: float
    landmarks: np.ndarray


class NoFaceError(ValueError):
    """An image in which no face was found, with the file and the problem."""

    def __init__(self, path, problem: str = "no face found"):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def largest_face(faces: list[Face]) -> Face:
    """The face with the largest box: the subject of a portrait."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


_DETECTORS = ("blazeface", "blazeface_short", "dlib")


class FaceAnalyzer:
    """Detect faces and predict their 68 landmarks.

    detector:
      ``"blazeface"``       BlazeFace full range (faces of any size); when it finds
                            nothing, BlazeFace short range is tried, because the
                            full-range model is least sure on faces filling the
                            frame (tight dataset crops score as low as ~0.45).
      ``"blazeface_short"`` BlazeFace short range only (fastest; large faces).
      ``"dlib"``            dlib HOG, the original pipeline (slow, frontal only).
    min_score: BlazeFace probability threshold (default 0.5), or for dlib the HOG
      ``adjust_threshold`` (default 0; negative finds more, less certain faces).
    refine: re-derive the box from the first landmarks and predict again
      (default: on for BlazeFace, off for dlib, whose boxes are already native).
      It removes the rare gross misfits of the first pass.
    predictor: share one loaded LandmarkPredictor (~0.6 s and ~100 MB each).
    Not thread-safe (LiteRT interpreter); use one instance per thread.
    """

    def __init__(
        self,
        detector: str = "blazeface",
        min_score: float | None = None,
        refine: bool | None = None,
        num_threads: int = 1,
        upsample: int = 0,
        max_faces: int | None = None,
        predictor: LandmarkPredictor | None = None,
    ) -> None:
        if detector not in _DETECTORS:
            raise ValueError(f"detector must be one of {_DETECTORS}, got {detector!r}")
        self.detector_name = detector
        self.refine = (detector != "dlib") if refine is None else bool(refine)
        self.max_faces = max_faces
        self._fallback: BlazeFaceDetector | None = None
        self._min_score = min_score
        self._num_threads = num_threads
        self._detector: BlazeFaceDetector | DlibHogDetector
        if detector == "dlib":
            self._detector = DlibHogDetector(
                upsample=upsample, adjust_threshold=0.0 if min_score is None else min_score
            )
        else:
            model = "full_range" if detector == "blazeface" else "short_range"
            self._detector = BlazeFaceDetector(
                model, min_score=0.5 if min_score is None else min_score, num_threads=num_threads
            )
        self.predictor = predictor if predictor is not None else LandmarkPredictor()

    def _detect(self, image: np.ndarray) -> list[tuple[Detection, str | None]]:
        """Detections paired with the BlazeFace model that made them (None for dlib)."""
        if isinstance(self._detector, DlibHogDetector):
            return [(d, None) for d in self._detector.detect(image)]
        dets = self._detector.detect(image)
        if dets or self.detector_name != "blazeface":
            return [(d, self._detector.model) for d in dets]
        if self._fallback is None:
            self._fallback = BlazeFaceDetector(
                "short_range",
                min_score=0.5 if self._min_score is None else self._min_score,
                num_threads=self._num_threads,
            )
        return [(d, "short_range") for d in self._fallback.detect(image)]

    def _landmarks(self, image: np.ndarray, box: Box, model: str | None) -> np.ndarray:
        dlib_box = box if model is None else dlib_box_from_blazeface(box, model)
        landmarks = self.predictor.predict(image, dlib_box)
        if self.refine:
            landmarks = self.predictor.predict(image, dlib_box_from_landmarks(landmarks))
        return landmarks

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Face boxes only, best score first (what tracking and the benchmark time alone)."""
        return [d for d, _ in self._detect(as_rgb_uint8(image))][: self.max_faces]

    def analyze(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image (grey accepted), best score first."""
        image = as_rgb_uint8(image)
        dets = self._detect(image)[: self.max_faces]
        return [Face(box=d.box, score=d.score, landmarks=self._landmarks(image, d.box, model)) for d, model in dets]

    def landmarks_for_box(self, image: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) landmarks for a box from this analyzer's detector (e.g. a tracked ``Face.box``).

        With ``"blazeface"`` the box is mapped as a full-range box; for one that
        came from the short-range fallback the refinement pass absorbs the
        difference.

        To track from landmarks instead, use
        ``analyzer.predictor.predict(image, dlib_box_from_landmarks(previous_landmarks))``.
        """
        image = as_rgb_uint8(image)
        model = (
            None
            if self.detector_name == "dlib"
            else ("full_range" if self.detector_name == "blazeface" else "short_range")
        )
        return self._landmarks(image, box, model)


__all__ = [
    "BLAZEFACE_TO_DLIB_BOX",
    "LANDMARKS_TO_DLIB_BOX",
    "BoxMapping",
    "Face",
    "FaceAnalyzer",
    "NoFaceError",
    "largest_face",
    "LandmarkPredictor",
    "dlib_box_from_blazeface",
    "dlib_box_from_landmarks",
    "landmark_reference",
]
