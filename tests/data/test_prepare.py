"""Preparation end to end on real media: bad inputs, every real clip format, resume, Beam."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from keras_s2v.data import audio, features, prepare, prepared


@pytest.fixture(scope="session")
def analyzer():
    from keras_s2v.data.face import FaceAnalyzer
    from keras_s2v.data.face.models import install_models

    install_models()  # idempotent: a fresh venv gets the detector files
    return FaceAnalyzer()


def trim(source, target, seconds: float):
    """Copy the first seconds of a clip (stream copy: fast, keeps the codec)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-t", str(seconds), "-c", "copy", str(target)], check=True
    )
    return target


def test_bad_inputs_are_reported_and_the_run_continues(tmp_path, media):
    bad = tmp_path / "inputs"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mp4").write_text("this is a text file, not a video\n")
    data = (media / "clips/vr_woman_flag.mp4").read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 2])
    shutil.copy(media / "speech/acknowledgement.m4a", bad / "speech_only.m4a")
    shutil.copy(media / "clips/mead_m030_silent.mp4", bad / "silent.mp4")
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    import cv2

    cv2.imwrite(str(bad / "no_face.jpg"), noise)
    shutil.copy(media / "stills/two_faces.jpg", bad / "two_faces.jpg")
    shutil.copy(media / "stills/man_portrait_3511px.jpg", bad / "portrait_3511px.jpg")
    trim(media / "clips/ls_woman_outdoor_portrait.mp4", bad / "hevc_portrait.mp4", 2.0)
    trim(media / "clips/hdtf_aoc.mp4", bad / "good.mp4", 2.0)
    given = sorted(bad.iterdir())
    before = {p.name: p.read_bytes() for p in given}

    messages = []
    manifest = prepare.prepare(
        [str(p) for p in given], tmp_path / "out", prepare.PrepareConfig(), progress=False, log=messages.append
    )
    by_name = {e["relative"]: e for e in manifest["entries"]}
    expected = {
        "empty.mp4": (prepare.DECODE_FAILURE, "empty file"),
        "notes.mp4": (prepare.DECODE_FAILURE, "not a media file"),
        "truncated.mp4": (prepare.DECODE_FAILURE, "not a media file"),
        "speech_only.m4a": (prepare.NO_VIDEO, "no video stream"),
        "silent.mp4": (prepare.NO_AUDIO, "no audio"),
        "no_face.jpg": (prepare.NOT_A_VIDEO, "still image"),
        "two_faces.jpg": (prepare.NOT_A_VIDEO, "still image"),
        "portrait_3511px.jpg": (prepare.NOT_A_VIDEO, "still image"),
    }
    for name, (reason, words) in expected.items():
        entry = by_name[name]
        assert entry["status"] == "skipped" and entry["reason"] == reason, entry
        assert name in entry["message"] and words in entry["message"], entry["message"]
        assert any(name in m and reason in m for m in messages)
    for name in ("hevc_portrait.mp4", "good.mp4"):
        assert by_name[name]["status"] == "ok", by_name[name]
        assert by_name[name]["mean_eye_error_px"] < 3.0
    assert manifest["clips_ok"] == 2 and manifest["clips_skipped"] == len(expected)
    assert {p.name: p.read_bytes() for p in given} == before  # inputs untouched
    assert not list((tmp_path / "out").rglob("*.partial*"))


def test_every_real_clip_with_audio_gives_an_aligned_track(tmp_path, media, analyzer):
    clips = sorted((media / "clips").glob("*.mp4"))
    config = prepare.PrepareConfig()
    eye_errors = []
    for clip in clips:
        short = trim(clip, tmp_path / clip.name, 2.0)
        segments, entry = prepare.process_clip(str(short), clip.name, config, analyzer)
        if clip.name == "mead_m030_silent.mp4":
            assert entry["reason"] == prepare.NO_AUDIO
            continue
        assert entry["status"] == "ok", entry
        assert segments and all(s.frames.shape[1:] == (112, 112, 3) for s in segments)
        eye_errors.append(entry["mean_eye_error_px"])
    assert np.mean(eye_errors) < 3.0, eye_errors


def test_resume_after_an_interrupted_run(tmp_path, media, monkeypatch):
    inputs = tmp_path / "inputs" / "speaker_a"
    inputs.mkdir(parents=True)
    trim(media / "clips/may_5s.mp4", inputs / "a.mp4", 1.5)
    trim(media / "clips/vr_woman_glasses.mp4", inputs / "b.mp4", 1.5)
    out = tmp_path / "out"
    config = prepare.PrepareConfig(min_track_frames=10)
    real_process = prepare.process_clip
    calls = []

    def crash_on_b(path, *args, **kwargs):
        calls.append(path)
        if path.endswith("b.mp4"):
            (out / prepared.CLIPS_DIR / "half-written.tfrecord.partial").write_bytes(b"\0" * 100)
            raise KeyboardInterrupt
        return real_process(path, *args, **kwargs)

    monkeypatch.setattr(prepare, "process_clip", crash_on_b)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare([str(inputs.parent)], out, config, progress=False)
    assert not (out / prepared.MANIFEST_FILE).exists()

    monkeypatch.setattr(
        prepare, "process_clip", lambda path, *a, **k: (calls.append(path), real_process(path, *a, **k))[1]
    )
    calls.clear()
    manifest = prepare.prepare([str(inputs.parent)], out, config, progress=False)
    assert [c.rsplit("/", 1)[-1] for c in calls] == ["b.mp4"]  # a.mp4 was finished before the crash
    assert manifest["clips_ok"] == 2
    split = manifest["entries"][0]["split"]
    import tensorflow as tf

    records = list(tf.data.TFRecordDataset(features.list_shards(out, split)))
    assert len(records) == manifest["splits"][split]["examples"] == 2

    calls.clear()
    again = prepare.prepare([str(inputs.parent)], out, config, progress=False)
    assert calls == [] and again["splits"] == manifest["splits"]  # idempotent

    with pytest.raises(ValueError, match="other options"):
        prepare.prepare([str(inputs.parent)], out, prepare.PrepareConfig(crop_size=96), progress=False)


