"""Index groups of the iBUG 300-W 68-point landmark scheme (dlib's predictor, FAN, ...).

"Right"/"left" are the subject's: RIGHT_EYE (36-41) appears on the image's left
in a frontal, unmirrored face. Groups are ``range`` objects so they index numpy
arrays directly (``landmarks[MOUTH]``) and support ``len``/``in``.
"""

from __future__ import annotations

NUM_LANDMARKS = 68

JAW = range(0, 17)
RIGHT_BROW = range(17, 22)
LEFT_BROW = range(22, 27)
NOSE = range(27, 36)
RIGHT_EYE = range(36, 42)
LEFT_EYE = range(42, 48)
MOUTH_OUTER = range(48, 60)
MOUTH_INNER = range(60, 68)
MOUTH = range(48, 68)

LANDMARK_GROUPS: dict[str, range] = {
    "jaw": JAW,
    "right_brow": RIGHT_BROW,
    "left_brow": LEFT_BROW,
    "nose": NOSE,
    "right_eye": RIGHT_EYE,
    "left_eye": LEFT_EYE,
    "mouth_outer": MOUTH_OUTER,
    "mouth_inner": MOUTH_INNER,
}

__all__ = [
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
