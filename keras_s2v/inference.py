"""Talking-face generation from a still: identity once, then one frame per 0.35 s audio window.

The library behind ``python -m keras_s2v.generate``: detect and align the face
exactly as ``prepare`` did, run the identity encoder once, slide the MFCC
window over the audio at 25 fps, run the per-window generator (and the
deblurring CNN), and stream frames into ffmpeg, so memory does not grow with
the audio's length.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from keras_s2v.data import audio as audio_lib
from keras_s2v.data import media
from keras_s2v.models.speech2vid import IMAGE_SIZE


def align_photo(path, analyzer=None, face_index: int | None = None, size: int = IMAGE_SIZE):
    """(aligned face uint8 (size, size, 3), source image, 2 x 3 transform) of the photo's face.

    The largest face, or the ``face_index``-th from the left.
    """
    from keras_s2v.data.face import FaceAnalyzer, NoFaceError, align, largest_face

    image = media.read_image(path)
    analyzer = analyzer or FaceAnalyzer()
    faces = analyzer.analyze(image)
    if not faces:
        raise NoFaceError(path)
    if face_index is None:
        face = largest_face(faces)
    else:
        ordered = sorted(faces, key=lambda f: f.box[0])
        if not 0 <= face_index < len(ordered):
            raise ValueError(f"{path}: --face_index {face_index} but {len(ordered)} face(s) found")
        face = ordered[face_index]
    crop, _, transform = align.align_face(image, face.landmarks, size)
    return crop, image, transform


def identity_faces(crops: list[np.ndarray], num_images: int) -> np.ndarray:
    """(1, S, S, 3 n) float input of the identity encoder from n aligned crops."""
    if len(crops) != num_images:
        raise ValueError(f"the model needs {num_images} face image(s), got {len(crops)}")
    return np.concatenate([c.astype(np.float32) / 255.0 for c in crops], axis=-1)[None]


def generate_frames(model, faces: np.ndarray, waveform: np.ndarray, deblur=None, batch_size: int = 32,
                    fps: float = audio_lib.FPS) -> Iterator[np.ndarray]:  # fmt: skip
    """Yield uint8 (S, S, 3) frames for the audio, one per 1/fps seconds.

    ``model`` is a ``Speech2Vid``: its identity encoder runs once on
    ``faces``; only the audio path and the decoder run per frame.
    """
    identity = {k: np.asarray(v) for k, v in model.identity_encoder(faces, training=False).items()}
    generator = model.frame_generator()
    keys = list(generator.input)
    total = audio_lib.num_frames(len(waveform), fps)
    for start in range(0, total, batch_size):
        count = min(batch_size, total - start)
        mfcc = np.stack([audio_lib.mfcc_from_pcm_window(audio_lib.pcm_window(waveform, start + i, fps))
                         for i in range(count)])  # fmt: skip
        inputs = {k: np.repeat(identity[k], count, axis=0) for k in keys if k != "mfcc"}
        inputs["mfcc"] = mfcc.astype(np.float32)
        frames = np.asarray(generator(inputs, training=False))
        if deblur is not None:
            frames = np.asarray(deblur(frames, training=False))
        yield from (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def write_video(frames, out, waveform: np.ndarray, size: int, fps: float = audio_lib.FPS,
                overwrite: bool = False, progress: bool = True) -> int:  # fmt: skip
    """Stream frames into ``out`` (mp4, audio muxed); returns the frame count."""
    from tqdm import tqdm

    total = audio_lib.num_frames(len(waveform), fps)
    with media.VideoWriter(out, size, size, fps, audio=waveform, overwrite=overwrite) as writer:
        for frame in tqdm(frames, total=total, unit="frame", disable=not progress):
            writer.write(frame)
    return writer.frames_written
