"""Peak memory against audio length, and frames/s per stage, of ``generate`` and ``redub``.

    .venv/bin/python benchmarks/generate_bench.py [--model s2v_real] [--memory generate,redub]
        [--long_seconds 600] [--redub_long_seconds 180] [--quick] [--no-speed]

Memory: each command (``python -m keras_s2v.generate`` / ``keras_s2v.redub``,
``--quiet --overwrite``) runs in its own subprocess on ``--short_seconds`` (10 s)
and on ``--long_seconds`` (600 s; 60 s with ``--quick``) of speech: the media
folder's ``speech/english_60s.wav`` cut or looped into a WAV in a temporary
folder. ``redub`` gets a video as long as its speech (``--audio_fit trim``): the
clip looped by ffmpeg into a temporary mp4 (``-stream_loop``, re-encoded, no
audio), so a long run also decodes a long file; ``--redub_long_seconds``
(default ``--long_seconds``) sets its long length. Per run it prints the
child's peak RSS, the kernel's high-water mark from ``os.wait4`` (exact, no
sampling; includes the ffmpeg processes the child waited for, as a max, not a
sum), the sampled peak of the whole process tree (the child plus the ffmpeg
encoder and decoders running beside it, summed from /proc every 0.5 s; in a
10 s run the sampling can miss a short-lived ffmpeg, such as the audio check's
decoder of about 55 MiB, so that ratio reads high), and the child's RSS at
25/50/75/100% of the run (growth with length shows there). The requirement:
long and short peaks within 20%. The 600 s runs write 15000 frames each: about
3.5 minutes for generate and 7 for redub with s2v_real's int8 model on 2
shared cores. A preset ``--model`` runs as the commands run it (``--backend
auto``: its int8 TFLite model).

Speed: ``inference.generate_video`` (a still) and ``inference.redub_video`` (a
clip, audio_fit loop) in this process on the short WAV, printing end-to-end
frames/s and each stage's seconds and frames/s from the summary. End to end
includes loading the model ("other"). Other processes on the machine slow
every figure: they are indicative. Media from ``$KERAS_S2V_MEDIA`` (default
``../shared/media``); every output goes to a temporary folder, deleted after.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("KERAS_S2V_MEDIA", ROOT.parent / "shared" / "media"))
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def write_speech(path: Path, seconds: float, source: Path) -> Path:
    """``seconds`` of ``source`` (cut, or looped end to start) as a 16-bit WAV."""
    import soundfile

    waveform, rate = soundfile.read(str(source), dtype="int16")
    count = round(seconds * rate)
    soundfile.write(str(path), np.resize(waveform, count), rate, subtype="PCM_16")
    return path


def write_video(path: Path, seconds: float, source: Path) -> Path:
    """``seconds`` of ``source``'s picture (cut, or looped end to start) as an H.264 mp4 without audio."""
    command = ["ffmpeg", "-v", "error", "-y", "-nostdin", "-stream_loop", "-1", "-i", str(source), "-t", f"{seconds}"]
    command += ["-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", str(path)]
    subprocess.run(command, check=True)
    return path


def tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of ``pid``, RSS of ``pid`` and all its descendants) in bytes, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    own, total, todo = 0, 0, [pid]
    while todo:
        current = todo.pop()
        try:
            rss = int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            rss = 0
        own, total = (rss if current == pid else own), total + rss
        todo += children.get(current, [])
    return own, total


def measure(command: list[str]) -> dict:
    """Run ``command``; its peak RSS (wait4), sampled peak of its process tree, RSS samples, output."""
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        samples, tree_peak = [], 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            own, total = tree_rss(proc.pid)
            if own:  # 0: the child is exiting
                samples.append(own)
            tree_peak = max(tree_peak, total)
            time.sleep(0.5)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        output.seek(0)
        text = output.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{text[-3000:]}")
    frames = re.search(r"wrote .*?: (\d+) frames", text)
    return {
        "seconds": time.perf_counter() - start,
        "peak": usage.ru_maxrss * 1024,
        "tree_peak": tree_peak,
        "samples": samples,
        "frames": int(frames.group(1)) if frames else None,
    }


