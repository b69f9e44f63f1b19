"""Run ``generate`` and ``redub`` over every still, clip and speech file of the shared media folder; check each output.

Every still is animated with a speech file and every clip re-dubbed with one,
round-robin over the speech files (the clips at another offset, so the
pairings differ): each file is used without running every pair. A photo with
two faces is run twice: without ``face_index`` it must fail asking for
``--face_index``, with ``face_index=0`` it must work. Each output is checked
with ffprobe:

  duration  container duration and video nb_frames / fps both within one output frame of the speech's duration
            (the table's "seconds": speech in, output container, output video, output audio stream);
  video     generate: photo size rounded up to even, 25 fps; redub: the clip's size and average frame rate;
  audio     an audio stream is there.

    python benchmarks/media_sweep.py [--model demo/train] [--keep DIR] [--only NAME]

Media folder: $KERAS_S2V_MEDIA, default ../shared/media beside the repository.
Exit status 1 when any run fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from keras_s2v import backends, inference
from keras_s2v.data import media

ROOT = Path(__file__).resolve().parents[1]
STILL_OFFSET, CLIP_OFFSET = 1, 5  # speech index = (file index + offset) % number of speech files
TWO_FACES = "two_faces.jpg"
# "error: ..." + exit 2
CLI_ERRORS = (ValueError, FileNotFoundError, FileExistsError, media.MediaError, backends.ModelError)


@dataclasses.dataclass
class Run:
    kind: str  # "generate" or "redub"
    source: Path  # photo or clip
    speech: Path
    face_index: int | None = None
    expect_error: str | None = None  # the run must fail with a message containing this
    status: str = "-"
    summary: dict = dataclasses.field(default_factory=dict)
    probed: dict = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "expected error")

    @property
    def label(self) -> str:
        return self.source.name + ("" if self.face_index is None else f" [face_index {self.face_index}]")


def media_dir() -> Path:
    return Path(os.environ.get("KERAS_S2V_MEDIA", ROOT.parent / "shared" / "media"))


def plan(folder: Path) -> list[Run]:
    def files(sub):
        return sorted(p for p in (folder / sub).iterdir() if p.is_file() and not p.name.startswith("."))

    stills, clips, speech = files("stills"), files("clips"), files("speech")
    runs = []
    for i, still in enumerate(stills):
        audio = speech[(i + STILL_OFFSET) % len(speech)]
        if still.name == TWO_FACES:
            runs.append(Run("generate", still, audio, expect_error="--face_index"))
            runs.append(Run("generate", still, audio, face_index=0))
        else:
            runs.append(Run("generate", still, audio))
    runs += [Run("redub", clip, speech[(i + CLIP_OFFSET) % len(speech)]) for i, clip in enumerate(clips)]
    return runs


def ffprobe(path: Path) -> dict:
    cmd = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def even(n: int) -> int:
    return n + n % 2


def check(run: Run, out: Path) -> list[str]:
    """What is wrong with ``out`` (empty: nothing); fills ``run.probed``."""
    info = ffprobe(out)
    streams = info.get("streams", [])
    video = next(s for s in streams if s.get("codec_type") == "video")
    fps = float(Fraction(video["avg_frame_rate"]))
    frames = int(video.get("nb_frames") or 0)
    audio_s = media.probe(run.speech).duration
    container_s, video_s = float(info["format"]["duration"]), frames / fps
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    out_audio_s = float(audio[0].get("duration") or "nan") if audio else math.nan
    run.probed = {
        "frames": frames,
        "size": f"{video['width']}x{video['height']}",
        "fps": fps,
        "durations": f"{audio_s:.3f}/{container_s:.3f}/{video_s:.3f}/{out_audio_s:.3f}",
    }
    if run.kind == "generate":
        width, height = Image.open(run.source).size
        want_fps = 25.0
    else:
        source = media.probe(run.source)
        width, height, want_fps = source.width, source.height, source.fps
    problems = []
    for name, seconds in (("container", container_s), ("video nb_frames/fps", video_s)):
        if abs(seconds - audio_s) > 1.0 / fps:
            problems.append(f"{name} duration {seconds:.3f} s vs audio {audio_s:.3f} s (> 1 frame = {1 / fps:.3f} s)")
    if frames != run.summary["frames"]:
        problems.append(f"nb_frames {frames} but the summary says {run.summary['frames']} frames written")
    if (video["width"], video["height"]) != (even(width), even(height)):
        problems.append(f"size {video['width']}x{video['height']}, expected {even(width)}x{even(height)}")
    if not math.isclose(fps, want_fps, rel_tol=1e-3):
        problems.append(f"avg_frame_rate {video['avg_frame_rate']} = {fps:.4f}, expected {want_fps:.4f}")
    if not audio:
        problems.append("no audio stream")
    return problems


def execute(run: Run, out_dir: Path, model: str, analyzer) -> None:
    suffix = "" if run.face_index is None else f"_face{run.face_index}"
    out = out_dir / f"{run.kind}_{run.source.stem}{suffix}_{run.speech.stem}.mp4"
    try:
        if run.kind == "generate":
            run.summary = inference.generate_video(
                [str(run.source)],
                str(run.speech),
                model,
                out,
                face_index=run.face_index,
                progress=False,
                analyzer=analyzer,
            )
        else:
            run.summary = inference.redub_video(
                str(run.source), str(run.speech), model, out, progress=False, analyzer=analyzer
            )
    except Exception as error:  # noqa: BLE001 - every failure is recorded
        clean = isinstance(error, CLI_ERRORS)
        if run.expect_error and clean and run.expect_error in str(error):
            run.status, run.problems = "expected error", [f"error: {error}"]
        else:
            run.status = "ERROR" if clean else "CRASH"
            run.problems = [f"error: {error}" if clean else traceback.format_exc()]
        return
    if run.expect_error:
        run.problems.append(f"expected an error mentioning {run.expect_error!r}, but it succeeded")
    try:
        run.problems += check(run, out)
    except Exception:  # noqa: BLE001
        run.problems.append("checking the output failed:\n" + traceback.format_exc())
    run.status = "FAIL" if run.problems else "ok"


COLUMNS = (
    "kind",
    "input",
    "speech",
    "status",
    "frames",
    "size",
    "fps",
    "seconds in/ctr/vid/aud",
    "no face",
    "frames/s",
)


def row(run: Run) -> tuple:
    fps = run.probed.get("fps")
    return (
        run.kind,
        run.label,
        run.speech.name,
        run.status,
        run.probed.get("frames", "-"),
        run.probed.get("size", "-"),
        f"{fps:.3f}" if fps else "-",
        run.probed.get("durations", "-"),
        run.summary.get("frames_without_face", "-"),
        run.summary.get("frames_per_second", "-"),
    )


def print_table(runs: list[Run]) -> None:
    rows = [COLUMNS] + [tuple(map(str, row(r))) for r in runs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for i, r in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "demo" / "train"))
    parser.add_argument("--keep", type=Path, help="write the outputs here and keep them (default: a temp folder)")
    parser.add_argument("--only", help="run only inputs whose file name contains this")
    args = parser.parse_args()
    from keras_s2v.data.face import FaceAnalyzer

    runs = [r for r in plan(media_dir()) if not args.only or args.only in r.source.name]
    analyzer, started = FaceAnalyzer(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="media_sweep_") as tmp:
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, run in enumerate(runs, 1):
            t = time.perf_counter()
            execute(run, out_dir, args.model, analyzer)
            print(
                f"[{i}/{len(runs)}] {run.kind} {run.label} + {run.speech.name}: {run.status} "
                f"({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
    print()
    print_table(runs)
    for run in (r for r in runs if r.problems):
        print(f"\n{run.status}: {run.kind} {run.label} + {run.speech.name}")
        print("\n".join(f"  {line}" for p in run.problems for line in p.rstrip().splitlines()))
    failed = sum(not r.passed for r in runs)
    print(f"\n{len(runs) - failed} passed, {failed} failed, {len(runs)} runs in {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