def test_examples_hold_what_the_contract_says(tmp_path, media, analyzer):
    clip = trim(media / "clips/hdtf_katiehill.mp4", tmp_path / "k.mp4", 2.0)
    segments, entry = prepare.process_clip(str(clip), "k.mp4", prepare.PrepareConfig(), analyzer)
    segment = segments[0]
    wave = audio.to_float(segment.pcm)
    # The stored MFCC is exactly the timing module's window of each stored frame.
    for i in (0, segment.num_frames - 1):
        window = wave[audio.SAMPLES_PER_FRAME * i : audio.SAMPLES_PER_FRAME * i + audio.MFCC_WINDOW_SAMPLES]
        np.testing.assert_allclose(
            segment.mfcc[:, slice(*audio.mfcc_window_slice(i))], audio.mfcc_from_pcm_window(window), atol=2e-2
        )
    # Landmarks in the crop are the source landmarks through the stored transform.
    from keras_s2v.data.face import align

    np.testing.assert_allclose(
        align.apply_transform(segment.transform[0], segment.source_landmarks[0]), segment.landmarks[0], atol=1e-3
    )
    json.dumps(entry)  # the manifest entry is plain JSON


def test_beam_runner_writes_the_same_contract(tmp_path, media):
    import tensorflow as tf

    inputs = tmp_path / "inputs" / "id00042" / "video"
    inputs.mkdir(parents=True)
    trim(media / "clips/may_5s.mp4", inputs / "00001.mp4", 1.5)
    (inputs / "00002.mp4").write_bytes(b"")  # a bad clip does not stop the pipeline
    out = tmp_path / "beam"
    manifest = prepare.prepare_beam(
        [str(tmp_path / "inputs")],
        out,
        prepare.PrepareConfig(min_track_frames=10, split="train"),
        ["--direct_num_workers=1"],
    )
    assert manifest["clips_ok"] == 1 and manifest["skip_reasons"] == {prepare.DECODE_FAILURE: 1}
    assert manifest["splits"]["train"]["speakers"] == ["id00042"]
    shards = features.list_shards(out, "train")
    assert [s.rsplit("/", 1)[-1] for s in shards] == ["train-00000-of-00001.tfrecord"]
    example = next(iter(tf.data.TFRecordDataset(shards).map(features.decode_example)))
    assert example["frames"].shape[1:] == (112, 112, 3) and int(example["num_frames"]) >= 10
    assert not features.list_shards(out, "test")  # no empty shards for empty splits


def test_rotated_phone_video_is_read_upright(tmp_path, media, analyzer):
    """A portrait clip stored sideways with a display-rotation tag, as phones record."""
    sideways = tmp_path / "sideways.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(media / "clips/may_5s.mp4"),
            "-t",
            "1.5",
            "-vf",
            "crop=400:512,transpose=1",
            "-c:a",
            "copy",
            str(sideways),
        ],
        check=True,
    )
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(sideways),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            str(rotated),
        ],
        check=True,
    )
    from keras_s2v.data import media as media_io

    info = media_io.probe(rotated)
    assert info.rotation % 180 != 0 and (info.width, info.height) == (400, 512)
    assert next(media_io.iter_frames(rotated)).shape == (512, 400, 3)
    segments, entry = prepare.process_clip(
        str(rotated), "rotated.mp4", prepare.PrepareConfig(min_track_frames=10), analyzer
    )
    assert entry["status"] == "ok" and entry["mean_eye_error_px"] < 3.0


def test_holdout_tail_splits_every_track_in_time(tmp_path, media, analyzer):
    clip = trim(media / "clips/may_5s.mp4", tmp_path / "m.mp4", 2.0)
    config = prepare.PrepareConfig(split="train", holdout_tail=0.2)
    segments, entry = prepare.process_clip(str(clip), "m.mp4", config, analyzer)
    train, validation = ([s for s in segments if s.split == split] for split in ("train", "validation"))
    assert train and validation and entry["examples"] == {"train": len(train), "validation": len(validation)}
    assert train[-1].frame_index[-1] < validation[0].frame_index[0]  # the tail comes after the head
    total = sum(s.num_frames for s in segments)
    assert sum(s.num_frames for s in validation) == pytest.approx(0.2 * total, abs=1)


def test_a_sync_model_needs_the_callers_loader(tmp_path):
    """The sync expert comes from the caller (the command passes ``evaluation.sync.SyncExpert``).

    Without it, a sync model is refused before any work.
    """
    config = prepare.PrepareConfig(sync_model=str(tmp_path / "expert"))
    for run in (prepare.prepare, prepare.prepare_beam):
        with pytest.raises(ValueError, match="no sync_loader"):
            run([str(tmp_path)], tmp_path / "out", config)
    assert not (tmp_path / "out").exists()
