"""Latency of a live stream: ``python -m keras_s2v.stream`` fed raw PCM through a pipe, as a microphone would.

    .venv/bin/python benchmarks/stream_bench.py [--model s2v_real] [--still stills/woman_portrait.jpg]
        [--seconds 20] [--paces realtime,burst] [--crop] [--batch_size 1]

For each of ``--paces`` the command runs in its own subprocess on the photo. Its
setup (loading the model, the face, the identity) is timed apart, up to the
"ready" line it prints on standard error; only then does the audio start:
``--seconds`` of ``--speech`` as 16 kHz s16le PCM on its standard input, one
frame's worth (640 samples, 40 ms) per write,

* ``realtime``: each write 40 ms after the one before on the wall clock (a live
  microphone; the pipe never holds more than what has been "spoken" so far);
* ``burst``: as fast as the pipe takes them (a file piped in): throughput.

A thread reads standard output and stamps each frame when its last byte has
arrived. Printed per pace:

* first frame: from the first PCM byte written to the first frame read. Frame 0
  cannot exist before its window's audio has arrived (up to sample 3240 for the
  MFCC window: 0.2025 s in real time), printed apart as "audio", the rest as
  "compute" (reading, generating, pasting, writing, the pipes);
* per frame: frame k read, minus the moment the chunk holding its window's last
  sample was written (the earliest it could exist; the end of the input for the
  last frames): median, 90th percentile and the most, over every frame;
* throughput: frames per second from the first byte to the last frame, and
  (realtime) how far the last frame came after the audio ended. A stream keeps
  up when that lag stays near the per-frame latency; below 25 frames/s of
  throughput the latency grows with every frame.

Other processes on the machine slow every figure (the load average is printed);
the int8 TFLite model of a preset is what runs (``--backend auto``). Media from
``$KERAS_S2V_MEDIA`` (default ``../shared/media``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_s2v.data import audio, media  # noqa: E402

MEDIA = Path(os.environ.get("KERAS_S2V_MEDIA", ROOT.parent / "shared" / "media"))
CHUNK = audio.SAMPLES_PER_FRAME  # samples per write: one frame of audio, 40 ms


def _read_exactly(stream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


def run_stream(args, pcm: np.ndarray, pace: str) -> dict:
    """One subprocess of the command: setup seconds, the send time of each chunk and the arrival of each frame."""
    command = [sys.executable, "-m", "keras_s2v.stream", "--face", str(args.still), "--model", args.model, "--quiet"]
    command += ["--batch_size", str(args.batch_size)] + (["--crop"] if args.crop else [])
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, lines, size = threading.Event(), [], {}

    def watch_stderr():
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            found = re.match(r"ready: (\d+)x(\d+) rgb24", line)
            if found:
                size["width"], size["height"] = int(found.group(1)), int(found.group(2))
                ready.set()
        ready.set()  # the command ended (an error): stop waiting

    threading.Thread(target=watch_stderr, daemon=True).start()
    ready.wait(args.setup_timeout)
    if not size:
        proc.kill()
        raise RuntimeError(f"{' '.join(command)}: no ready line\n" + "\n".join(lines[-30:]))
    setup = time.perf_counter() - started
    frame_bytes = size["width"] * size["height"] * 3
    arrivals: list[float] = []

    def read_frames():
        while len(_read_exactly(proc.stdout, frame_bytes)) == frame_bytes:
            arrivals.append(time.perf_counter())

    reader = threading.Thread(target=read_frames, daemon=True)
    reader.start()
    sends, data = [], audio.to_int16(pcm).astype("<i2").tobytes()
    t0 = time.perf_counter()
    for k, start in enumerate(range(0, len(data), 2 * CHUNK)):
        if pace == "realtime":
            time.sleep(max(t0 + k * CHUNK / audio.SAMPLE_RATE - time.perf_counter(), 0.0))
        sends.append(time.perf_counter())  # the write starts: its bytes are there for the reader from now
        proc.stdin.write(data[start : start + 2 * CHUNK])
        proc.stdin.flush()
    proc.stdin.close()
    ended = time.perf_counter()
    proc.wait()
    reader.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n" + "\n".join(lines[-30:]))
    return {"setup": setup, "sends": sends, "ended": ended, "arrivals": arrivals, "size": size, "stderr": lines}


def figures(run: dict, samples: int) -> dict:
    sends, arrivals = np.array(run["sends"]), np.array(run["arrivals"])
    frames = audio.num_frames(samples)
    if len(arrivals) != frames:
        raise RuntimeError(f"{len(arrivals)} frames read, {frames} expected")
    # The moment frame k could first be made: its window's last sample written (past the end: the input's end).
    last = [audio.window_range(k)[1] - 1 for k in range(frames)]
    possible = np.array([sends[s // CHUNK] if s < samples else run["ended"] for s in last])
    latency = arrivals - possible
    return {
        "frames": frames,
        "first": arrivals[0] - sends[0],
        "first_audio": possible[0] - sends[0],
        "median": float(np.median(latency)),
        "p90": float(np.percentile(latency, 90)),
        "max": float(latency.max()),
        "throughput": frames / (arrivals[-1] - sends[0]),
        "lag": arrivals[-1] - run["ended"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="s2v_real", help="preset, training workdir, export folder or .tflite")
    parser.add_argument("--still", default=str(MEDIA / "stills" / "woman_portrait.jpg"), help="the photo")
    parser.add_argument("--speech", default=str(MEDIA / "speech" / "english_60s.wav"), help="speech (cut, looped)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of speech streamed per pace")
    parser.add_argument("--paces", default="realtime,burst", help="realtime (40 ms every 40 ms) and/or burst")
    parser.add_argument("--crop", action="store_true", help="the aligned 112 px face only (no paste-back)")
    parser.add_argument("--batch_size", type=int, default=1, help="the command's --batch_size")
    parser.add_argument("--setup_timeout", type=float, default=900.0, help="seconds to wait for the ready line")
    args = parser.parse_args()
    paces = [p.strip() for p in args.paces.split(",") if p.strip()]
    if unknown := set(paces) - {"realtime", "burst"}:
        parser.error(f"--paces: unknown {', '.join(sorted(unknown))}")

    speech = media.read_audio(args.speech)
    pcm = np.resize(speech, round(args.seconds * audio.SAMPLE_RATE))  # cut, or looped end to start
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; model {args.model}, "
        f"photo {Path(args.still).name}, {args.seconds:g} s of {Path(args.speech).name}, --batch_size "
        f"{args.batch_size}{', --crop' if args.crop else ''}; a frame's window ends "
        f"{(audio.window_range(0)[1] - audio.SAMPLES_PER_FRAME) / audio.SAMPLE_RATE:.4f} s after the frame "
        f"(frame t needs the audio through frame t + {audio.frames_ahead()})"
    )
    print(
        f"  {'pace':<9} {'size':>9} {'frames':>6} {'setup s':>7}  {'first frame s (audio + compute)':<32}"
        f" {'per frame s: median / p90 / max':<32} {'frames/s':>8} {'lag s':>6}"
    )
    for pace in paces:
        run = run_stream(args, pcm, pace)
        f = figures(run, len(pcm))
        size = f"{run['size']['width']}x{run['size']['height']}"
        first = f"{f['first']:.3f} ({f['first_audio']:.3f} + {f['first'] - f['first_audio']:.3f})"
        per_frame = f"{f['median']:.3f} / {f['p90']:.3f} / {f['max']:.3f}"
        print(
            f"  {pace:<9} {size:>9} {f['frames']:>6} {run['setup']:>7.1f}  {first:<32} {per_frame:<32}"
            f" {f['throughput']:>8.1f} {f['lag']:>6.2f}"
        )
        summary = [line for line in run["stderr"] if line.startswith(("streamed", "model:", "stages", "backend"))]
        print("\n".join(f"    {line}" for line in summary))
    print(f"(load average {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
