"""Issue 19's figures: the paste-back alone, the face stage alone, generate and redub end to end, each beside the
former way in the same run.

    .venv/bin/python benchmarks/realtime_bench.py [--model s2v_real] [--parts blend,faces,end_to_end]
        [--strip ../runs/blend_strip.png] [--seconds 10] [--redub clips/hdtf_aoc.mp4,...] [--repeats 1]
        [--ways serial_keras,serial_int8,threads_int8]

blend: on frames of real clips and a still (../shared/media) with faces the model
made for them (a masked-target model sees each frame), ``--blend poisson``
(cv2.seamlessClone) against ``pyramid`` (the default): ms per frame, the
frames/s it alone would sustain and the ratio; the pyramid blend's PSNR against
the Poisson one in the blended region and both seams (``paste.seam_strength``).
In a clip the face moves, so the pyramid blend makes a new placement every
frame (redub); on the still it reuses it (generate). Each blend runs on the same
frames in turn (after one warm-up paste), ``--blend_repeats`` times, the fastest pass counted. ``--strip``
writes rows of Poisson | pyramid | 8 x their difference, around the face.

faces: the face stage alone on decoded frames: detection on every frame
(``--notrack_faces``) against the tracker with its look-ahead smoothing (the
default), in turn, ``--face_repeats`` times: ms and frames/s (the fastest
pass), the detector's runs, and the pasted mouth's wander (the position
where the generated mouth lands: the canonical mouth through the
inverse alignment): RMS from its 7-frame moving average (the generate/redub
issue's figure, head motion included), RMS from a 7-frame local quadratic
(Savitzky-Golay: the shake, with little of the motion), and on one real frame
moved along a known smooth path (``--path_clip``), the RMS frame-to-frame change
of its error against the known path (the shake alone).

end_to_end: ``inference.generate_video`` on ``--still`` and
``inference.redub_video`` on each ``--redub`` clip, ``--seconds`` of
``--speech``, each of ``--ways`` in turn in this process (the first is the
baseline of the ratios): ``serial_keras`` (the stages one after another, the
preset's Keras model: main before the pipeline), ``serial_int8`` (the preset's
int8 TFLite model, built into the preset cache first if needed),
``threads_int8`` (the default: stages overlapped in threads, int8), and
``former`` (``--blend poisson``, ``--notrack_faces`` for redub, serial, Keras):
frames/s end to end (model loading included, as the commands do) and each
stage's busy seconds (with threads they overlap, so they add up to more than
the wall time).

Other processes on the machine slow every figure; the ratios, measured in the
same run, are what to compare. Media from ``$KERAS_S2V_MEDIA`` (default
``../shared/media``); outputs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generate_bench import write_speech  # noqa: E402  (benchmarks/ is the script's folder)

from keras_s2v import frame_loop, inference, paste  # noqa: E402
from keras_s2v.data import media  # noqa: E402
from keras_s2v.data.face import FaceAnalyzer, align  # noqa: E402

MEDIA = Path(os.environ.get("KERAS_S2V_MEDIA", ROOT.parent / "shared" / "media"))
BLEND_SOURCES = (
    "clips/hdtf_aoc.mp4",
    "clips/vr_woman_glasses.mp4",
    "stills/woman_portrait.jpg",
    "clips/vr_man_worldmap.mp4",
    "clips/st_obama_1.mp4",
    "clips/ls_woman_outdoor_portrait.mp4",
)
FACE_CLIPS = (
    "clips/hdtf_aoc.mp4",
    "clips/hdtf_katiehill.mp4",
    "clips/vr_man_suit.mp4",
    "clips/ls_woman_outdoor_portrait.mp4",
)
HEADLINE = (500, 640)  # the blend figure: frames 512 to 624 px


def _frames(path: Path, count: int) -> tuple[list[np.ndarray], float]:
    if path.parent.name == "stills":
        return [media.read_image(path)] * count, audio_fps()
    info = media.probe(path)
    return list(itertools.islice(media.iter_frames(path, fps=info.fps, info=info), count)), info.fps


def audio_fps() -> float:
    from keras_s2v.data import audio

    return float(audio.FPS)


def _generated_faces(backend, analyzer, path: Path, targets) -> np.ndarray:
    """The model's faces for these targets (random speech; what matters is that they are the model's)."""
    if path.parent.name == "stills":
        crop = inference.align_photo(path, analyzer)[0]
        identity = backend.identity_features(frame_loop.identity_faces(backend, frame_loop.face_input([crop])))
    else:
        info = media.probe(path)
        stills = inference.video_identity_crops(path, info, analyzer, backend.num_identity_images)
        identity = inference.frame_identity(backend, frame_loop.face_input(stills))
        if callable(identity):
            identity = identity(targets)
    speech = np.random.default_rng(0).uniform(-0.3, 0.3, 16000 * 4).astype(np.float32)
    windows = frame_loop.pcm_windows(speech, 25, len(targets), samples=backend.window_samples)
    return frame_loop.to_uint8(backend.generate_frame_pcm(identity, windows))


def _psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    mse = ((a.astype(float) - b)[where] ** 2).mean() if where.any() else 0.0
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def blend_bench(args, backend, analyzer) -> None:
    print(
        f"\nblend alone: {args.blend_frames} frames per source, faces from {args.model}; the fastest of "
        f"{args.blend_repeats} passes per blend"
    )
    print(
        f"  {'source':<36} {'poisson ms':>10} {'pyramid ms':>10} {'fps old':>8} {'fps new':>8} {'ratio':>6} "
        f"{'PSNR dB':>8} {'seam old':>9} {'seam new':>9}"
    )
    totals = {"headline": [0.0, 0.0], "all": [0.0, 0.0]}
    strip_rows = []
    for name in args.blend_sources:
        path = MEDIA / name
        frames, _ = _frames(path, args.blend_frames)
        follower = inference.FaceFollower(analyzer, track=False)
        targets = [t for t in (follower.target(f) for f in frames) if t.transform is not None]
        faces = _generated_faces(backend, analyzer, path, targets)
        passes = {"poisson": [], "pyramid": []}
        for _ in range(args.blend_repeats):  # the two blends in turn, so a busy spell slows both
            for blend, times in passes.items():
                blender = paste.FaceBlender(blend)
                blender.paste(targets[0].frame, faces[0], targets[0].transform, targets[0].landmarks_crop)  # warm-up
                start = time.perf_counter()
                for target, face in zip(targets, faces):
                    blender.paste(target.frame, face, target.transform, target.landmarks_crop)
                times.append((time.perf_counter() - start) / len(targets))
        seconds = {blend: min(times) for blend, times in passes.items()}
        psnrs, seams = [], []
        for target, face in zip(targets, faces):
            old = paste.paste_face(target.frame, face, target.transform, target.landmarks_crop, blend="poisson")
            new = paste.paste_face(target.frame, face, target.transform, target.landmarks_crop, blend="pyramid")
            changed = (np.abs(old.astype(int) - target.frame).max(-1) > 0) | (
                np.abs(new.astype(int) - target.frame).max(-1) > 0
            )
            psnrs.append(_psnr(new, old, changed))
            seams.append(
                [paste.seam_strength(x, target.frame, target.transform, target.landmarks_crop) for x in (old, new)]
            )
        if len(strip_rows) < args.strip_rows:
            strip_rows.append(_strip_row(name, old, new, target))
        height, width = frames[0].shape[:2]
        old_s, new_s = seconds["poisson"], seconds["pyramid"]
        for key in ("headline", "all") if HEADLINE[0] <= max(height, width) <= HEADLINE[1] else ("all",):
            totals[key][0] += old_s
            totals[key][1] += new_s
        seam_old, seam_new = np.mean(seams, axis=0)
        label = f"{Path(name).name} {width}x{height}"
        print(
            f"  {label:<36} {1e3 * old_s:>10.2f} {1e3 * new_s:>10.2f} {1 / old_s:>8.1f} {1 / new_s:>8.1f} "
            f"{old_s / new_s:>5.1f}x {np.mean(psnrs):>8.1f} {seam_old:>9.2f} {seam_new:>9.2f}"
        )
    for key, (old_s, new_s) in totals.items():
        what = "512-624 px frames" if key == "headline" else "all sources"
        if new_s:
            print(f"  {what}: pyramid {old_s / new_s:.1f}x faster than poisson (summed ms per frame)")
    if args.strip:
        _write_strip(Path(args.strip), strip_rows)


def _strip_row(name, old, new, target) -> np.ndarray:
    """Poisson | pyramid | 8 x |difference|, cropped around the pasted face, 360 px wide each."""
    import cv2

    changed = np.abs(old.astype(int) - target.frame).max(-1) > 0
    ys, xs = np.nonzero(changed)
    pad = int(0.25 * max(ys.max() - ys.min(), xs.max() - xs.min()))
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad, old.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad, old.shape[1])
    difference = np.clip(8 * np.abs(new.astype(int) - old), 0, 255).astype(np.uint8)
    tiles = []
    for title, image in (("poisson", old), ("pyramid", new), ("8 x |difference|", difference)):
        tile = image[y0:y1, x0:x1]
        tile = cv2.resize(tile, (360, round(360 * tile.shape[0] / tile.shape[1])), interpolation=cv2.INTER_AREA)
        tile = np.ascontiguousarray(tile)
        cv2.putText(tile, f"{Path(name).stem}: {title}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def _write_strip(path: Path, rows) -> None:
    import cv2

    width = max(r.shape[1] for r in rows)
    image = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image[..., ::-1])
    print(f"  strip (poisson | pyramid | 8 x difference): {path}")


def _mouth(target) -> np.ndarray:
    mouth = align.canonical_landmarks(inference.IMAGE_SIZE)[48:68].mean(0)
    return align.apply_transform(align.invert_transform(target.transform), mouth[None])[0]


def _follow(follower, frames) -> tuple[list, float]:
    start = time.perf_counter()
    targets = []
    for frame in frames:
        targets += follower.push(frame)
    targets += follower.flush()
    return targets, (time.perf_counter() - start) / len(frames)


def _rms(d: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean((d**2).sum(-1))))


def faces_bench(args, analyzer) -> None:
    from scipy.signal import savgol_filter

    print(
        f"\nface stage alone (decoded frames, first {args.face_frames} of each clip): detect on every frame "
        "(--notrack_faces) vs track + look-ahead smoothing (the default)"
    )
    print(
        f"  {'clip':<40} {'old ms':>7} {'new ms':>7} {'fps old':>8} {'fps new':>8} {'ratio':>6} {'detector runs':>14}"
        f"   wander old -> new (px RMS: from MA7 | from SG7)"
    )
    for name in args.face_clips:
        frames, _ = _frames(MEDIA / name, args.face_frames)
        runs, fastest = {}, {"old": math.inf, "new": math.inf}
        for key in [*fastest] * args.face_repeats:  # the two ways in turn, so a busy spell slows both
            follower = inference.FaceFollower(analyzer, track=key == "new")
            targets, seconds = _follow(follower, frames)
            fastest[key] = seconds = min(seconds, fastest[key])
            mouths = np.array([_mouth(t) if t.transform is not None else [np.nan, np.nan] for t in targets])
            kernel = np.ones(7) / 7
            padded = np.pad(mouths, ((3, 3), (0, 0)), mode="edge")
            moving = np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(2)], 1)
            quadratic = savgol_filter(mouths, 7, 2, axis=0) if np.isfinite(mouths).all() else np.nan
            runs[key] = (seconds, follower, _rms(mouths - moving), _rms(mouths - quadratic))
        (old_s, _, old_ma, old_sg), (new_s, follower, new_ma, new_sg) = runs["old"], runs["new"]
        height, width = frames[0].shape[:2]
        label = f"{Path(name).name} {width}x{height}, {len(frames)} fr"
        detections = f"{follower.tracker.stats.detections} of {len(frames)}"
        print(
            f"  {label:<40} {1e3 * old_s:>7.2f} {1e3 * new_s:>7.2f} {1 / old_s:>8.1f} {1 / new_s:>8.1f} "
            f"{old_s / new_s:>5.1f}x {detections:>14}   {old_ma:.2f} -> {new_ma:.2f} | {old_sg:.2f} -> {new_sg:.2f}"
        )
    _known_path(args, analyzer)


def _known_path(args, analyzer) -> None:
    """A real frame moved along a known smooth path: the pasted mouth's error against it, and its shake."""
    import cv2

    source = media.read_frame_at(MEDIA / args.path_clip, 1.0)
    height, width = source.shape[:2]
    start = _mouth(inference.FaceFollower(analyzer, track=False).target(source))
    print(f"  {Path(args.path_clip).name} frame at 1 s moved along a known path (shift, turn and zoom), 100 frames:")
    for speed in (0.5, 1.0, 2.0):
        frames, truth = [], []
        for t in range(100):
            matrix = cv2.getRotationMatrix2D(
                (width / 2, height / 2), math.degrees(0.05 * speed * math.sin(2 * math.pi * t / 60)), 1.0
            )
            matrix[:, :2] *= 1 + 0.04 * speed * math.sin(2 * math.pi * t / 45)
            matrix[:, 2] += (
                20 * speed * math.sin(2 * math.pi * t / 50),
                12 * speed * math.sin(2 * math.pi * t / 37 + 1),
            )
            frames.append(cv2.warpAffine(source, matrix, (width, height), borderMode=cv2.BORDER_REFLECT))
            truth.append(matrix[:, :2] @ start + matrix[:, 2])
        truth = np.array(truth)
        cells = []
        for key, follower in (
            ("old", inference.FaceFollower(analyzer, track=False)),
            ("new", inference.FaceFollower(analyzer)),
        ):
            error = np.array([_mouth(t) for t in _follow(follower, frames)[0]]) - truth
            cells.append(f"{key}: error {_rms(error):.2f}, shake {_rms(np.diff(error, axis=0)):.2f}")
        fastest = np.abs(np.diff(truth, axis=0)).max()
        print(f"    up to {fastest:.1f} px a frame: {'; '.join(cells)} px RMS")


