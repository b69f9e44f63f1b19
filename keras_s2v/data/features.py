"""The TFRecord contract: one ``tf.train.Example`` per face-track segment.

This module is the only place that names feature keys, their dtypes and
shapes, and the shard file names. ``prepare`` writes through
``encode_example``; training and evaluation read through ``decode_example``.

A segment is ``T`` consecutive video frames (at ``audio.FPS``) of one face
track, with everything a model of this project needs about them:

==============================  ============  ===========================================
key                              dtype         shape / meaning
==============================  ============  ===========================================
clip/id, clip/source             bytes         clip key; source path relative to its input
clip/speaker, clip/split         bytes         speaker id; train / validation / test
track/id, track/segment          int64         track index in the clip, segment index
track/num_frames                 int64         T
frames/index                     int64 (T)     frame numbers in the 25 fps decoded video
frames/jpeg                      bytes (T)     aligned face crops, JPEG, S x S x 3 RGB
frames/size                      int64         S (crop size)
frames/landmarks                 float (T,68,2) 68 points in crop pixels
frames/source_landmarks          float (T,68,2) 68 points in source-frame pixels
frames/transform                 float (T,2,3) similarity source -> crop (cv2.warpAffine)
audio/pcm                        bytes         int16 mono, samples audio.segment_pcm_range
audio/mfcc                       float (12,L)  L = 4 T + 31; frame i: cols [4 i, 4 i + 35)
audio/log_mel                    float (T,4,128)
audio/offset_frames              int64         AV offset applied (audio shifted by it)
==============================  ============  ===========================================
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from keras_s2v.data import audio as audio_lib

NUM_LANDMARKS = 68

CLIP_ID = "clip/id"
CLIP_SOURCE = "clip/source"
SPEAKER = "clip/speaker"
SPLIT = "clip/split"
TRACK_ID = "track/id"
SEGMENT = "track/segment"
NUM_FRAMES = "track/num_frames"
FRAME_INDEX = "frames/index"
FRAMES = "frames/jpeg"
IMAGE_SIZE = "frames/size"
LANDMARKS = "frames/landmarks"
SOURCE_LANDMARKS = "frames/source_landmarks"
TRANSFORM = "frames/transform"
PCM = "audio/pcm"
MFCC = "audio/mfcc"
LOG_MEL = "audio/log_mel"
OFFSET_FRAMES = "audio/offset_frames"

SPLITS = ("train", "validation", "test")
JPEG_QUALITY = 95


@dataclasses.dataclass
class Segment:
    """One example, as NumPy arrays (what ``prepare`` builds)."""

    clip_id: str
    source: str
    speaker: str
    split: str
    track_id: int
    segment: int
    frame_index: np.ndarray  # (T,) int64
    frames: np.ndarray  # (T, S, S, 3) uint8 RGB
    landmarks: np.ndarray  # (T, 68, 2) float32, crop pixels
    source_landmarks: np.ndarray  # (T, 68, 2) float32, source pixels
    transform: np.ndarray  # (T, 2, 3) float32
    pcm: np.ndarray  # (N,) int16
    mfcc: np.ndarray  # (12, 4T + 31) float32
    log_mel: np.ndarray  # (T, 4, 128) float32
    offset_frames: int = 0

    @property
    def num_frames(self) -> int:
        return len(self.frame_index)

    def validate(self) -> None:
        """Raise ``ValueError`` if the arrays disagree with the contract."""
        t = self.num_frames
        size = self.frames.shape[1] if self.frames.ndim == 4 else -1
        expected = {
            "frames": (t, size, size, 3),
            "landmarks": (t, NUM_LANDMARKS, 2),
            "source_landmarks": (t, NUM_LANDMARKS, 2),
            "transform": (t, 2, 3),
            "mfcc": (audio_lib.MFCC_COEFFS, audio_lib.HOPS_PER_FRAME * (t - 1) + audio_lib.MFCC_WINDOW_HOPS),
            "log_mel": (t, audio_lib.HOPS_PER_FRAME, audio_lib.LOG_MEL_BANDS),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"segment {self.clip_id}/{self.track_id}: {name} shape {getattr(self, name).shape} != {shape}"
                )
        start, stop = audio_lib.segment_pcm_range(0, t)
        if self.pcm.shape != (stop - start,) or self.pcm.dtype != np.int16:
            raise ValueError(
                f"segment {self.clip_id}/{self.track_id}: "
                f"pcm {self.pcm.shape} {self.pcm.dtype} != ({stop - start},) int16"
            )
        if self.split not in SPLITS:
            raise ValueError(f"segment {self.clip_id}: unknown split {self.split!r}")


def _bytes(values):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _ints(values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64).ravel()))


def _floats(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def encode_jpeg(frame_rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", frame_rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def encode_example(segment: Segment) -> bytes:
    """Serialize a ``Segment`` into a ``tf.train.Example``."""
    import tensorflow as tf

    segment.validate()
    feature = {
        CLIP_ID: _bytes([segment.clip_id.encode()]),
        CLIP_SOURCE: _bytes([segment.source.encode()]),
        SPEAKER: _bytes([segment.speaker.encode()]),
        SPLIT: _bytes([segment.split.encode()]),
        TRACK_ID: _ints([segment.track_id]),
        SEGMENT: _ints([segment.segment]),
        NUM_FRAMES: _ints([segment.num_frames]),
        FRAME_INDEX: _ints(segment.frame_index),
        FRAMES: _bytes([encode_jpeg(f) for f in segment.frames]),
        IMAGE_SIZE: _ints([segment.frames.shape[1]]),
        LANDMARKS: _floats(segment.landmarks),
        SOURCE_LANDMARKS: _floats(segment.source_landmarks),
        TRANSFORM: _floats(segment.transform),
        PCM: _bytes([segment.pcm.astype("<i2").tobytes()]),
        MFCC: _floats(segment.mfcc),
        LOG_MEL: _floats(segment.log_mel),
        OFFSET_FRAMES: _ints([segment.offset_frames]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def feature_spec() -> dict:
    """``tf.io.parse_single_example`` spec of the contract."""
    import tensorflow as tf

    scalar_str = tf.io.FixedLenFeature([], tf.string)
    scalar_int = tf.io.FixedLenFeature([], tf.int64)
    seq_float = tf.io.FixedLenSequenceFeature([], tf.float32, allow_missing=True)
    return {
        CLIP_ID: scalar_str,
        CLIP_SOURCE: scalar_str,
        SPEAKER: scalar_str,
        SPLIT: scalar_str,
        TRACK_ID: scalar_int,
        SEGMENT: scalar_int,
        NUM_FRAMES: scalar_int,
        FRAME_INDEX: tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True),
        FRAMES: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True),
        IMAGE_SIZE: scalar_int,
        LANDMARKS: seq_float,
        SOURCE_LANDMARKS: seq_float,
        TRANSFORM: seq_float,
        PCM: scalar_str,
        MFCC: seq_float,
        LOG_MEL: seq_float,
        OFFSET_FRAMES: scalar_int,
    }


def decode_example(serialized, decode_frames: bool = True) -> dict:
    """Parse one serialized example into shaped tensors (works inside tf.data).

    Returns keys ``clip_id, source, speaker, split, track_id, segment,
    num_frames, frame_index, frames (T,S,S,3 uint8, or the JPEG strings when
    decode_frames=False), landmarks, source_landmarks, transform, pcm (float32
    in [-1, 1]), mfcc (12, L), log_mel (T, 4, 128), offset_frames``.
    """
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, feature_spec())
    t = parsed[NUM_FRAMES]
    size = parsed[IMAGE_SIZE]
    if decode_frames:
        frames = tf.map_fn(
            lambda b: tf.io.decode_jpeg(b, channels=3),
            parsed[FRAMES],
            fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
        )
        frames = tf.reshape(frames, tf.stack([t, size, size, 3]))
    else:
        frames = parsed[FRAMES]
    pcm = tf.io.decode_raw(parsed[PCM], tf.int16, little_endian=True)
    return {
        "clip_id": parsed[CLIP_ID],
        "source": parsed[CLIP_SOURCE],
        "speaker": parsed[SPEAKER],
        "split": parsed[SPLIT],
        "track_id": parsed[TRACK_ID],
        "segment": parsed[SEGMENT],
        "num_frames": t,
        "frame_index": parsed[FRAME_INDEX],
        "frames": frames,
        "landmarks": tf.reshape(parsed[LANDMARKS], tf.stack([t, NUM_LANDMARKS, 2])),
        "source_landmarks": tf.reshape(parsed[SOURCE_LANDMARKS], tf.stack([t, NUM_LANDMARKS, 2])),
        "transform": tf.reshape(parsed[TRANSFORM], tf.stack([t, 2, 3])),
        "pcm": tf.cast(pcm, tf.float32) / 32768.0,
        "mfcc": tf.reshape(parsed[MFCC], tf.stack([audio_lib.MFCC_COEFFS, -1])),
        "log_mel": tf.reshape(parsed[LOG_MEL], tf.stack([t, audio_lib.HOPS_PER_FRAME, audio_lib.LOG_MEL_BANDS])),
        "offset_frames": parsed[OFFSET_FRAMES],
    }


# --- Shards -------------------------------------------------------------------------------

SHARD_SUFFIX = ".tfrecord"


def shard_name(split: str, index: int, count: int) -> str:
    """``train-00000-of-00004.tfrecord``: the ``-%05d-of-%05d`` shard convention."""
    return f"{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def shard_pattern(data_dir, split: str) -> str:
    return str(Path(data_dir) / f"{split}-?????-of-?????{SHARD_SUFFIX}")


def list_shards(data_dir, split: str) -> list[str]:
    """The shard files of ``split`` in ``data_dir``, sorted."""
    return sorted(
        str(p)
        for p in Path(data_dir).glob(f"{split}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]{SHARD_SUFFIX}")
    )
