"""Face detection (BlazeFace / dlib HOG) and 68-point landmarks (dlib), see landmarks.py."""

from keras_s2v.data.face.landmark_scheme import (
    JAW,
    LANDMARK_GROUPS,
    LEFT_BROW,
    LEFT_EYE,
    MOUTH,
    MOUTH_INNER,
    MOUTH_OUTER,
    NOSE,
    NUM_LANDMARKS,
    RIGHT_BROW,
    RIGHT_EYE,
)
from keras_s2v.data.face.landmarks import Face, FaceAnalyzer, NoFaceError, largest_face

__all__ = [
    "Face",
    "FaceAnalyzer",
    "NoFaceError",
    "largest_face",
    "NUM_LANDMARKS",
    "JAW",
    "RIGHT_BROW",
    "LEFT_BROW",
    "NOSE",
    "RIGHT_EYE",
    "LEFT_EYE",
    "MOUTH_OUTER",
    "MOUTH_INNER",
    "MOUTH",
    "LANDMARK_GROUPS",
]