def memory_bench(kind: str, args, wavs: dict, tmp: Path) -> None:
    """Peak memory of one command on the short and the long audio, and their ratio."""
    seconds = dict(args.seconds)
    if kind == "redub":
        seconds["long"] = args.redub_long_seconds or seconds["long"]
        wavs = {**wavs, "long": write_speech(tmp / "redub_long.wav", seconds["long"], Path(args.speech))}
        videos = {name: write_video(tmp / f"video_{name}.mp4", s, Path(args.clip)) for name, s in seconds.items()}
        what = f"{Path(args.clip).name} looped into videos as long as the speech, --audio_fit trim"
    else:
        what = Path(args.still).name
    print(f"\npeak memory, {kind} ({what}; model {args.model}), one subprocess per run:")
    print(
        f"  {'audio':>7} {'frames':>7} {'wall s':>7} {'peak MiB':>9} {'+ffmpeg MiB':>12}"
        "  RSS MiB at 25/50/75/100% of the run"
    )
    runs = {}
    for name, wav in wavs.items():
        if kind == "redub":
            module, source = "keras_s2v.redub", ["--video", str(videos[name]), "--audio_fit", "trim"]
        else:
            module, source = "keras_s2v.generate", ["--face", args.still]
        command = [
            sys.executable,
            "-m",
            module,
            *source,
            "--audio",
            str(wav),
            "--model",
            args.model,
            "--out",
            str(tmp / f"{kind}_{name}.mp4"),
            "--quiet",
            "--overwrite",
        ]
        run = runs[name] = measure(command)
        s = run["samples"]
        trend = (
            "/".join(f"{s[min(len(s) - 1, int(q * len(s)))] / MIB:.0f}" for q in (0.25, 0.5, 0.75, 1.0)) if s else "-"
        )
        print(
            f"  {seconds[name]:>6g}s {run['frames'] or '?':>7} {run['seconds']:>7.0f} {run['peak'] / MIB:>9.0f} "
            f"{run['tree_peak'] / MIB:>12.0f}  {trend}"
        )
    ratio = runs["long"]["peak"] / runs["short"]["peak"]
    tree = runs["long"]["tree_peak"] / max(runs["short"]["tree_peak"], 1)
    verdict = "met" if abs(ratio - 1) < 0.2 and abs(tree - 1) < 0.2 else "NOT met"
    print(f"  long/short: peak {ratio:.2f}x, with ffmpeg {tree:.2f}x (requirement: within 20%: {verdict})")


def speed_bench(args, wav: Path, tmp: Path) -> None:
    """End-to-end and per-stage frames/s of generate_video and redub_video, in this process."""
    from export import presets
    from keras_s2v import inference

    model, note = presets.choose_model(args.model, log=print)  # what the commands run: a preset's int8 TFLite model
    if note:
        print(f"\n{note}")
    runs = {
        "generate": lambda out: inference.generate_video([args.still], wav, model, out, progress=False),
        "redub": lambda out: inference.redub_video(args.clip, wav, model, out, progress=False),
    }
    summaries = {kind: call(tmp / f"speed_{kind}.mp4") for kind, call in runs.items()}
    print(
        f"\nspeed on {args.seconds['short']:g} s of speech (model {args.model}; first run in this process): "
        "seconds per stage, and the frames/s that stage alone would sustain"
    )
    heads = [f"{kind} {s['width']}x{s['height']}, {s['frames']} frames" for kind, s in summaries.items()]
    print(f"  {'':<10}" + "".join(f"{head:>32}" for head in heads))
    for stage in inference.STAGES:
        cells = [s["stages"][stage] for s in summaries.values()]
        print(
            f"  {stage:<10}"
            + "".join(
                f"{c['seconds']:>20.2f} s {c['frames_per_second'] or 0:>7.0f}/s" if c["seconds"] else f"{'-':>32}"
                for c in cells
            )
        )
    other = [s["seconds"] - sum(v["seconds"] for v in s["stages"].values()) for s in summaries.values()]
    print(f"  {'other':<10}" + "".join(f"{o:>20.2f} s {'':>9}" for o in other) + "   (model loading, setup)")
    print(
        f"  {'total':<10}"
        + "".join(f"{s['seconds']:>20.2f} s {s['frames_per_second']:>7.1f}/s" for s in summaries.values())
    )
    print("  (generate's detect and identity run once, on the photo; redub's detect runs on every frame)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="s2v_real", help="preset, training workdir, export folder or .tflite")
    parser.add_argument("--still", default=str(MEDIA / "stills" / "woman_portrait.jpg"), help="photo for generate")
    parser.add_argument("--clip", default=str(MEDIA / "clips" / "hdtf_aoc.mp4"), help="video for redub")
    parser.add_argument("--speech", default=str(MEDIA / "speech" / "english_60s.wav"), help="speech cut / looped")
    parser.add_argument("--short_seconds", type=float, default=10.0, help="short audio (memory and speed)")
    parser.add_argument("--long_seconds", type=float, default=600.0, help="long audio (memory)")
    parser.add_argument(
        "--redub_long_seconds", type=float, help="long audio and video of redub (default: --long_seconds)"
    )
    parser.add_argument("--quick", action="store_true", help="long audio of 60 s instead of --long_seconds")
    parser.add_argument("--memory", default="generate", help="commands measured for memory: generate,redub or none")
    parser.add_argument("--speed", action=argparse.BooleanOptionalAction, default=True, help="in-process frames/s")
    args = parser.parse_args()
    args.seconds = {"short": args.short_seconds, "long": 60.0 if args.quick else args.long_seconds}
    kinds = [k.strip() for k in args.memory.split(",") if k.strip() not in ("", "none")]
    if unknown := set(kinds) - {"generate", "redub"}:
        parser.error(f"--memory: unknown command(s) {', '.join(sorted(unknown))}")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="generate_bench_") as folder:
        tmp = Path(folder)
        wavs = {
            name: write_speech(tmp / f"{name}.wav", seconds, Path(args.speech))
            for name, seconds in args.seconds.items()
        }
        print(
            f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start (figures are "
            f"indicative when other processes run); speech {args.speech}"
        )
        for kind in kinds:
            memory_bench(kind, args, wavs, tmp)
        if args.speed:
            speed_bench(args, wavs["short"], tmp)
    print(f"\n(whole run: {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
