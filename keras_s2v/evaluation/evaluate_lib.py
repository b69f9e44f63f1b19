"""Evaluate a generator the way the papers do, with baselines, into a report.

Each evaluation clip is a face-track segment: aligned real frames, their
landmarks and the audio. From the clip's identity still(s) (its first frame,
or ``n`` evenly spaced frames for a 5-image model) and its own audio the
model generates every frame, which is compared with the real ones. Baselines
on the same clips, in the same table:

* ``still``: the identity still repeated (no motion);
* ``shuffled audio``: the model driven by another clip's audio (motion out of sync);
* ``ground truth``: the real frames (the ceiling for sync and sharpness).

Per method and clip (``report.METRICS``): PSNR and SSIM on the aligned face, on
its lower half and on the lip box (``align.lip_box``, what lips-at-a-glance
generates); CPBD (face and lip box) and FDBM (sharpness); LMD on the mouth; ACD to the
identity still; the sync expert's offset, distance and confidence; blinks per
minute; mouth-landmark jitter over silent frames; the correlation of mouth
opening with the real clip's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from keras_s2v.data import audio as audio_lib
from keras_s2v.evaluation.report import METHODS, METRICS, MODEL, SHUFFLED, STILL, TRUTH


@dataclasses.dataclass
class Clip:
    """One evaluation clip: a face-track segment with its audio."""

    clip_id: str
    speaker: str
    frames: np.ndarray  # (T, S, S, 3) uint8 aligned real frames
    pcm: np.ndarray  # float32; sample 0 is MFCC_WINDOW_OFFSET samples before frame 0 (the contract's layout)
    mfcc: np.ndarray  # (12, 4 T + 31), the contract's layout

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def pcm_windows(
        self, first: int = 0, count: int | None = None, samples: int = audio_lib.MFCC_WINDOW_SAMPLES
    ) -> np.ndarray:
        """(count, samples) generator windows of frames first.. (what ``generate_frame_pcm`` takes)."""
        count = self.num_frames - first if count is None else count
        starts = audio_lib.segment_window_start(first + np.arange(count), samples)
        return np.stack([audio_lib.padded_slice(self.pcm, s, s + samples) for s in starts])

    def frame_rms(self) -> np.ndarray:
        """(T,) RMS of each frame's own 40 ms of audio."""
        return audio_lib.frame_rms(self.pcm[-audio_lib.MFCC_WINDOW_OFFSET :], self.num_frames)


def clips_from_shards(
    data_dir, split: str, max_clips: int | None = None, max_frames: int | None = None
) -> Iterator[Clip]:
    """The segments of ``split`` in prepared shards, in order, as clips."""
    import tensorflow as tf

    from keras_s2v.data import features, pipeline

    records = tf.data.TFRecordDataset(pipeline.shard_files(data_dir, split))
    for serialized in records.take(-1 if max_clips is None else max_clips):
        example = features.decode_example(serialized)
        n = int(example["num_frames"]) if max_frames is None else min(int(example["num_frames"]), max_frames)
        clip_id = f"{example['clip_id'].numpy().decode()}/{int(example['track_id'])}/{int(example['segment'])}"
        mfcc_columns = audio_lib.HOPS_PER_FRAME * (n - 1) + audio_lib.MFCC_WINDOW_HOPS
        yield Clip(
            clip_id,
            example["speaker"].numpy().decode(),
            example["frames"].numpy()[:n],
            example["pcm"].numpy(),
            example["mfcc"].numpy()[:, :mfcc_columns],
        )


def clips_from_videos(paths, crop_size: int, max_frames: int | None = None, log=print) -> Iterator[Clip]:
    """Videos prepared on the fly (faces, landmarks, alignment, audio) into clips.

    A bad video is reported and skipped.
    """
    from keras_s2v.data import prepare
    from keras_s2v.data.face import FaceAnalyzer

    config = prepare.PrepareConfig(crop_size=crop_size, split="test", max_segment_frames=max_frames or 250)
    analyzer = FaceAnalyzer()
    for path in paths:
        segments, entry = prepare.process_clip(str(path), Path(path).name, config, analyzer)
        if entry["status"] != "ok":
            log(f"skipped {entry['message']} [{entry['reason']}]")
            continue
        for s in segments:
            yield Clip(
                f"{Path(path).stem}/{s.track_id}/{s.segment}", s.speaker, s.frames, audio_lib.to_float(s.pcm), s.mfcc
            )


# --- Generation ---------------------------------------------------------------------------------


