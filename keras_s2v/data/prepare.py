"""Data preparation: talking-face videos -> aligned face tracks + audio features in TFRecord shards.

``process_clip`` is the per-clip function: decode at 25 fps / 16 kHz, shot
boundaries, face detection and 68-point landmarks, tracks, active speaker,
alignment, audio features, ``features.Segment`` examples. ``prepare`` runs it
over many clips on one machine (resumable, ``workers`` processes) and packs
the shards; ``prepare_beam`` runs the same function as an Apache Beam
pipeline for corpora that outgrow one machine.

The folder it writes, and how training and evaluation read it, is ``prepared``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from keras_s2v import outputs
from keras_s2v.data import audio as audio_lib
from keras_s2v.data import features, layouts, media, shots, tracks
from keras_s2v.data.prepared import CLIPS_DIR, CONFIG_FILE, MANIFEST_FILE

# Skip reasons, as they appear in the manifest.
DECODE_FAILURE = "decode failure"
NOT_A_VIDEO = "not a video"
NO_VIDEO = "no video stream"
NO_AUDIO = "no audio"
NO_FACE = "no face"
TRACK_TOO_SHORT = "track too short"
NOT_ACTIVE_SPEAKER = "not the active speaker"
FACE_TOO_SMALL = "face too small"


@dataclasses.dataclass
class PrepareConfig:
    """Options of a prepared folder; re-running with other values is refused."""

    crop_size: int = 112
    detector: str = "blazeface"  # blazeface (full range), blazeface_short, dlib (HOG, slow)
    min_track_frames: int = 25
    max_segment_frames: int = 250  # long tracks are cut into segments of at most this many frames
    min_face_size: float = 48.0  # pixels of box width; smaller faces give unreliable landmarks
    shot_threshold: float = shots.DEFAULT_THRESHOLD
    speaker_from: str | None = None
    # A TSV of file, speaker, split (layouts.read_split_table): the corpus's split written down once.
    split_table: str | None = None
    split: str | None = None  # force every clip into one split
    # Hold out the last fraction of every track for validation (same speakers): for corpora too small
    # for a per-speaker split, such as the demo, and the paper's per-clip evaluation.
    holdout_tail: float = 0.0
    # A trained sync expert (python -m keras_s2v.train --experiment syncnet): picks the active speaker by
    # sync confidence instead of mouth-energy correlation, and shifts each track's audio by the AV offset
    # it finds when its confidence reaches sync_min_confidence. Loaded by the caller's sync_loader.
    sync_model: str | None = None
    sync_min_confidence: float = 0.1
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    shard_size_mb: float = 256.0

    def validate(self) -> None:
        if self.split is not None and self.split not in features.SPLITS:
            raise ValueError(f"split must be one of {features.SPLITS}, got {self.split!r}")
        if self.crop_size < 32:
            raise ValueError(f"crop_size must be at least 32, got {self.crop_size}")
        if self.min_track_frames < 1 or self.max_segment_frames < self.min_track_frames:
            raise ValueError("need 1 <= min_track_frames <= max_segment_frames")
        if self.speaker_from:
            re.compile(self.speaker_from)
        if self.split_table:
            layouts.read_split_table(self.split_table)
        if not 0.0 <= self.holdout_tail < 1.0:
            raise ValueError(f"holdout_tail must be in [0, 1), got {self.holdout_tail}")

    def identity(self) -> dict:
        """Fields that change what is written (shard size only changes the packing)."""
        fields = dataclasses.asdict(self)
        fields.pop("shard_size_mb")
        return fields


class ClipSkipped(Exception):
    """A clip that yields no example, with the manifest's reason and a message for the user."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def clip_id(path: str, relative: str) -> str:
    """Readable, unique, file-name-safe key of a clip."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(Path(relative).with_suffix("")))[-80:]
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:8]
    return f"{stem}-{digest}"


def _source_stamp(path: str) -> dict:
    try:
        stat = os.stat(path)
        return {"size": stat.st_size, "mtime": int(stat.st_mtime)}
    except OSError:
        return {"size": None, "mtime": None}


def _segments_of(length: int, max_frames: int) -> list[tuple[int, int]]:
    """(start, length) pieces of about equal length, each at most ``max_frames``."""
    count = math.ceil(length / max_frames)
    bounds = np.linspace(0, length, count + 1).round().astype(int)
    return [(int(a), int(b - a)) for a, b in itertools.pairwise(bounds)]


def process_clip(path: str, relative: str, config: PrepareConfig, analyzer, progress: bool = False, sync_expert=None):
    """Prepare one clip. Returns (segments, manifest entry); never raises for a bad clip.

    The entry has ``status`` "ok" or "skipped" and, when skipped, ``reason``
    (one of this module's reason constants) and ``message`` naming the file.
    """
    started = time.time()
    key = clip_id(path, relative)
    entry = {"clip_id": key, "source": path, "relative": relative, **_source_stamp(path)}
    try:
        origin = layouts.identify(
            relative,
            config.speaker_from,
            config.split,
            config.validation_fraction,
            config.test_fraction,
            config.split_table,
        )
        entry.update(speaker=origin.speaker, split=origin.split, layout=origin.layout)
        segments, stats = _process(path, relative, key, origin, config, analyzer, progress, sync_expert)
        entry.update(status="ok", **stats)
    except ClipSkipped as skipped:
        segments = []
        entry.update(status="skipped", reason=skipped.reason, message=f"{path}: {skipped}")
    except media.MediaError as error:
        segments = []
        entry.update(status="skipped", reason=DECODE_FAILURE, message=str(error))
    except ValueError as error:  # e.g. --speaker-from not matching this path
        segments = []
        entry.update(status="skipped", reason="bad input", message=f"{path}: {error}")
    entry["seconds"] = round(time.time() - started, 2)
    return segments, entry


def _process(path, relative, key, origin, config, analyzer, progress, sync_expert=None):
    try:
        info = media.probe(path)
    except media.MediaError as error:
        raise ClipSkipped(DECODE_FAILURE, error.problem) from None
    if info.is_still_image:
        raise ClipSkipped(NOT_A_VIDEO, f"a still image ({info.video_codec}), not a video")
    if not info.has_video:
        raise ClipSkipped(NO_VIDEO, "no video stream (audio only?)")
    if not info.has_audio:
        raise ClipSkipped(NO_AUDIO, "no audio stream")
    try:
        waveform = media.read_audio(path)
    except media.MediaError as error:
        raise ClipSkipped(NO_AUDIO, error.problem) from None

    shot_detector = shots.ShotDetector(config.shot_threshold)
    tracker = tracks.FaceTracker(config.crop_size)
    faces_seen = small_faces = 0
    frame_count = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=max(1, round(info.duration * audio_lib.FPS)),
            desc=relative[-40:],
            unit="frame",
            leave=False,
            file=sys.stderr,
        )
    try:
        for t, frame in enumerate(media.iter_frames(path, audio_lib.FPS, info=info)):
            frame_count += 1
            shot = shot_detector.update(frame)
            faces = analyzer.analyze(frame)
            faces_seen += len(faces)
            large = [f for f in faces if f.box[2] - f.box[0] >= config.min_face_size]
            small_faces += len(faces) - len(large)
            tracker.update(t, shot, frame, large)
            if bar is not None:
                bar.update(1)
    except media.MediaError as error:
        raise ClipSkipped(DECODE_FAILURE, error.problem) from None
    finally:
        if bar is not None:
            bar.close()

    if faces_seen == 0:
        raise ClipSkipped(NO_FACE, f"no face found in {frame_count} frames")
    if faces_seen == small_faces:
        raise ClipSkipped(FACE_TOO_SMALL, f"every face is narrower than {config.min_face_size:g} px")
    dropped = []
    long_enough = []
    for track in tracker.tracks:
        if len(track) < config.min_track_frames:
            dropped.append({"track": track.track_id, "frames": len(track), "reason": TRACK_TOO_SHORT})
        else:
            long_enough.append(track)
    if not long_enough:
        longest = max(len(t) for t in tracker.tracks)
        raise ClipSkipped(
            TRACK_TOO_SHORT, f"longest face track has {longest} frames, fewer than {config.min_track_frames}"
        )

    total_frames = max(frame_count, audio_lib.num_frames(len(waveform)))
    mfcc = audio_lib.mfcc_sequence(waveform, total_frames)
    offsets, sync_scores = {}, {}
    if sync_expert is not None:
        for track in long_enough:
            first = track.frame_index[0]
            cols = slice(audio_lib.mfcc_window_slice(first)[0], audio_lib.mfcc_window_slice(track.last_frame)[1])
            result = sync_expert.score(np.stack(track.crops), mfcc[:, cols])
            scores_of = {
                "offset": result.offset,
                "confidence": round(result.confidence, 4),
                "distance": round(result.min_distance, 4),
            }
            sync_scores[str(track.track_id)] = scores_of
            if result.confidence >= config.sync_min_confidence:
                offsets[track.track_id] = result.offset
        kept, not_speaking, scores = tracks.pick_active_speakers(
            long_enough, scores={t.track_id: sync_scores[str(t.track_id)]["confidence"] for t in long_enough}
        )
    else:
        energy = audio_lib.frame_rms(waveform, total_frames)
        kept, not_speaking, scores = tracks.pick_active_speakers(long_enough, energy)
    dropped += [{"track": t.track_id, "frames": len(t), "reason": NOT_ACTIVE_SPEAKER} for t in not_speaking]

    features_at = {0: (mfcc, audio_lib.log_mel_frames(waveform, total_frames), audio_lib.to_int16(waveform))}

    def audio_features(offset: int):
        """MFCC, log-mel and PCM of the audio advanced by ``offset`` frames (frame t hears t + offset)."""
        if offset not in features_at:
            shifted = audio_lib.delayed(waveform, -offset)
            features_at[offset] = (
                audio_lib.mfcc_sequence(shifted, total_frames),
                audio_lib.log_mel_frames(shifted, total_frames),
                audio_lib.to_int16(shifted),
            )
        return features_at[offset]

    segments = []
    for track in kept:
        av_offset = offsets.get(track.track_id, 0)
        mfcc, log_mel, pcm_all = audio_features(av_offset)
        segment_index = 0
        for split, start, stop in _track_parts(len(track), origin.split, config.holdout_tail):
            for offset, length in _segments_of(stop - start, config.max_segment_frames):
                part = slice(start + offset, start + offset + length)
                first = track.frame_index[part.start]
                mfcc_cols = slice(
                    audio_lib.mfcc_window_slice(first)[0], audio_lib.mfcc_window_slice(first + length - 1)[1]
                )
                segment = features.Segment(
                    clip_id=key,
                    source=relative,
                    speaker=origin.speaker,
                    split=split,
                    track_id=track.track_id,
                    segment=segment_index,
                    frame_index=np.asarray(track.frame_index[part], np.int64),
                    frames=np.stack(track.crops[part]),
                    landmarks=np.stack(track.landmarks[part]).astype(np.float32),
                    source_landmarks=np.stack(track.source_landmarks[part]).astype(np.float32),
                    transform=np.stack(track.transforms[part]).astype(np.float32),
                    pcm=audio_lib.padded_slice(pcm_all, *audio_lib.segment_pcm_range(first, length)),
                    mfcc=np.ascontiguousarray(mfcc[:, mfcc_cols]),
                    log_mel=np.ascontiguousarray(log_mel[first : first + length]),
                    offset_frames=av_offset,
                )
                segment.validate()
                segments.append(segment)
                segment_index += 1
    eye_error = float(np.mean([_eye_error(t, config.crop_size) for t in kept]))
    stats = {
        "frames": frame_count,
        "duration": round(len(waveform) / audio_lib.SAMPLE_RATE, 3),
        "shots": shot_detector.shot + 1,
        "tracks": len(tracker.tracks),
        "tracks_kept": len(kept),
        "segments": len(segments),
        "frames_written": int(sum(s.num_frames for s in segments)),
        "examples": {
            sp: sum(s.split == sp for s in segments) for sp in features.SPLITS if any(s.split == sp for s in segments)
        },
        "frames_by_split": {
            sp: int(sum(s.num_frames for s in segments if s.split == sp))
            for sp in features.SPLITS
            if any(s.split == sp for s in segments)
        },
        "speaking_scores": {str(k): round(v, 3) for k, v in scores.items()},
        **({"sync": sync_scores} if sync_expert is not None else {}),
        "mean_eye_error_px": round(eye_error, 3),
        "dropped_tracks": dropped,
    }
    return segments, stats


def _track_parts(length: int, split: str, holdout_tail: float) -> list[tuple[str, int, int]]:
    """(split, start, stop) parts of a track: all of it, or its head and a held-out tail."""
    if holdout_tail <= 0 or split != "train":
        return [(split, 0, length)]
    cut = round(length * (1.0 - holdout_tail))
    if cut < 2 or length - cut < 2:
        return [(split, 0, length)]
    return [("train", 0, cut), ("validation", cut, length)]


def _eye_error(track: tracks.Track, size: int) -> float:
    from keras_s2v.data.face import align

    return float(align.eye_alignment_error(np.stack(track.landmarks), size).mean())


# --- One machine: resumable, parallel -------------------------------------------------------


def _write_clip(out: Path, segments, entry) -> None:
    """Write a clip's examples then its entry, each atomically: the entry marks it done."""
    import tensorflow as tf

    clips = out / CLIPS_DIR
    clips.mkdir(parents=True, exist_ok=True)
    for split in features.SPLITS:
        records = _clip_records(out, entry["clip_id"], split)
        members = [s for s in segments if s.split == split]
        if members:
            tmp = records.with_suffix(".tfrecord.partial")
            with tf.io.TFRecordWriter(str(tmp)) as writer:
                for segment in members:
                    writer.write(features.encode_example(segment))
            os.replace(tmp, records)
            entry.setdefault("bytes", {})[split] = records.stat().st_size
        elif records.exists():
            records.unlink()
    tmp = clips / f".{entry['clip_id']}.json.partial"
    tmp.write_text(json.dumps(entry, indent=1))
    os.replace(tmp, clips / f"{entry['clip_id']}.json")


def _clip_records(out: Path, clip: str, split: str) -> Path:
    return out / CLIPS_DIR / f"{clip}.{split}.tfrecord"


def _done_entry(out: Path, path: str, relative: str):
    """The saved entry of a clip finished by an earlier run, if its source is unchanged."""
    marker = out / CLIPS_DIR / f"{clip_id(path, relative)}.json"
    if not marker.exists():
        return None
    entry = json.loads(marker.read_text())
    stamp = _source_stamp(path)
    if (entry.get("size"), entry.get("mtime")) != (stamp["size"], stamp["mtime"]):
        return None
    return entry


_WORKER = {}


def _init_worker(config_dict: dict, sync_loader=None) -> None:
    from keras_s2v.data.face import FaceAnalyzer

    _WORKER["config"] = PrepareConfig(**config_dict)
    _WORKER["analyzer"] = FaceAnalyzer(detector=_WORKER["config"].detector)
    _WORKER["sync"] = load_sync_expert(_WORKER["config"], sync_loader)


def load_sync_expert(config: PrepareConfig, sync_loader=None):
    """The sync expert a config names, loaded by ``sync_loader(config.sync_model)``, or None."""
    if not config.sync_model:
        return None
    _check_sync_loader(config, sync_loader)
    expert = sync_loader(config.sync_model)
    if expert.face_size != config.crop_size:
        raise ValueError(
            f"{config.sync_model}: the sync expert takes {expert.face_size} px faces, not crop_size {config.crop_size}"
        )
    return expert


def _worker_task(out: str, path: str, relative: str, progress: bool) -> dict:
    segments, entry = process_clip(path, relative, _WORKER["config"], _WORKER["analyzer"], progress, _WORKER["sync"])
    _write_clip(Path(out), segments, entry)
    return entry


def _config_record(config: PrepareConfig) -> dict:
    """What ``prepare_config.json`` holds: the options and the audio parameters the features were made with."""
    return {**dataclasses.asdict(config), "audio": audio_lib.parameters()}


def _check_sync_loader(config: PrepareConfig, sync_loader) -> None:
    if config.sync_model and sync_loader is None:
        raise ValueError(
            f"sync_model {config.sync_model}: no sync_loader to load the sync expert with "
            "(python -m keras_s2v.prepare passes keras_s2v.evaluation.sync.SyncExpert)"
        )


def _check_out(out: Path, inputs, config: PrepareConfig, overwrite: bool) -> None:
    """Refuse, before any work, an ``out`` that is a file, an input, unwritable, or someone else's non-empty folder."""
    given = [("--input", i) for i in inputs] + [
        ("--sync_model", config.sync_model),
        ("--split_table", config.split_table),
    ]
    outputs.check_folder(out, inputs=given, overwrite=True)  # resuming a folder of ours is no overwrite
    if out.is_dir() and any(out.iterdir()) and not (out / CONFIG_FILE).exists() and not overwrite:
        raise FileExistsError(
            f"{out}: holds files prepare did not write (no {CONFIG_FILE}); use a new or empty "
            "--out, or --overwrite to write shards there anyway"
        )


def _check_config(out: Path, config: PrepareConfig, overwrite: bool) -> None:
    saved = out / CONFIG_FILE
    if saved.exists():
        previous = json.loads(saved.read_text())
        previous.pop("shard_size_mb", None)
        previous.setdefault("audio", audio_lib.parameters())  # folders made before it was recorded
        current = {**config.identity(), "audio": audio_lib.parameters()}
        if previous != current:
            if not overwrite:
                changed = sorted(k for k in current if previous.get(k) != current[k])
                raise ValueError(
                    f"{out} was prepared with other options ({', '.join(changed)}); "
                    "use another --out, or --overwrite to start it again"
                )
            shutil.rmtree(out / CLIPS_DIR, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(_config_record(config), indent=1))


def prepare(
    inputs,
    out,
    config: PrepareConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    log=print,
    sync_loader=None,
) -> dict:
    """Prepare every video under ``inputs`` into shards in ``out``; returns the manifest.

    Clips finished by an earlier run (same source size and mtime) are not
    redone; a crash mid-clip leaves nothing that counts. Bad clips are
    reported and skipped; the run goes on.

    ``sync_loader``: what turns ``config.sync_model`` into a sync expert (the
    caller's, e.g. ``keras_s2v.evaluation.sync.SyncExpert``: data preparation
    imports no model code); needed when ``config.sync_model`` is set, and
    picklable, as each worker process loads its own.
    """
    config = config or PrepareConfig()
    config.validate()
    _check_sync_loader(config, sync_loader)
    out = Path(out)
    _check_out(out, inputs, config, overwrite)
    videos = layouts.find_videos(inputs)  # before anything is written: a mistyped input leaves no folder
    if not videos:
        raise FileNotFoundError(f"no video found in {', '.join(map(str, inputs))}")
    _check_config(out, config, overwrite)
    entries, todo = {}, []
    for path, relative in videos:
        done = _done_entry(out, path, relative)
        if done is not None:
            entries[done["clip_id"]] = done
        else:
            todo.append((path, relative))
    if entries:
        log(f"{len(entries)} clip(s) already prepared in {out}, {len(todo)} to do")

    def report(entry):
        entries[entry["clip_id"]] = entry
        if entry["status"] != "ok":
            log(f"skipped {entry['message']} [{entry['reason']}]")

    if todo:
        if workers <= 1:
            _init_worker(dataclasses.asdict(config), sync_loader)
            for path, relative in todo:
                report(_worker_task(str(out), path, relative, progress))
        else:
            import concurrent.futures
            import multiprocessing

            from tqdm import tqdm

            # spawn, not fork: TensorFlow and LiteRT threads do not survive a fork.
            with concurrent.futures.ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(dataclasses.asdict(config), sync_loader),
            ) as pool:
                futures = [pool.submit(_worker_task, str(out), p, r, False) for p, r in todo]
                for future in tqdm(
                    concurrent.futures.as_completed(futures),
                    total=len(futures),
                    unit="clip",
                    disable=not progress,
                    file=sys.stderr,
                ):
                    report(future.result())
    manifest = write_shards(out, [entries[k] for k in sorted(entries)], config)
    return manifest


