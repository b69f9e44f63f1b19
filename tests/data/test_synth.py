"""Synthetic talking-face corpus: espeak-ng events, visemes, rendered clips, determinism, errors."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from keras_s2v.data import audio, media, synth
from keras_s2v.data.media import MediaError

ROOT = Path(__file__).resolve().parents[2]


def write_rgb(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


# --------------------------------------------------------------------------- espeak-ng


def test_event_struct_matches_speak_lib_h():
    # typedef struct { enum type; unsigned uid; int text_position, length, audio_position, sample;
    #                  void *user_data; union { int number; const char *name; char string[8]; } id; }
    ptr = ctypes.sizeof(ctypes.c_void_p)
    assert synth._EspeakEvent.audio_position.offset == 16
    assert synth._EspeakEvent.user_data.offset == 24
    assert synth._EspeakEvent.id.offset == 24 + ptr
    assert ctypes.sizeof(synth._EspeakEvent) == 24 + ptr + 8


def test_phoneme_events_are_monotonic_and_cover_the_audio():
    speech = synth.speak("papa mama baby. The birch canoe slid.", "en-us+m3", 170, 50)
    assert speech.waveform.dtype == np.float32 and speech.duration > 1.0
    assert 0.05 < np.abs(speech.waveform).max() <= 1.0
    starts = np.array([p.start for p in speech.phonemes])
    ends = np.array([p.end for p in speech.phonemes])
    assert len(starts) > 20
    assert np.all(np.diff(starts) >= 0)
    np.testing.assert_allclose(ends[:-1], starts[1:])  # contiguous
    assert 0.0 <= starts[0] < 0.2 and ends[-1] == pytest.approx(speech.duration)
    # No sound before the first phoneme; speech throughout the phoneme span.
    first = int(starts[0] * audio.SAMPLE_RATE)
    assert np.abs(speech.waveform[:first]).max() < 0.01
    symbols = [p.symbol for p in speech.phonemes]
    assert {"p", "m", "b", "A:"} <= set(symbols), symbols
    assert symbols.index("p") < symbols.index("m") < symbols.index("b")


def test_speech_is_reproducible_across_processes():
    """The same request in two fresh processes (as two CLI runs): identical audio and timeline.

    Within one process espeak-ng keeps some state across utterances in other voices, so only a
    fresh process (what `python -m keras_s2v.synth` is) promises byte-identical output.
    """
    code = (
        "import hashlib; from keras_s2v.data import synth; "
        "s = synth.speak('papa mama baby. The birch canoe slid.', 'en-us+m3', 170, 50); "
        "print(hashlib.sha1(s.waveform.tobytes()).hexdigest(), hashlib.sha1(repr(s.phonemes).encode()).hexdigest())"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout.split() == runs[1].stdout.split() and len(runs[0].stdout.split()) == 2


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(synth.EspeakError, match="no-such-voice"):
        synth.speak("hello", "no-such-voice")


def test_viseme_table_is_complete():
    for symbol, visemes in synth.PHONEME_VISEMES.items():
        assert visemes and all(v in synth.VISEMES for v in visemes), symbol
    for symbol in ("I2", "t#", "r-", "@5", "aI3", "i@3", "zz", "Q"):
        assert all(v in synth.VISEMES for v in synth.phoneme_visemes(symbol))
    assert synth.phoneme_visemes("m") == ("bilabial",) and synth.VISEMES["bilabial"].gap == 0.0


# --------------------------------------------------------------------------- mouth shapes


def test_bilabials_close_the_lips_and_open_vowels_open_the_jaw():
    clip = synth.synthesize_clip("astronaut", text="papa mama baby.", seconds=1.6, seed=0, size=128)
    lm = clip.landmarks
    width = float(synth.mouth_width(lm[0]))
    gap = synth.inner_lip_gap(lm) / width
    jaw = (synth.jaw_opening(lm) - synth.jaw_opening(lm[0])) / width
    times = synth.frame_times(len(lm))
    segments = clip.metadata["visemes"]
    bilabial = [s for s in segments if s["viseme"] == "bilabial"]
    assert {s["phoneme"] for s in bilabial} == {"p", "m", "b"}
    # Exactly closed at the bilabial times themselves ...
    mids = np.array([(s["start"] + s["end"]) / 2 for s in bilabial])
    plan = synth.plan_clip("astronaut", 0, text="papa mama baby.", seconds=1.6, size=128)
    track = synth.articulation_track(plan.segments, mids, plan.speech.duration)
    np.testing.assert_allclose(track[:, 1], 0.0, atol=1e-9)
    # ... and in every rendered frame whose centre falls inside one.
    inside = [t for t, c in enumerate(times) if any(s["start"] <= c < s["end"] for s in bilabial)]
    assert len(inside) >= 5
    assert np.abs(gap[inside]).max() < 0.02
    # Open vowels (A:) open lips and jaw wide, at the frame nearest their middle.
    opens = [s for s in segments if s["viseme"] == "open"]
    assert opens
    for s in opens:
        t = int(np.argmin(np.abs(times - (s["start"] + s["end"]) / 2)))
        assert gap[t] > 0.15 and jaw[t] > 0.1, (s, gap[t], jaw[t])
    assert gap.max() > 0.25 and jaw.max() > 0.2
    # Rest before speech: closed.
    assert abs(gap[0]) < 0.01


def test_blinks_close_the_eyes():
    rng = np.random.default_rng(0)
    blink = synth.blink_track(rng, 400)  # 16 s
    peaks = np.nonzero(blink > 0.99)[0]
    assert 2 <= len(peaks) <= 8  # every 2-6 s
    assert np.all(np.diff(peaks) >= 2.0 * audio.FPS)
    assert np.sum(blink > 0.05) / len(peaks) <= 6  # ~150 ms each
    rig = synth.FaceRig(synth.load_portrait("astronaut"), 128)
    open_ = rig.pose(np.array([0, 0, 1, 0, 0]), 0.0)
    closed = rig.pose(np.array([0, 0, 1, 0, 0]), 1.0)
    for up, lo in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert np.linalg.norm(open_[up] - open_[lo]) > 1.5
        assert np.linalg.norm(closed[up] - closed[lo]) < 1e-6


# --------------------------------------------------------------------------- clips


def test_render_clip_frames_audio_and_ground_truth(tmp_path):
    clip = synth.render_clip("astronaut", tmp_path / "spk" / "c.mp4", seconds=3.0, seed=1, size=160)
    info = media.probe(clip.video_path)
    assert info.has_video and info.has_audio and (info.width, info.height) == (160, 160)
    assert info.fps == pytest.approx(audio.FPS)
    decoded = list(media.iter_frames(clip.video_path))
    sound = media.read_audio(clip.video_path)
    assert 2.4 < len(clip.waveform) / audio.SAMPLE_RATE < 3.6
    assert clip.num_frames == audio.num_frames(len(clip.waveform)) == len(decoded)
    assert abs(audio.num_frames(len(sound)) - len(decoded)) <= 1
    assert abs(len(sound) / audio.SAMPLE_RATE - len(decoded) / audio.FPS) < 1.0 / audio.FPS + 0.03
    assert np.abs(sound).max() > 0.05
    meta = json.loads(clip.json_path.read_text())
    assert clip.json_path == clip.video_path.with_suffix(".json")
    assert meta["num_frames"] == len(meta["landmarks"]) == len(decoded)
    landmarks = np.array(meta["landmarks"])
    assert landmarks.shape == (len(decoded), 68, 2)
    assert landmarks.min() > 0 and landmarks.max() < 160
    assert meta["text"] and meta["voice"] and meta["seed"] == 1 and meta["speaker"] == "astronaut"
    assert isinstance(meta["rate"], int) and isinstance(meta["pitch"], int)
    assert [p["start"] for p in meta["phonemes"]] == sorted(p["start"] for p in meta["phonemes"])
    # The rendered mouth is where the ground truth says: dark inside the widest-open lips.
    t = int(np.argmax(synth.inner_lip_gap(landmarks)))
    centre = landmarks[t, 60:68].mean(0)
    x, y = np.round(centre).astype(int)
    assert clip.metadata["landmarks"] == meta["landmarks"]
    assert decoded[t][y - 1 : y + 2, x - 1 : x + 2].mean() < decoded[t].mean()
    with pytest.raises(FileExistsError, match="c.mp4"):
        synth.render_clip("astronaut", clip.video_path, seconds=3.0, seed=1, size=160)


def test_clips_are_deterministic_under_a_seed():
    a = synth.synthesize_clip("astronaut", seconds=1.2, seed=7, size=96)
    synth.synthesize_clip("astronaut", seconds=1.2, seed=8, size=96)  # engine state in between
    b = synth.synthesize_clip("astronaut", seconds=1.2, seed=7, size=96)
    np.testing.assert_array_equal(a.waveform, b.waveform)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.metadata == b.metadata
    c = synth.synthesize_clip("astronaut", seconds=1.2, seed=8, size=96)
    assert (
        c.metadata["voice"] != a.metadata["voice"]
        or c.metadata["text"] != a.metadata["text"]
        or not np.array_equal(c.landmarks, a.landmarks)
    )


# --------------------------------------------------------------------------- portraits and corpus


def test_portrait_without_a_face_names_the_file(tmp_path):
    blank = write_rgb(tmp_path / "wall.png", np.full((200, 200, 3), 180, np.uint8))
    with pytest.raises(synth.NoFaceError, match="wall.png.*no face"):
        synth.load_portrait(blank)
    junk = tmp_path / "notes.jpg"
    junk.write_text("not an image")
    with pytest.raises(MediaError, match="notes.jpg: not an image"):
        synth.load_portrait(junk)


def test_make_corpus_skips_faceless_portraits_and_existing_clips(tmp_path):
    portraits = tmp_path / "portraits"
    portraits.mkdir()
    write_rgb(portraits / "eileen.png", synth.load_portrait("astronaut").image)
    write_rgb(portraits / "wall.png", np.full((120, 160, 3), 90, np.uint8))
    out = tmp_path / "corpus"
    messages: list[str] = []
    kwargs = dict(
        portrait_dir=portraits,
        include_default_portraits=False,
        num_clips=2,
        seconds=1.0,
        size=64,
        seed=3,
        log=messages.append,
    )
    summary = synth.make_corpus(out, **kwargs)
    assert summary.written == ["eileen/clip_000", "eileen/clip_001"]
    assert [Path(p).name for p, _ in summary.skipped_portraits] == ["wall.png"]
    assert any("wall.png" in m and "no face" in m for m in messages)
    index = json.loads((out / "corpus.json").read_text())
    assert index["speakers"] == ["eileen"] and len(index["clips"]) == 2
    for entry in index["clips"]:
        assert (out / entry["video"]).is_file() and (out / entry["ground_truth"]).is_file()
    before = (out / "eileen" / "clip_000.mp4").stat().st_mtime_ns
    again = synth.make_corpus(out, **kwargs)
    assert again.written == [] and again.skipped_existing == ["eileen/clip_000", "eileen/clip_001"]
    assert (out / "eileen" / "clip_000.mp4").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="wall.png"):
        synth.make_corpus(
            tmp_path / "none", portraits=[portraits / "wall.png"], include_default_portraits=False, log=None
        )


def test_cli_renders_a_corpus(tmp_path):
    portraits = tmp_path / "p"
    portraits.mkdir()
    write_rgb(portraits / "eileen.jpg", synth.load_portrait("astronaut").image)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_s2v.synth",
            "--out",
            str(tmp_path / "out"),
            "--num-clips",
            "1",
            "--seconds",
            "1",
            "--size",
            "64",
            "--portraits",
            str(portraits),
            "--noinclude-default-portraits",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "1 clips written" in result.stdout
    assert (tmp_path / "out" / "eileen" / "clip_000.mp4").is_file()
    assert (tmp_path / "out" / "corpus.json").is_file()
