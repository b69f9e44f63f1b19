"""Lip-sync scores from the trained sync expert (``python -m keras_s2v.train --experiment syncnet``).

For a clip of aligned face crops and its audio, every frame ``t`` gets a video
embedding (lower faces of ``t - 2 .. t + 2``) and an audio embedding (the 0.2 s
of MFCC those frames span). The distance curve over offsets ``o`` is the mean
distance between video ``t`` and audio ``t + o`` over the frames where both
exist; as in SyncNet's evaluation (Chung & Zisserman 2016, and the LSE-D /
LSE-C of Prajwal et al. 2020):

* ``offset``: the ``o`` of the minimum, in frames (positive: the sound comes late);
* ``min_distance`` (LSE-D): the minimum, lower is better synced;
* ``confidence`` (LSE-C): median minus minimum over offsets, higher is better.

Distances are between unit embeddings ([0, 2]): this network's scale, not comparable
with numbers from the original SyncNet.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from keras_s2v.data import audio as audio_lib

MAX_OFFSET = 15  # frames searched either way (+-0.6 s), as SyncNet's evaluation


@dataclasses.dataclass
class SyncResult:
    offset: int
    min_distance: float
    confidence: float
    offsets: np.ndarray  # (2M+1,) the offsets searched
    distances: np.ndarray  # (2M+1,) mean distance at each

    def to_dict(self) -> dict:
        return {
            "offset": self.offset,
            "min_distance": self.min_distance,
            "confidence": self.confidence,
            "offsets": self.offsets.tolist(),
            "distances": [round(float(d), 5) for d in self.distances],
        }


def lips(frames: np.ndarray, crop: str = "lower_half") -> np.ndarray:
    """(T, S, S, 3) uint8 RGB aligned crops -> (T, H, W) float32 grey ``crop`` in [0, 1].

    The NumPy twin of ``pipeline.lips`` (tf.image.rgb_to_grayscale weights).
    """
    from keras_s2v.data.face.align import sync_region

    top, left, height, width = sync_region(frames.shape[1], crop)
    grey = np.asarray(frames, np.float32) @ np.array([0.2989, 0.587, 0.114], np.float32) / 255.0
    return grey[:, top : top + height, left : left + width]


def lip_windows(frames: np.ndarray, crop: str = "lower_half") -> np.ndarray:
    """(T, H, W, 5): frames t-2..t+2 on channels; the first and last frames repeat at the clip's ends."""
    grey = lips(frames, crop)
    half = audio_lib.SYNC_FRAMES // 2
    padded = np.concatenate([grey[:1].repeat(half, 0), grey, grey[-1:].repeat(half, 0)])
    return np.stack([padded[i : i + len(grey)] for i in range(audio_lib.SYNC_FRAMES)], axis=-1)