def write_shards(out: Path, entries: list[dict], config: PrepareConfig) -> dict:
    """Pack the per-clip records into ``<split>-NNNNN-of-NNNNN`` shards and write the manifest.

    Shards are written into a staging folder and swapped in, so a crash here
    leaves the previous shards whole.
    """
    import tensorflow as tf

    out = Path(out)
    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    splits = {}
    for split in features.SPLITS:
        members = [e for e in entries if e["status"] == "ok" and split in e["examples"]]
        if not members:
            continue
        total_bytes = sum(e["bytes"][split] for e in members)
        count = max(1, math.ceil(total_bytes / (config.shard_size_mb * 2**20)))
        writers = [tf.io.TFRecordWriter(str(staging / features.shard_name(split, i, count))) for i in range(count)]
        examples = 0
        for entry in members:
            for record in tf.data.TFRecordDataset(str(_clip_records(out, entry["clip_id"], split))):
                writers[examples % count].write(record.numpy())
                examples += 1
        for writer in writers:
            writer.close()
        splits[split] = _split_stats(entries, split, count)
    for old in out.glob(f"*-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]{features.SHARD_SUFFIX}"):
        old.unlink()
    for new in staging.iterdir():
        os.replace(new, out / new.name)
    staging.rmdir()
    return _write_manifest(out, entries, config, splits)


