"""generate and redub end to end, this checkout against another (the old code), in the same run.

    git archive main | tar -x -C /tmp/base        # the old code, beside this checkout
    .venv/bin/python benchmarks/baseline_bench.py --baseline /tmp/base [--model s2v_real] [--seconds 10]
        [--runs generate:stills/woman_portrait.jpg,redub:clips/hdtf_aoc.mp4,...] [--repeats 3]

Each run is a child process (``inference.generate_video`` / ``redub_video``
of that checkout, its ``--backend auto`` model: s2v_real's int8 TFLite), the
two checkouts alternating, ``--repeats`` times, so a busy spell of the
machine slows both. Per run: frames/s end to end (model loading included, as
the commands do) and the CPU it took per frame, in the Python process and in
its ffmpeg children (decoders, the encoder, the muxer): on a shared machine
the CPU per frame is the steadier figure. Printed: the best and the median of
each, and the ratio new / old of the medians. Media from ``$KERAS_S2V_MEDIA``
(default ``../shared/media``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from generate_bench import write_speech  # noqa: E402  (benchmarks/ is the script's folder)

MEDIA = Path(os.environ.get("KERAS_S2V_MEDIA", ROOT.parent / "shared" / "media"))
RUNS = "generate:stills/woman_portrait.jpg,redub:clips/hdtf_aoc.mp4,redub:clips/ls_woman_outdoor_portrait.mp4"

# The child: one command in a checkout, its summary and CPU use as one JSON line.
CHILD = """
import json, resource, sys
from export import presets
from keras_s2v import inference
kind, source, wav, model, out = sys.argv[1:6]
def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
model, _ = presets.choose_model(model, log=lambda *a: None)
own, children = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
run = inference.generate_video if kind == "generate" else inference.redub_video
summary = run([source] if kind == "generate" else source, wav, model, out, progress=False, overwrite=True)
summary["cpu_own"] = cpu(resource.RUSAGE_SELF) - own
summary["cpu_ffmpeg"] = cpu(resource.RUSAGE_CHILDREN) - children
print("SUMMARY " + json.dumps(summary))
"""


def run_child(tree: Path, kind: str, source: Path, wav: Path, model: str, out: Path) -> dict:
    """One command in ``tree``'s code, in a child process; its summary with ``cpu_own`` and ``cpu_ffmpeg``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", CHILD, kind, str(source), str(wav), model, str(out)]
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("SUMMARY ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{tree}: {kind} {source.name} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("SUMMARY ") :])


def describe(summaries: list[dict]) -> dict:
    """Best and median frames/s, median CPU ms per frame (own, ffmpeg, total)."""
    fps = [s["frames_per_second"] for s in summaries]
    per_frame = {
        key: statistics.median(1e3 * s[key] / s["frames"] for s in summaries) for key in ("cpu_own", "cpu_ffmpeg")
    }
    return {"best": max(fps), "median": statistics.median(fps), **per_frame, "cpu": sum(per_frame.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="a checkout of the old code (git archive main | tar -x)")
    parser.add_argument("--model", default="s2v_real", help="preset or model path, as the commands take it")
    parser.add_argument("--runs", default=RUNS, help="kind:media file, comma-separated")
    parser.add_argument("--speech", default=str(MEDIA / "speech" / "english_60s.wav"), help="speech cut or looped")
    parser.add_argument("--seconds", type=float, default=10.0, help="speech per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each checkout, alternating")
    args = parser.parse_args()
    trees = {"old": Path(args.baseline).resolve(), "new": ROOT}
    if not (trees["old"] / "keras_s2v").is_dir():
        parser.error(f"--baseline {args.baseline}: no keras_s2v package there")
    runs = [tuple(item.split(":", 1)) for item in args.runs.split(",") if item.strip()]

    start = time.perf_counter()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; old {trees['old']}, "
        f"new {trees['new']}; {args.seconds:g} s of speech, model {args.model}, {args.repeats} runs each, alternating"
    )
    with tempfile.TemporaryDirectory(prefix="baseline_bench_") as folder:
        wav = write_speech(Path(folder) / "speech.wav", args.seconds, Path(args.speech))
        for kind, name in runs:
            summaries = {key: [] for key in trees}
            for _ in range(args.repeats):
                for key, tree in trees.items():
                    out = Path(folder) / f"{key}.mp4"
                    summaries[key].append(run_child(tree, kind, MEDIA / name, wav, args.model, out))
            first = summaries["new"][0]
            print(f"\n  {kind} {Path(name).name} {first['width']}x{first['height']}, {first['frames']} frames:")
            figures = {key: describe(s) for key, s in summaries.items()}
            for key, f in figures.items():
                print(
                    f"    {key}: {f['median']:6.1f} frames/s median, {f['best']:6.1f} best; CPU per frame "
                    f"{f['cpu']:5.1f} ms ({f['cpu_own']:.1f} Python process, {f['cpu_ffmpeg']:.1f} ffmpeg)"
                )
            old, new = figures["old"], figures["new"]
            print(
                f"    new / old: {new['median'] / old['median']:.2f}x frames/s (median), "
                f"{new['best'] / old['best']:.2f}x (best); CPU per frame {new['cpu'] / old['cpu']:.2f}x"
            )
    print(f"\n(whole run: {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
