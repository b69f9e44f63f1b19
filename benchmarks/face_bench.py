"""ms/frame of each face-analysis stage on a shared clip.

Stages: BlazeFace full range and short range (letterbox + LiteRT + decoding +
NMS), dlib HOG detection, one dlib 68-point prediction, and the whole
FaceAnalyzer.analyze (BlazeFace full range + mapped box + refinement pass, i.e.
two predictions). Frames are decoded once up front, so decoding is excluded.

    python benchmarks/face_bench.py [--clip clips/hdtf_aoc.mp4] [--frames 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_s2v.data.face.detect import BlazeFaceDetector, DlibHogDetector
from keras_s2v.data.face.landmarks import (
    FaceAnalyzer,
    LandmarkPredictor,
    dlib_box_from_blazeface,
)
from keras_s2v.data.face.models import install_models


def media_dir() -> Path:
    return Path(os.environ.get("KERAS_S2V_MEDIA", Path(__file__).resolve().parents[1].parent / "shared" / "media"))


def read_frames(path: Path, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise SystemExit(f"could not decode {path}")
    return frames


def time_per_frame(fn: Callable[[np.ndarray], object], frames: list[np.ndarray]) -> tuple[float, float]:
    """(mean, median) milliseconds per frame after one warm-up call."""
    fn(frames[0])
    times = []
    for frame in frames:
        t = time.perf_counter()
        fn(frame)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.mean(times)), 1e3 * float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", default="clips/hdtf_aoc.mp4", help="path relative to $KERAS_S2V_MEDIA")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--hog-frames", type=int, default=30, help="HOG is slow: time it on fewer frames")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads for BlazeFace")
    args = parser.parse_args()

    install_models()
    path = media_dir() / args.clip
    frames = read_frames(path, args.frames)
    h, w = frames[0].shape[:2]
    print(f"{path.name}: {len(frames)} frames of {w}x{h}; LiteRT threads={args.threads}; {os.cpu_count()} CPUs")

    full = BlazeFaceDetector("full_range", num_threads=args.threads)
    short = BlazeFaceDetector("short_range", num_threads=args.threads)
    hog = DlibHogDetector()
    predictor = LandmarkPredictor()
    analyzer = FaceAnalyzer("blazeface", num_threads=args.threads)
    boxes = [dlib_box_from_blazeface(d[0].box) if (d := full.detect(f)) else None for f in frames]
    with_face = [(f, b) for f, b in zip(frames, boxes) if b is not None]
    box_of = {id(f): b for f, b in with_face}

    rows = [
        ("BlazeFace full range", time_per_frame(full.detect, frames)),
        ("BlazeFace short range", time_per_frame(short.detect, frames)),
        ("dlib HOG (upsample 0)", time_per_frame(hog.detect, frames[: args.hog_frames])),
        (
            "dlib 68-pt predictor (1 box)",
            time_per_frame(lambda f: predictor.predict(f, box_of[id(f)]), [f for f, _ in with_face]),
        ),
        ("FaceAnalyzer('blazeface').analyze", time_per_frame(analyzer.analyze, frames)),
    ]
    for name, (mean, median) in rows:
        print(f"  {name:36s} {mean:8.2f} ms/frame (median {median:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
