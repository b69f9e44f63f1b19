"""Frames per second of each data-preparation stage on a real clip.

    .venv/bin/python benchmarks/prepare_bench.py [--clip PATH] [--detector blazeface|dlib]

Reads ../shared/media (or $KERAS_S2V_MEDIA); prints one row per stage
(decode, detect, landmarks, align, features, write) and the end-to-end rate
of ``process_clip``, single process.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_name  # benchmarks/machine.py: scripts run with their own folder on the path

from keras_s2v.data import audio, features, media, prepare
from keras_s2v.data.face import FaceAnalyzer, align

MEDIA = Path(os.environ.get("KERAS_S2V_MEDIA", Path(__file__).resolve().parents[1].parent / "shared" / "media"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=str(MEDIA / "clips" / "hdtf_aoc.mp4"))
    parser.add_argument("--detector", default="blazeface", choices=["blazeface", "blazeface_short", "dlib"])
    args = parser.parse_args()
    clip = Path(args.clip)
    if not clip.exists():
        raise SystemExit(f"{clip}: not found (set KERAS_S2V_MEDIA or pass --clip)")
    analyzer = FaceAnalyzer(detector=args.detector)
    config = prepare.PrepareConfig(detector=args.detector)
    timings = {}

    start = time.perf_counter()
    frames = list(media.iter_frames(clip))
    waveform = media.read_audio(clip)
    timings["decode"] = time.perf_counter() - start
    n = len(frames)

    start = time.perf_counter()
    detections = [analyzer.detect(frame) for frame in frames]
    timings["detect"] = time.perf_counter() - start

    start = time.perf_counter()
    landmarks = [[analyzer.landmarks_for_box(frame, d.box) for d in dets] for frame, dets in zip(frames, detections)]
    timings["landmarks"] = time.perf_counter() - start

    start = time.perf_counter()
    crops = [
        [align.align_face(frame, points, config.crop_size) for points in faces]
        for frame, faces in zip(frames, landmarks)
    ]
    timings["align"] = time.perf_counter() - start

    audio.mfcc_sequence(waveform[:16000], 25)  # warm-up: librosa import, filterbanks (once per process)
    start = time.perf_counter()
    total = audio.num_frames(len(waveform))
    mfcc = audio.mfcc_sequence(waveform, total)
    audio.log_mel_frames(waveform, total)
    timings["features"] = time.perf_counter() - start

    first = [c[0] for c in crops if c][: config.max_segment_frames]
    t = len(first)
    segment = features.Segment(
        clip_id="bench",
        source=clip.name,
        speaker="bench",
        split="train",
        track_id=0,
        segment=0,
        frame_index=np.arange(t),
        frames=np.stack([c[0] for c in first]),
        landmarks=np.stack([c[1] for c in first]),
        source_landmarks=np.stack([c[1] for c in first]),
        transform=np.stack([c[2] for c in first]),
        pcm=audio.padded_slice(audio.to_int16(waveform), *audio.segment_pcm_range(0, t)),
        mfcc=mfcc[:, : 4 * (t - 1) + 35],
        log_mel=audio.log_mel_frames(waveform, t),
    )
    import tensorflow as tf

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, tf.io.TFRecordWriter(f"{tmp}/x.tfrecord") as writer:
        writer.write(features.encode_example(segment))
    timings["write"] = (time.perf_counter() - start) * n / t

    start = time.perf_counter()
    _, entry = prepare.process_clip(str(clip), clip.name, config, analyzer)
    end_to_end = time.perf_counter() - start

    print(
        f"clip: {clip.name}, {n} frames at {audio.FPS} fps, {frames[0].shape[1]}x{frames[0].shape[0]}; "
        f"detector: {args.detector}; machine: {cpu_name()}, {os.cpu_count()} cores, single process"
    )
    print(f"{'stage':<10} {'frames/s':>10} {'ms/frame':>10}")
    for stage, seconds in timings.items():
        print(f"{stage:<10} {n / seconds:>10.1f} {1000 * seconds / n:>10.2f}")
    print(
        f"{'all':<10} {n / end_to_end:>10.1f} {1000 * end_to_end / n:>10.2f}   (process_clip, status {entry['status']})"
    )


if __name__ == "__main__":
    main()