# End-to-end ways: (label, model form, options). "former" is the way before issue 19's blend and tracker.
WAYS = {
    "former": ("Poisson, detect every frame, serial, Keras", "keras", {"blend": "poisson", "threads": False}),
    "serial_keras": ("serial, Keras (main before this change)", "keras", {"threads": False}),
    "serial_int8": ("serial, int8 TFLite", "tflite_int8", {"threads": False}),
    "threads_int8": ("threads, int8 TFLite (the default)", "tflite_int8", {}),
}


def end_to_end_bench(args, wav: Path, tmp: Path) -> None:
    from export import presets

    models = {"keras": args.model}
    if any(WAYS[w][1] == "tflite_int8" for w in args.ways):
        models["tflite_int8"], note = presets.choose_model(args.model, "tflite_int8", log=print)
        print(f"  {note}")
    inputs = [("generate", args.still)] + [("redub", clip) for clip in args.redub]
    print(
        f"\nend to end, {args.seconds:g} s of speech, model {args.model} (loading included, as the commands do); "
        f"ratios against {WAYS[args.ways[0]][0]}"
    )
    for kind, source in inputs:
        summaries = {}
        for _ in range(args.repeats):
            for way in args.ways:
                _, form, options = WAYS[way]
                options = dict(options)
                if way == "former" and kind == "redub":
                    options["track_faces"] = False
                out = tmp / f"{kind}_{way}.mp4"
                run = inference.generate_video if kind == "generate" else inference.redub_video
                first = [MEDIA / source] if kind == "generate" else MEDIA / source
                summary = run(first, wav, models[form], out, progress=False, overwrite=True, **options)
                best = summaries.get(way)
                if best is None or summary["frames_per_second"] > best["frames_per_second"]:
                    summaries[way] = summary
        base = summaries[args.ways[0]]
        print(f"  {kind} {Path(source).name} {base['width']}x{base['height']}, {base['frames']} frames:")
        for way in args.ways:
            summary = summaries[way]
            busy = ", ".join(f"{k} {v['seconds']:.2f}" for k, v in summary["stages"].items() if v["seconds"])
            other = summary["seconds"] - sum(v["seconds"] for v in summary["stages"].values())
            print(
                f"    {WAYS[way][0]:<45} {summary['frames_per_second']:>6.1f} frames/s "
                f"({summary['frames_per_second'] / base['frames_per_second']:.2f}x)  {summary['seconds']:.1f} s; "
                f"stages (s, busy; they overlap with threads): {busy}; outside the stages {other:.2f} s"
            )
        if kind == "redub":
            print(f"    faces: {summaries[args.ways[-1]]['faces']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="s2v_real", help="preset, training workdir, export folder or .tflite")
    parser.add_argument("--parts", default="blend,faces,end_to_end", help="which of blend,faces,end_to_end")
    parser.add_argument("--blend_sources", default=",".join(BLEND_SOURCES), help="media files for the blend part")
    parser.add_argument("--blend_frames", type=int, default=12, help="frames per source (a still repeats)")
    parser.add_argument("--blend_repeats", type=int, default=3, help="passes per blend; the fastest counts")
    parser.add_argument("--strip", default=None, help="write the side-by-side strip image here")
    parser.add_argument("--strip_rows", type=int, default=4, help="sources in the strip (the first ones)")
    parser.add_argument("--face_clips", default=",".join(FACE_CLIPS), help="clips for the face stage")
    parser.add_argument("--face_frames", type=int, default=150, help="frames per clip for the face stage")
    parser.add_argument("--face_repeats", type=int, default=2, help="passes per way; the fastest counts")
    parser.add_argument("--path_clip", default="clips/hdtf_aoc.mp4", help="the frame moved along a known path")
    parser.add_argument("--still", default="stills/woman_portrait.jpg", help="photo for generate")
    parser.add_argument(
        "--redub",
        default="clips/hdtf_aoc.mp4,clips/ls_woman_outdoor_portrait.mp4",
        help="clips for redub, comma-separated (default: 512 px and 1080 x 1920)",
    )
    parser.add_argument("--speech", default=str(MEDIA / "speech" / "english_60s.wav"), help="speech cut or looped")
    parser.add_argument("--seconds", type=float, default=10.0, help="speech for the end-to-end runs")
    parser.add_argument("--repeats", type=int, default=1, help="end-to-end runs of each way; the fastest counts")
    parser.add_argument(
        "--ways",
        default="serial_keras,serial_int8,threads_int8",
        help=f"end-to-end ways, the first is the baseline: {', '.join(WAYS)}",
    )
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if unknown := parts - {"blend", "faces", "end_to_end"}:
        parser.error(f"--parts: unknown part(s) {', '.join(sorted(unknown))}")
    if unknown := {w.strip() for w in args.ways.split(",")} - set(WAYS) - {""}:
        parser.error(f"--ways: unknown way(s) {', '.join(sorted(unknown))}")
    for option in ("blend_sources", "face_clips", "redub", "ways"):
        setattr(args, option, [x.strip() for x in getattr(args, option).split(",") if x.strip()])
    for name in [*args.blend_sources, *args.face_clips, *args.redub, args.still, args.path_clip]:
        if not (MEDIA / name).is_file():
            parser.error(f"{MEDIA / name}: file not found (set KERAS_S2V_MEDIA)")

    start = time.perf_counter()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start (figures are "
        "indicative when other processes run; compare the ratios)"
    )
    analyzer = FaceAnalyzer()
    if "blend" in parts:
        from keras_s2v import backends

        blend_bench(args, backends.load_generator(args.model), analyzer)
    if "faces" in parts:
        faces_bench(args, analyzer)
    if "end_to_end" in parts:
        with tempfile.TemporaryDirectory(prefix="realtime_bench_") as folder:
            wav = write_speech(Path(folder) / "speech.wav", args.seconds, Path(args.speech))
            end_to_end_bench(args, wav, Path(folder))
    print(f"\n(whole run: {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