def _split_stats(entries: list[dict], split: str, shards: int) -> dict:
    members = [e for e in entries if e["status"] == "ok" and split in e["examples"]]
    return {
        "shards": shards,
        "examples": int(sum(e["examples"][split] for e in members)),
        "clips": len(members),
        "frames": int(sum(e["frames_by_split"][split] for e in members)),
        "speakers": sorted({e["speaker"] for e in members}),
    }


def _write_manifest(out: Path, entries: list[dict], config: PrepareConfig, splits: dict, **extra) -> dict:
    skipped = [e for e in entries if e["status"] != "ok"]
    manifest = {
        "config": dataclasses.asdict(config),
        **extra,
        "clips": len(entries),
        "clips_ok": len(entries) - len(skipped),
        "clips_skipped": len(skipped),
        "skip_reasons": {r: sum(e["reason"] == r for e in skipped) for r in sorted({e["reason"] for e in skipped})},
        "splits": splits,
        "entries": entries,
    }
    tmp = out / f".{MANIFEST_FILE}.partial"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST_FILE)
    return manifest


def summary_table(manifest: dict) -> str:
    """Plain-text table of a manifest: one row per clip, then totals per split."""
    rows = [("clip", "status", "split", "frames", "tracks", "kept", "segments", "eye err px", "reason")]
    for e in manifest["entries"]:
        if e["status"] == "ok":
            rows.append(
                (
                    e["relative"],
                    "ok",
                    "+".join(e["examples"]),
                    str(e["frames"]),
                    str(e["tracks"]),
                    str(e["tracks_kept"]),
                    str(e["segments"]),
                    f"{e['mean_eye_error_px']:.2f}",
                    "",
                )
            )
        else:
            rows.append((e["relative"], "skipped", e.get("split", ""), "", "", "", "", "", e["reason"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for split, s in manifest.get("splits", {}).items():
        lines.append(
            f"{split}: {s['examples']} examples, {s['frames']} frames, {len(s['speakers'])} speakers, "
            f"{s['shards']} shard(s)"
        )
    lines.append(f"{manifest['clips_ok']} of {manifest['clips']} clips prepared, {manifest['clips_skipped']} skipped")
    return "\n".join(lines)


# --- Apache Beam ---------------------------------------------------------------------------------


def _beam_prepare_clip_class():
    import apache_beam as beam

    class BeamPrepareClip(beam.DoFn):
        """``process_clip`` as a DoFn: examples tagged by split, manifest entries tagged "entries"."""

        def __init__(self, config_dict: dict, sync_loader=None):
            self.config_dict = config_dict
            self.sync_loader = sync_loader

        def setup(self):
            from keras_s2v.data.face import FaceAnalyzer

            self.config = PrepareConfig(**self.config_dict)
            self.analyzer = FaceAnalyzer(detector=self.config.detector)
            self.sync_expert = load_sync_expert(self.config, self.sync_loader)

        def process(self, job):
            segments, entry = process_clip(job[0], job[1], self.config, self.analyzer, sync_expert=self.sync_expert)
            for segment in segments:
                yield beam.pvalue.TaggedOutput(segment.split, features.encode_example(segment))
            yield beam.pvalue.TaggedOutput("entries", entry)

    return BeamPrepareClip


def _BeamPrepareClip(config_dict: dict, sync_loader=None):
    return _beam_prepare_clip_class()(config_dict, sync_loader)


def prepare_beam(
    inputs, out, config: PrepareConfig | None = None, pipeline_args=None, overwrite: bool = False, sync_loader=None
) -> dict:
    """The same per-clip function as a Beam pipeline (DirectRunner unless flags say otherwise).

    Writes ``<split>-SSSSS-of-NNNNN.tfrecord`` shards and ``manifest.json``
    (the manifest holds every clip's entry; Beam retries failed bundles itself,
    so there is no resume here). ``sync_loader``: as ``prepare``'s.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    config = config or PrepareConfig()
    config.validate()
    _check_sync_loader(config, sync_loader)
    out = Path(out)
    _check_out(out, inputs, config, overwrite)
    videos = layouts.find_videos(inputs)
    if not videos:
        raise FileNotFoundError(f"no video found in {', '.join(map(str, inputs))}")
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(_config_record(config), indent=1))
    config_dict = dataclasses.asdict(config)

    with beam.Pipeline(options=PipelineOptions(pipeline_args or [])) as pipeline:
        results = (
            pipeline
            | "Clips" >> beam.Create(videos)
            | "Prepare"
            >> beam.ParDo(_BeamPrepareClip(config_dict, sync_loader)).with_outputs("entries", *features.SPLITS)
        )
        for split in features.SPLITS:
            _ = results[split] | f"Write {split}" >> beam.io.WriteToTFRecord(
                str(out / split), file_name_suffix=features.SHARD_SUFFIX, shard_name_template="-SSSSS-of-NNNNN"
            )
        _ = (
            results.entries
            | "Json" >> beam.Map(json.dumps)
            | "Entries" >> beam.io.WriteToText(str(out / ".entries"), shard_name_template="")
        )
    entries_file = out / ".entries"
    entries = sorted(
        (json.loads(line) for line in entries_file.read_text().splitlines() if line), key=lambda e: e["clip_id"]
    )
    entries_file.unlink()
    splits = {}
    for split in features.SPLITS:
        shards = features.list_shards(out, split)
        if len(shards) == 1 and os.path.getsize(shards[0]) == 0:  # Beam writes one empty shard for an empty split
            os.unlink(shards[0])
        elif shards:
            splits[split] = _split_stats(entries, split, len(shards))
    return _write_manifest(out, entries, config, splits, runner="beam")