def identity_indices(num_frames: int, num_images: int) -> list[int]:
    """The still(s) a clip is generated from: its first frame, or ``n`` evenly spaced frames."""
    return [(k * num_frames) // num_images for k in range(num_images)]


def generate(backend, clip: Clip, windows: np.ndarray, batch_size: int = 25, deblur=None) -> np.ndarray:
    """(T, S, S, 3) uint8 frames from the clip's identity still(s) and the given pcm windows.

    A ``masked_target`` model re-dubs the clip, as ``redub`` does a video (and
    Wav2Lip's protocol): frame t's target is the real frame t, lower half unseen.
    ``deblur`` (frames in [0, 1] -> frames), when given, sharpens the generated faces, as in ``generate``.
    """
    from keras_s2v import frame_loop

    faces = np.concatenate([clip.frames[i] for i in identity_indices(clip.num_frames, backend.num_identity_images)], -1)
    identity = None if getattr(backend, "masked_target", False) else backend.identity_features(faces[None])
    out = []
    for i in range(0, len(windows), batch_size):
        batch = windows[i : i + batch_size]
        if identity is None:
            rows = backend.identity_features(
                frame_loop.identity_faces(backend, faces[None], clip.frames[i : i + len(batch)])
            )
        generated = backend.generate_frame_pcm(rows if identity is None else identity, batch)
        out.append(generated if deblur is None else deblur(generated))
    return frame_loop.to_uint8(np.concatenate(out))


def shuffled_windows(clips: list[Clip], index: int, samples: int = audio_lib.MFCC_WINDOW_SAMPLES) -> np.ndarray:
    """Clip ``index``'s length of another clip's audio (the next one; a single clip: its own, half a clip later)."""
    clip = clips[index]
    if len(clips) == 1:
        windows = clip.pcm_windows(samples=samples)
        return np.roll(windows, clip.num_frames // 2, axis=0)
    other = clips[(index + 1) % len(clips)]
    return other.pcm_windows(0, clip.num_frames, samples)


def method_frames(backend, clips: list[Clip], index: int, batch_size: int = 25, deblur=None) -> dict[str, np.ndarray]:
    clip = clips[index]
    still = clip.frames[identity_indices(clip.num_frames, 1)[0]]
    own, other = (
        clip.pcm_windows(samples=backend.window_samples),
        shuffled_windows(clips, index, backend.window_samples),
    )
    return {
        MODEL: generate(backend, clip, own, batch_size, deblur),
        STILL: np.repeat(still[None], clip.num_frames, axis=0),
        SHUFFLED: generate(backend, clip, other, batch_size, deblur),
        TRUTH: clip.frames,
    }


# --- Metrics ------------------------------------------------------------------------------------


class Scorer:
    """Landmarks, identity descriptors and the sync expert, loaded once; ``score`` one method's frames of a clip."""

    def __init__(self, sync_expert=None, acd_stride: int = 5):
        from keras_s2v.data.face.landmarks import LandmarkPredictor
        from keras_s2v.evaluation.identity import FaceDescriptor

        self.predictor = LandmarkPredictor()
        self.descriptor = FaceDescriptor()
        self.sync_expert = sync_expert
        self.acd_stride = acd_stride

    def landmarks(self, frames: np.ndarray) -> np.ndarray:
        """(T, 68, 2) on aligned crops, from the box the canonical face gives (no detection: the crops are aligned)."""
        from keras_s2v.data.face import align
        from keras_s2v.data.face.landmarks import dlib_box_from_landmarks

        box = dlib_box_from_landmarks(align.canonical_landmarks(frames.shape[1]))
        return np.stack([self.predictor.predict(f, box) for f in frames])

    def reference(self, clip: Clip) -> dict:
        """What every method of a clip is compared with: real landmarks, the still's descriptor."""
        landmarks = self.landmarks(clip.frames)
        still = identity_indices(clip.num_frames, 1)[0]
        reference = {
            "landmarks": landmarks,
            "descriptor": self.descriptor.describe_one(clip.frames[still], landmarks[still]),
        }
        if self.sync_expert is not None:  # the real clip's own AV offset, what a generated one is held to
            reference["sync_offset"] = self.sync_expert.score(clip.frames, clip.mfcc).offset
        return reference

    def score(self, clip: Clip, frames: np.ndarray, reference: dict) -> tuple[dict, dict]:
        """(metrics, series for the plots) of generated ``frames`` against the clip."""
        from keras_s2v.data import tracks
        from keras_s2v.evaluation import identity, quality

        real = clip.frames
        landmarks = reference["landmarks"] if frames is real else self.landmarks(frames)
        picked = list(range(0, len(frames), self.acd_stride))
        psnr = [quality.psnr(r, f) for r, f in zip(real, frames)]
        psnr_lower = [quality.psnr(quality.lower_half(r), quality.lower_half(f)) for r, f in zip(real, frames)]
        real_lips, lips = quality.lip_region(real), quality.lip_region(frames)
        real_opening, opening = tracks.mouth_opening(reference["landmarks"]), tracks.mouth_opening(landmarks)
        metrics = {
            "psnr": _mean_db(psnr),
            "ssim": float(np.mean([quality.ssim(r, f) for r, f in zip(real, frames)])),
            "psnr_lower": _mean_db(psnr_lower),
            "ssim_lower": float(
                np.mean([quality.ssim(quality.lower_half(r), quality.lower_half(f)) for r, f in zip(real, frames)])
            ),
            "psnr_lips": _mean_db([quality.psnr(r, f) for r, f in zip(real_lips, lips)]),
            "ssim_lips": float(np.mean([quality.ssim(r, f) for r, f in zip(real_lips, lips)])),
            "cpbd": float(np.mean([quality.cpbd(f) for f in frames])),
            "cpbd_lips": float(np.mean([quality.cpbd(f) for f in lips])),
            "fdbm": float(np.mean([quality.fdbm(f) for f in frames])),
            "lmd": quality.landmark_distance(reference["landmarks"], landmarks),
            "acd": identity.average_content_distance(
                reference["descriptor"], self.descriptor.describe(frames[picked], landmarks[picked])
            ),
            "blinks_per_minute": quality.blink_rate(quality.eye_aspect_ratio(landmarks), audio_lib.FPS),
            "silence_jitter": quality.silence_jitter(landmarks, quality.silent_frames(clip.frame_rms())),
            "mouth_correlation": quality.mouth_opening_correlation(real_opening, opening),
        }
        series = {"mouth_opening": opening, "real_mouth_opening": real_opening}
        if self.sync_expert is not None:
            result = self.sync_expert.score(frames, clip.mfcc)
            metrics.update(
                sync_offset=result.offset,
                sync_abs_offset=abs(result.offset),
                sync_in_sync=float(abs(result.offset - reference["sync_offset"]) <= 1),
                sync_distance=result.min_distance,
                sync_confidence=result.confidence,
            )
            series["sync"] = result.to_dict()
        return metrics, series


def _mean_db(values) -> float:
    """Mean PSNR over frames, an identical frame counted as 100 dB; inf when every frame is identical (ground truth)."""
    values = np.asarray(values, np.float64)
    if np.all(np.isinf(values)):
        return math.inf
    return float(np.mean(np.minimum(values, 100.0)))


def summarize(per_clip: list[dict]) -> dict:
    """{method: {metric: {"mean", "std", "n"}}} over clips, NaN (undefined, e.g. a still's correlation) left out."""
    out = {}
    for method in METHODS:
        rows = [c["metrics"][method] for c in per_clip if method in c["metrics"]]
        out[method] = {}
        for name in METRICS:
            values = np.array([r[name] for r in rows if name in r and r[name] is not None], np.float64)
            values = values[~np.isnan(values)]
            if len(values) == 0:
                continue
            if np.all(np.isinf(values)):
                out[method][name] = {"mean": math.inf, "std": 0.0, "n": len(values)}
            else:
                finite = values[np.isfinite(values)]
                out[method][name] = {"mean": float(finite.mean()), "std": float(finite.std()), "n": len(finite)}
    return out


# --- The run ------------------------------------------------------------------------------------


def default_split(data_dir) -> str:
    """``test`` when the shards have it, else ``validation`` (held-out tails), else ``train``."""
    from keras_s2v.data import features, pipeline

    for split in ("test", "validation"):
        if any(features.list_shards(d, split) for d in pipeline.data_dirs(data_dir)):
            return split
    return "train"


def check_parameters(model_name, model_params: dict, data_name, data_params: dict) -> None:
    """Refuse data prepared with another face size or other audio parameters than the model's, naming them."""
    from keras_s2v.data import prepared

    expected = dict(model_params)
    if expected.get("audio") is None:  # not recorded (older runs): only the face size can be checked
        expected["audio"] = data_params.get("audio")
    differ = prepared.parameter_differences(expected, data_params)
    if differ:
        raise ValueError(
            f"{model_name} and {data_name} do not match: {', '.join(differ)} (model vs data); "
            "prepare the data with the model's parameters"
        )


def evaluate(
    model,
    out,
    *,
    data=None,
    videos=(),
    split: str | None = None,
    sync_model=None,
    deblur=None,
    no_deblur: bool = False,
    max_clips: int | None = None,
    max_frames: int | None = None,
    overwrite: bool = False,
    batch_size: int = 25,
    acd_stride: int = 5,
    log=print,
) -> dict:
    """Generate every evaluation clip, score it with the baselines, write the report into ``out``; returns it.

    ``out`` is written into a staging folder and renamed at the end: an
    interrupted run leaves nothing under ``out``; an existing non-empty ``out``
    is kept unless ``overwrite``, and replaced only when it holds an earlier report; an ``out`` that
    is, holds or lies inside an input is refused. The generated faces pass through the deblurring CNN
    that ``generate`` and ``redub`` would use (``deblur``, else ``<model>/deblur`` if trained) unless
    ``no_deblur``: the report scores what a user would watch.
    """
    import time

    from keras_s2v import backends, outputs
    from keras_s2v.data import pipeline, prepared
    from keras_s2v.evaluation import report as report_lib

    started = time.time()
    inputs = [("--model", model), ("--sync_model", sync_model), ("--deblur", deblur)]
    inputs += [("--videos", v) for v in videos]
    inputs += [("--data", d) for d in (str(data).split(",") if data is not None else [])]
    out = outputs.check_folder(out, inputs=inputs, overwrite=overwrite, marker=report_lib.REPORT_JSON)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: no such folder for the report")
    if (data is None) == (not videos):
        raise ValueError("give either --data SHARDS or --videos FILES")
    backend = backends.load_generator(model)
    model_params = backends.data_parameters(model, backend)
    deblur_path = None if no_deblur else (deblur if deblur is not None else backends.find_deblur(model))
    deblurrer = backends.load_deblur(deblur_path) if deblur_path is not None else None
    if data is not None:
        data_params, data_name = prepared.data_parameters(pipeline.data_dirs(data)), str(data)
    else:
        for path in videos:
            if not Path(path).exists():
                raise FileNotFoundError(f"{path}: no such video")
        data_params, data_name = {"crop_size": backend.face_size, "audio": audio_lib.parameters()}, "the videos"
    check_parameters(model, model_params, data_name, data_params)
    expert = None
    if sync_model is not None:
        from keras_s2v.evaluation.sync import SyncExpert

        expert = SyncExpert(sync_model)
        expert_params = expert.data_parameters or {"crop_size": expert.face_size, "audio": None}
        check_parameters(f"sync expert {sync_model}", expert_params, data_name, data_params)

    if data is not None:
        split = split or default_split(data)
        clips = list(clips_from_shards(data, split, max_clips, max_frames))
    else:
        clips = list(clips_from_videos(videos, backend.face_size, max_frames, log))[:max_clips]
    if not clips:
        raise ValueError(f"{data_name}: no evaluation clip ({'split ' + split if data else 'no usable face track'})")
    log(f"evaluating {backend.description} on {len(clips)} clip(s), {sum(c.num_frames for c in clips)} frames")

    scorer = Scorer(expert, acd_stride=acd_stride)
    per_clip, sheets = [], []
    for index, clip in enumerate(clips):
        frames = method_frames(backend, clips, index, batch_size, deblurrer)
        reference = scorer.reference(clip)
        entry = {"clip": clip.clip_id, "speaker": clip.speaker, "frames": clip.num_frames, "metrics": {}, "series": {}}
        for method, generated in frames.items():
            entry["metrics"][method], entry["series"][method] = scorer.score(clip, generated, reference)
        per_clip.append(entry)
        sheets.append((clip.clip_id, {m: frames[m] for m in (TRUTH, MODEL, SHUFFLED)}))
        log(
            f"  {index + 1}/{len(clips)} {clip.clip_id}: "
            + ", ".join(
                f"{k} {entry['metrics'][MODEL][k]:.3g}"
                for k in ("psnr", "ssim", "lmd", "sync_offset")
                if k in entry["metrics"][MODEL]
            )
        )

    result = {
        "model": str(model),
        "backend": backend.description,
        "deblur": str(deblur_path) if deblur_path is not None else None,
        "data": str(data) if data is not None else [str(v) for v in videos],
        "split": split if data is not None else None,
        "sync_model": str(sync_model) if sync_model is not None else None,
        "data_parameters": data_params,
        "clips": len(clips),
        "frames": int(sum(c.num_frames for c in clips)),
        "summary": summarize(per_clip),
        "per_clip": per_clip,
        "seconds": round(time.time() - started, 1),
    }
    with outputs.atomic_folder(out, inputs=inputs, overwrite=overwrite, marker=report_lib.REPORT_JSON) as staging:
        report_lib.write_report(staging, result, sheets)
    return result