def mfcc_windows(mfcc: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, 12, 20) sync windows from an ``audio.mfcc_sequence``-layout MFCC (12, 4 T + 31)."""
    starts = np.asarray(audio_lib.sync_mfcc_slice(np.arange(num_frames))[0])
    columns = starts[:, None] + np.arange(audio_lib.SYNC_MFCC_HOPS)[None, :]
    return np.ascontiguousarray(np.transpose(mfcc[:, columns], (1, 0, 2)).astype(np.float32))


def distance_curve(video: np.ndarray, audio: np.ndarray, max_offset: int = MAX_OFFSET) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, mean distance between video t and audio t + o over the frames where both exist)."""
    n = len(video)
    # Keep two thirds of the clip at every offset: a mean over fewer frames is noisy enough to make
    # spurious minima at the ends of the search.
    reach = max(0, min(max_offset, n // 3))
    offsets = np.arange(-reach, reach + 1)
    distances = np.empty(len(offsets))
    for i, o in enumerate(offsets):
        v = video[max(0, -o) : n - max(0, o)]
        a = audio[max(0, o) : n + min(0, o)]
        distances[i] = np.linalg.norm(v - a, axis=-1).mean()
    return offsets, distances


def score_curve(offsets: np.ndarray, distances: np.ndarray) -> SyncResult:
    best = int(np.argmin(distances))
    return SyncResult(
        int(offsets[best]), float(distances[best]), float(np.median(distances) - distances[best]), offsets, distances
    )


class SyncExpert:
    """A trained sync expert: embeddings of lower-face windows and of audio, and clip scores."""

    def __init__(self, workdir, batch_size: int = 64):
        from keras_s2v import pretrained, workdirs

        self.workdir = Path(pretrained.resolve(workdir))
        try:
            kind = json.loads((self.workdir / workdirs.CONFIG_FILE).read_text())["model"]["kind"]
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{self.workdir}: not a training workdir ({error})") from None
        if kind != "syncnet":
            raise ValueError(f"{self.workdir}: a {kind} model, not a sync expert (train one with --experiment syncnet)")
        model = workdirs.load_trained_model(self.workdir)
        self.video_encoder, self.audio_encoder = model.video_encoder, model.audio_encoder
        self.face_size = int(model.face_size)
        self.crop = getattr(model, "crop", "lower_half")
        self.batch_size = batch_size
        self.data_parameters = _recorded_parameters(self.workdir)

    def video_embeddings(self, frames: np.ndarray) -> np.ndarray:
        """(T, S, S, 3) uint8 aligned crops -> (T, D)."""
        if frames.shape[1:] != (self.face_size, self.face_size, 3):
            raise ValueError(
                f"frames of shape {frames.shape[1:]}, the sync expert takes "
                f"{self.face_size} x {self.face_size} RGB crops"
            )
        return np.asarray(
            self.video_encoder.predict(lip_windows(frames, self.crop), batch_size=self.batch_size, verbose=0)
        )

    def audio_embeddings(self, mfcc: np.ndarray, num_frames: int) -> np.ndarray:
        """MFCC sequence (12, >= 4 T + 27) -> (T, D)."""
        return np.asarray(
            self.audio_encoder.predict(mfcc_windows(mfcc, num_frames), batch_size=self.batch_size, verbose=0)
        )

    def score(self, frames: np.ndarray, mfcc: np.ndarray, max_offset: int = MAX_OFFSET) -> SyncResult:
        """Offset, min distance and confidence of aligned crops against their MFCC sequence."""
        n = len(frames)
        return score_curve(*distance_curve(self.video_embeddings(frames), self.audio_embeddings(mfcc, n), max_offset))

    def score_waveform(self, frames: np.ndarray, waveform: np.ndarray, max_offset: int = MAX_OFFSET) -> SyncResult:
        """The same with the audio as a waveform whose sample 0 is frame 0's start."""
        return self.score(frames, audio_lib.mfcc_sequence(waveform, len(frames)), max_offset)


def _recorded_parameters(workdir: Path) -> dict | None:
    from keras_s2v import workdirs

    try:
        return json.loads((workdir / workdirs.DATA_FILE).read_text()).get("data_parameters")
    except (OSError, ValueError):
        return None


def planted_offset_accuracy(expert: SyncExpert, clips, shifts=(0, 3, -3), max_offset: int = MAX_OFFSET) -> dict:
    """How often the expert finds the offset planted by delaying each clip's audio by ``shifts`` frames.

    ``clips``: objects with ``frames`` (T, S, S, 3) uint8 and ``pcm`` in the
    contract's layout (``evaluate_lib.Clip``). Returns overall and per-shift
    accuracy and every (clip, shift, found offset, confidence).
    """
    rows = []
    for clip in clips:
        waveform = np.asarray(clip.pcm, np.float32)[-audio_lib.MFCC_WINDOW_OFFSET :]  # sample 0 = frame 0
        video = expert.video_embeddings(clip.frames)
        for shift in shifts:
            mfcc = audio_lib.mfcc_sequence(audio_lib.delayed(waveform, shift), len(clip.frames))
            result = score_curve(*distance_curve(video, expert.audio_embeddings(mfcc, len(clip.frames)), max_offset))
            rows.append(
                {
                    "clip": getattr(clip, "clip_id", ""),
                    "frames": len(clip.frames),
                    "shift": shift,
                    "found": result.offset,
                    "confidence": round(result.confidence, 4),
                }
            )
    by_shift = {str(s): float(np.mean([r["found"] == s for r in rows if r["shift"] == s])) for s in shifts}
    # Relative: the found offset moves by the planted shift from where it was on the clip as given,
    # which stays meaningful when a real clip is itself out of sync by a frame or two.
    found = {(r["clip"], r["shift"]): r["found"] for r in rows}
    relative = [found[c, s] - found[c, 0] == s for c, s in found if s != 0 and (c, 0) in found]
    return {
        "accuracy": float(np.mean([r["found"] == r["shift"] for r in rows])) if rows else float("nan"),
        "by_shift": by_shift,
        "relative_accuracy": float(np.mean(relative)) if relative else float("nan"),
        "clips": len(rows) // max(1, len(shifts)),
        "rows": rows,
    }
