"""generate and redub end to end with a tiny model: lengths, sizes, frame rates, paste-back, bad inputs."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from keras_s2v import backends, inference, workdirs
from keras_s2v.configs.experiments import get_experiment
from keras_s2v.data import audio, media
from keras_s2v.models.deblur import DeblurCNN
from keras_s2v.models.speech2vid import Speech2Vid

SIZE = 256  # test photos and videos: small enough to be quick, large enough for real detection


def _save_untrained(workdir, name, masked_target=False):
    config = get_experiment(name)
    config.model.speech2vid.masked_target = masked_target
    workdirs.check_workdir(workdir, config)
    m, s = config.model, config.model.speech2vid
    if m.kind == "deblur":
        model = DeblurCNN(m.deblur.depth, m.deblur.filters)
    else:
        model = Speech2Vid(
            m.num_identity_images, m.width, m.embedding_dim, s.skip_connections, masked_target=s.masked_target
        )
    model.save(workdir / "model.keras")
    return workdir


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An untrained tiny model, a portrait, a two-face photo, speech, and a 30 fps video with a gap."""
    import skimage.data

    root = tmp_path_factory.mktemp("generate")
    portrait = cv2.resize(skimage.data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(root / "face.png"), portrait[..., ::-1])
    cv2.imwrite(str(root / "two.png"), np.concatenate([portrait, portrait[:, ::-1]], axis=1)[..., ::-1])
    cv2.imwrite(str(root / "noise.png"), np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), np.uint8))
    rng = np.random.default_rng(1)
    speech = (0.3 * np.sin(np.arange(int(1.3 * audio.SAMPLE_RATE)) * 0.07) * rng.uniform(0.5, 1, 1)).astype(np.float32)
    media.write_wav(root / "speech.wav", speech)
    media.write_wav(root / "silence.wav", np.zeros(audio.SAMPLE_RATE // 2, np.float32))
    (root / "empty.wav").write_bytes(b"")
    (root / "corrupt.mp3").write_bytes(rng.integers(0, 255, 5000, np.uint8).tobytes())
    # 30 frames at 30 fps: the portrait drifting right, then 6 frames with no face.
    with media.VideoWriter(root / "clip.mp4", SIZE, SIZE, 30, audio=np.zeros(audio.SAMPLE_RATE, np.float32)) as writer:
        for i in range(24):
            writer.write(np.roll(portrait, i, axis=1))
        for _ in range(6):
            writer.write(np.full((SIZE, SIZE, 3), 90, np.uint8))
    with media.VideoWriter(root / "faceless.mp4", SIZE, SIZE, 25) as writer:
        for _ in range(10):
            writer.write(np.full((SIZE, SIZE, 3), 90, np.uint8))
    data = (root / "clip.mp4").read_bytes()  # header intact, every frame's data zeroed
    payload = data.index(b"mdat") + 4
    (root / "broken.mp4").write_bytes(data[:payload] + bytes(len(data) - payload))
    _save_untrained(root / "model", "s2v_tiny")
    _save_untrained(root / "model5", "s2v_5img_tiny")
    _save_untrained(root / "masked", "s2v_tiny", masked_target=True)
    return root


def _duration(path) -> float:
    return media.probe(path).duration


def _frame_count(path) -> int:
    return sum(1 for _ in media.iter_frames(path, fps=media.probe(path).fps))


def test_generate_pastes_the_lower_face_back_into_the_whole_photo(files, tmp_path):
    out = tmp_path / "talking.mp4"
    summary = inference.generate_video([files / "face.png"], files / "speech.wav", files / "model", out, progress=False)
    seconds = 1.3
    assert summary["frames"] == audio.num_frames(int(seconds * audio.SAMPLE_RATE)) == _frame_count(out)
    info = media.probe(out)
    assert (info.width, info.height, info.fps) == (SIZE, SIZE, 25.0) and info.has_audio
    assert abs(info.duration - seconds) <= 1 / 25
    assert summary["stages"]["generate"]["seconds"] > 0 and summary["stages"]["blend"]["seconds"] > 0
    photo = media.read_image(files / "face.png").astype(int)
    frame = next(media.iter_frames(out)).astype(int)
    _, _, transform, landmarks = inference.align_photo(files / "face.png")
    from keras_s2v.paste import lower_face_mask

    inverse = cv2.invertAffineTransform(transform)
    mask = cv2.warpAffine(lower_face_mask(landmarks, 112), inverse, (SIZE, SIZE)) > 0
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    change = np.abs(frame - photo).mean(-1)
    assert np.median(change[~grown]) <= 3  # outside the lower face: the photo (up to H.264)
    assert change[mask].mean() > 2 * max(change[~grown].mean(), 1)  # inside: the untrained generator's face
    eyes = landmarks[36:48].mean(0)
    eyes_in_photo = (inverse @ np.array([*eyes, 1.0])).astype(int)
    assert not mask[eyes_in_photo[1], eyes_in_photo[0]]  # blended from below the eyes


def test_generate_crop_fps_and_silent_audio(files, tmp_path):
    out = tmp_path / "crop.mp4"
    summary = inference.generate_video(
        [files / "face.png"], files / "silence.wav", files / "model", out, fps=30, crop=True, progress=False
    )
    info = media.probe(out)
    assert (info.width, info.height, info.fps) == (112, 112, 30.0)
    assert summary["frames"] == audio.num_frames(audio.SAMPLE_RATE // 2, 30) == 15


def test_backends_agree_on_the_same_frames(files):
    keras_backend = backends.load_generator(files / "model")
    faces = np.stack([media.read_image(files / "face.png")[:112, :112]])
    identity = keras_backend.identity_features(faces)
    pcm = np.random.default_rng(0).uniform(-0.5, 0.5, (3, audio.MFCC_WINDOW_SAMPLES)).astype(np.float32)
    frames = keras_backend.generate_frame_pcm(identity, pcm)
    assert frames.shape == (3, 112, 112, 3)
    # The whole batch equals one window at a time: the identity is repeated, not mixed up.
    np.testing.assert_allclose(keras_backend.generate_frame_pcm(identity, pcm[1:2])[0], frames[1], atol=1e-5)


def test_redub_keeps_size_and_rate_and_counts_faceless_frames(files, tmp_path):
    out = tmp_path / "redub.mp4"
    summary = inference.redub_video(files / "clip.mp4", files / "speech.wav", files / "model", out, progress=False)
    info = media.probe(out)
    assert (info.width, info.height) == (SIZE, SIZE) and info.fps == pytest.approx(30, abs=1e-3)
    assert summary["frames"] == audio.num_frames(int(1.3 * audio.SAMPLE_RATE), 30) == 39 == _frame_count(out)
    assert abs(info.duration - 1.3) <= 1 / 30
    assert summary["frames_without_face"] == 6  # the clip's last 6 frames; the 9 looped ones all have a face
    source = np.stack(list(media.iter_frames(files / "clip.mp4", fps=30)))
    redubbed = np.stack(list(media.iter_frames(out, fps=30)))
    assert np.abs(redubbed[24:30].astype(int) - source[24:30]).max() <= 4  # passed through (up to H.264)
    assert np.abs(redubbed[:24].astype(int) - source[:24]).mean(axis=(1, 2, 3)).min() > 0.3  # faces replaced
    assert summary["faces"].startswith("tracked, detected on ") and summary["blend"] == "pyramid"
    # The former way, detecting on every frame, finds the same faces.
    summary = inference.redub_video(
        files / "clip.mp4",
        files / "speech.wav",
        files / "model",
        out,
        overwrite=True,
        progress=False,
        track_faces=False,
    )
    assert summary["frames_without_face"] == 6 and summary["faces"] == "detected on every frame"


def test_a_masked_target_model_redubs_each_frame_from_that_frame(files, tmp_path):
    from keras_s2v.data.face import FaceAnalyzer

    backend = backends.load_generator(files / "masked")
    assert backend.masked_target and backend.num_identity_images == 1
    portrait = media.read_image(files / "face.png")
    references = inference.frame_loop.face_input([inference.align_photo(files / "face.png")[0]])
    follower = inference.FaceFollower(FaceAnalyzer())
    darker = (portrait * 0.5).astype(np.uint8)
    targets = [follower.target(portrait), follower.target(darker), inference.Target(darker)]  # the last: no face
    identity = inference.frame_identity(backend, references)(targets)
    rows = identity["identity"]
    assert rows.shape[0] == 3
    assert np.abs(rows[0] - rows[1]).max() > 1e-4  # each frame its own target
    np.testing.assert_allclose(
        rows[2],
        backend.identity_features(  # no face: the reference is the target
            inference.frame_loop.identity_faces(backend, references)
        )["identity"][0],
        atol=1e-5,
    )
    assert isinstance(inference.frame_identity(backends.load_generator(files / "model"), references), dict)

    summary = inference.redub_video(
        files / "clip.mp4", files / "speech.wav", files / "masked", tmp_path / "r.mp4", progress=False
    )
    assert summary["frames"] == 39 and summary["frames_without_face"] == 6
    assert summary["stages"]["identity"]["seconds"] > 0
    # a photo is its own target
    summary = inference.generate_video(
        [files / "face.png"], files / "speech.wav", files / "masked", tmp_path / "photo.mp4", crop=True, progress=False
    )
    assert summary["frames"] == audio.num_frames(int(1.3 * audio.SAMPLE_RATE))


def test_a_masked_target_model_sees_only_the_upper_half_of_its_target(files):
    backend = backends.load_generator(files / "masked")
    photo = media.read_image(files / "face.png")[:112, :112]
    pcm = np.random.default_rng(0).uniform(-0.5, 0.5, (3, audio.MFCC_WINDOW_SAMPLES)).astype(np.float32)
    targets = np.stack([photo, photo, photo])
    targets[1, 56:] = 0  # lower half changed: unseen
    targets[2, :40] = 0  # upper part changed: seen
    identity = backend.identity_features(inference.frame_loop.identity_faces(backend, photo[None], targets))
    frames = backend.generate_frame_pcm(identity, np.repeat(pcm[:1], 3, axis=0))  # one identity row per window
    np.testing.assert_allclose(frames[1], frames[0], atol=1e-6)
    assert np.abs(frames[2] - frames[0]).max() > 1e-3
    with pytest.raises(ValueError, match="rows"):
        backend.generate_frame_pcm(identity, pcm[:2])


@pytest.mark.parametrize(("fit", "frames"), [("trim", 30), ("pad", 30)])
def test_redub_audio_fit(files, tmp_path, fit, frames):
    out = tmp_path / f"{fit}.mp4"
    summary = inference.redub_video(
        files / "clip.mp4", files / "speech.wav", files / "model", out, audio_fit=fit, progress=False
    )
    assert summary["frames"] == frames == _frame_count(out)
    short = tmp_path / f"{fit}_short.mp4"
    summary = inference.redub_video(
        files / "clip.mp4", files / "silence.wav", files / "model", short, audio_fit=fit, progress=False
    )
    assert summary["frames"] == {"trim": 15, "pad": 30}[fit]
    assert abs(_duration(short) - summary["frames"] / 30) <= 1 / 30


def test_deblur_companion_is_found_and_can_be_skipped(files, tmp_path):
    _save_untrained(files / "model" / "deblur", "deblur_tiny")
    try:
        summary = inference.generate_video(
            [files / "face.png"], files / "silence.wav", files / "model", tmp_path / "a.mp4", progress=False
        )
        assert summary["deblur"].startswith("keras") and summary["stages"]["deblur"]["seconds"] > 0
        summary = inference.generate_video(
            [files / "face.png"],
            files / "silence.wav",
            files / "model",
            tmp_path / "b.mp4",
            no_deblur=True,
            progress=False,
        )
        assert summary["deblur"].startswith("off") and not summary["stages"]["deblur"]["seconds"]
        with pytest.raises(backends.ModelError, match="not a deblurring CNN"):
            inference.generate_video(
                [files / "face.png"],
                files / "silence.wav",
                files / "model",
                tmp_path / "c.mp4",
                deblur=files / "model",
                progress=False,
            )
    finally:
        import shutil

        shutil.rmtree(files / "model" / "deblur")


def test_an_interrupted_run_leaves_no_output(files, tmp_path, monkeypatch):
    calls = []
    original = backends.KerasGenerator.generate_frame_pcm

    def interrupted(self, identity, pcm):
        calls.append(len(pcm))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, identity, pcm)

    monkeypatch.setattr(backends.KerasGenerator, "generate_frame_pcm", interrupted)
    out = tmp_path / "talking.mp4"
    with pytest.raises(KeyboardInterrupt):
        inference.generate_video(
            [files / "face.png"], files / "speech.wav", files / "model", out, batch_size=8, progress=False
        )
    assert list(tmp_path.iterdir()) == []


def _bad_inputs(files, tmp_path):
    f, out = files, tmp_path / "out.mp4"
    speech, face, model = f / "speech.wav", f / "face.png", f / "model"
    return [
        (lambda: inference.generate_video([f / "missing.jpg"], speech, model, out), "missing.jpg: file not found"),
        (lambda: inference.generate_video([face], f / "missing.wav", model, out), "missing.wav: file not found"),
        (
            lambda: inference.generate_video([face], speech, f / "nomodel", out),
            "nomodel: no such model file or folder, nor a preset (",
        ),
        (lambda: inference.generate_video([f / "noise.png"], speech, model, out), "noise.png: no face found"),
        (lambda: inference.generate_video([f / "two.png"], speech, model, out), "two.png: 2 faces found"),
        (lambda: inference.generate_video([face], f / "empty.wav", model, out), "empty.wav: empty file"),
        (lambda: inference.generate_video([face], f / "corrupt.mp3", model, out), "corrupt.mp3: not a media file"),
        (lambda: inference.generate_video([face], speech, f / "model5", out), "needs 5 face photo(s)"),
        (lambda: inference.generate_video([face], speech, model, tmp_path / "no" / "out.mp4"), "does not exist"),
        (lambda: inference.generate_video([face], f / "clip.mp4", speech, out), "speech.wav: not a model"),
        (lambda: inference.redub_video(f / "faceless.mp4", speech, model, out), "faceless.mp4: no face found"),
        (lambda: inference.redub_video(face, speech, model, out), "face.png: no video stream"),
        (lambda: inference.redub_video(f / "broken.mp4", speech, model, out), "broken.mp4: no video frame could be"),
        (lambda: inference.redub_video(f / "clip.mp4", speech, model, out, audio_fit="stretch"), "audio_fit"),
        (lambda: inference.redub_video(f / "clip.mp4", f / "faceless.mp4", model, out), "faceless.mp4: no audio"),
        (lambda: inference.redub_video(f / "clip.mp4", speech, model, out, blend="laplace"), "--blend must be one of"),
        (lambda: inference.generate_video([face], speech, model, out, blend="laplace"), "pyramid, poisson, got"),
    ]


def test_bad_inputs_name_the_file_and_the_problem(files, tmp_path):
    for call, message in _bad_inputs(files, tmp_path):
        with pytest.raises((ValueError, FileNotFoundError, FileExistsError, media.MediaError)) as error:
            call()
        assert message in str(error.value), (message, str(error.value))
    assert list(tmp_path.iterdir()) == []
    summary = inference.generate_video(
        [files / "two.png"],
        files / "silence.wav",
        files / "model",
        tmp_path / "right.mp4",
        face_index=1,
        progress=False,
    )
    assert (summary["width"], summary["height"]) == (2 * SIZE, SIZE)


def test_command_lines_report_errors_and_keep_existing_outputs(files, tmp_path):
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"keep me")

    def run(module, *args):
        return subprocess.run(
            [sys.executable, "-m", f"keras_s2v.{module}", "--model", str(files / "model"), "--quiet", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    result = run(
        "generate", "--face", str(files / "face.png"), "--audio", str(files / "speech.wav"), "--out", str(existing)
    )
    assert result.returncode == 2 and "already exists" in result.stderr and "Traceback" not in result.stderr
    assert existing.read_bytes() == b"keep me"
    result = run(
        "redub",
        "--video",
        str(files / "clip.mp4"),
        "--audio",
        str(files / "silence.wav"),
        "--out",
        str(existing),
        "--overwrite",
        "--audio-fit",
        "trim",
        "--blend",
        "poisson",
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert "15 frames" in result.stdout and "blend: poisson" in result.stdout and media.probe(existing).has_video
    assert not list(tmp_path.glob(".*partial*"))


# --- Hostile inputs (issue 16) ---------------------------------------------------------------


def _cut(path, share: float = 0.5):
    """A copy of ``path`` with only its first ``share`` of bytes, as an interrupted copy leaves it."""
    cut = path.with_name(f"cut_{path.name}")
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * share)])
    return cut


def _no_model(*args):
    raise AssertionError("the model was loaded before the input was checked")


def test_truncated_audio_is_an_error_and_leaves_no_output(files, tmp_path, monkeypatch):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir(), outputs.mkdir()
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:duration=3",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            str(inputs / "speech.m4a"),
        ],
        check=True,
    )
    cut = _cut(inputs / "speech.m4a")
    with monkeypatch.context() as patch:
        patch.setattr(inference, "_load", _no_model)
        with pytest.raises(media.MediaError, match=r"cut_speech.m4a: truncated or damaged: the audio decodes to 1\.\d"):
            inference.generate_video([files / "face.png"], cut, files / "model", outputs / "a.mp4", progress=False)
    # Found only when the stream ends (as if the first check missed it): the partial video is deleted.
    monkeypatch.setattr(media, "check_audio", lambda *args: None)
    with pytest.raises(media.MediaError, match=r"cut_speech.m4a: truncated or damaged"):
        inference.generate_video(
            [files / "face.png"], cut, files / "model", outputs / "b.mp4", batch_size=8, progress=False
        )
    assert list(outputs.iterdir()) == []


def test_truncated_video_in_redub_is_an_error_and_leaves_no_output(files, tmp_path, monkeypatch):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir(), outputs.mkdir()
    portrait, rng = media.read_image(files / "face.png"), np.random.default_rng(0)
    with media.VideoWriter(inputs / "clip.mp4", SIZE, SIZE, 25) as writer:  # 3 s; noise spreads the bytes over time
        for _ in range(75):
            writer.write(np.clip(portrait + rng.integers(-20, 20, portrait.shape), 0, 255).astype(np.uint8))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(inputs / "clip.mp4"), "-c", "copy", str(inputs / "clip.mkv")], check=True
    )
    with monkeypatch.context() as patch:
        patch.setattr(inference, "_load", _no_model)
        with pytest.raises(media.MediaError, match=r"cut_clip.mp4: truncated or damaged: the video holds \d+ frames"):
            inference.redub_video(
                _cut(inputs / "clip.mp4"), files / "speech.wav", files / "model", outputs / "a.mp4", progress=False
            )
    # Matroska declares no frame count: found when its frames run out, after part of the video was made.
    with pytest.raises(media.MediaError, match=r"cut_clip.mkv: truncated or damaged: the video decodes to 1\.\d+ s"):
        inference.redub_video(
            _cut(inputs / "clip.mkv"),
            files / "speech.wav",
            files / "model",
            outputs / "b.mp4",
            audio_fit="pad",
            batch_size=8,
            progress=False,
        )
    assert list(outputs.iterdir()) == []


def test_non_finite_audio_is_blamed_on_the_audio_before_the_model_runs(files, tmp_path, monkeypatch):
    import soundfile

    waveform = media.read_audio(files / "speech.wav")
    waveform[audio.SAMPLE_RATE] = np.inf
    soundfile.write(str(tmp_path / "inf.wav"), waveform, audio.SAMPLE_RATE, subtype="FLOAT")
    monkeypatch.setattr(inference, "_load", _no_model)
    message = r"inf.wav: the audio holds samples that are not a number \(NaN\) or infinite, the first at 1\.00 s"
    with pytest.raises(media.MediaError, match=message):
        inference.generate_video([files / "face.png"], tmp_path / "inf.wav", files / "model", tmp_path / "a.mp4")
    with pytest.raises(media.MediaError, match=message):
        inference.redub_video(files / "clip.mp4", tmp_path / "inf.wav", files / "model", tmp_path / "b.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["inf.wav"]


def test_relative_names_with_a_colon_are_files_not_protocols(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "take1:final.wav").write_bytes((files / "silence.wav").read_bytes())
    summary = inference.generate_video(
        [files / "face.png"], "take1:final.wav", files / "model", "talking:1.mp4", crop=True, progress=False
    )
    assert summary["frames"] == 13 and media.probe(tmp_path / "talking:1.mp4").has_audio


def test_a_face_photo_declaring_too_many_pixels_is_refused(files, tmp_path):
    from tests.data.test_media import _png_header

    (tmp_path / "huge.png").write_bytes(_png_header(50000, 50000))
    with pytest.raises(media.MediaError, match=r"huge.png: image too large: 50000 x 50000 pixels"):
        inference.generate_video(
            [tmp_path / "huge.png"], files / "speech.wav", files / "model", tmp_path / "a.mp4", progress=False
        )


def _written_frames(monkeypatch) -> list:
    """Every frame handed to ffmpeg, captured as it is written."""
    frames, original = [], media.VideoWriter.write

    def write(self, frame):
        frames.append(np.array(frame, copy=True))
        original(self, frame)

    monkeypatch.setattr(media.VideoWriter, "write", write)
    return frames


def _pipeline_threads() -> list:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("keras_s2v-")]


@pytest.mark.parametrize("command", ["redub", "generate"])
def test_the_threaded_pipeline_writes_exactly_the_serial_frames(files, tmp_path, monkeypatch, command):
    # A masked model (identity per frame), a clip with a moving face and faceless frames, batches across the cut.
    written = {}
    for threads in (False, True):
        frames = _written_frames(monkeypatch)
        if command == "redub":
            summary = inference.redub_video(
                files / "clip.mp4", files / "speech.wav", files / "masked", tmp_path / f"{threads}.mp4",
                batch_size=7, progress=False, threads=threads,
            )  # fmt: skip
            assert summary["frames_without_face"] == 6
        else:
            summary = inference.generate_video(
                [files / "face.png"], files / "speech.wav", files / "model", tmp_path / f"{threads}.mp4",
                batch_size=7, progress=False, threads=threads,
            )  # fmt: skip
        written[threads] = frames
        assert summary["frames"] == len(frames) > 30
        monkeypatch.undo()
    assert all(np.array_equal(a, b) for a, b in zip(written[False], written[True], strict=True))
    assert _pipeline_threads() == []


@pytest.mark.parametrize("command", ["generate", "redub"])
def test_audio_and_video_are_read_as_the_frames_go_out_not_ahead(files, tmp_path, monkeypatch, command):
    # Memory that does not grow with the length: the audio's windows and the video's frames are drawn a few
    # batches ahead of the encoder at most (the bounded queues), never all at once into a list.
    from keras_s2v import frame_loop

    drawn = {"audio_windows": 0, "iter_frames": 0}

    def counted(owner, name):
        function = getattr(owner, name)

        def draw(*args, **kwargs):
            for item in function(*args, **kwargs):
                drawn[name] += 1
                yield item

        monkeypatch.setattr(owner, name, draw)

    counted(frame_loop, "audio_windows")
    counted(media, "iter_frames")
    leads, write = [], media.VideoWriter.write

    def encode(self, frame):
        leads.append(max(drawn.values()) - self.frames_written)
        write(self, frame)

    monkeypatch.setattr(media.VideoWriter, "write", encode)
    speech = tmp_path / "speech.wav"
    media.write_wav(speech, 0.3 * np.sin(np.arange(4 * audio.SAMPLE_RATE, dtype=np.float32) * 0.05))
    batch_size, out = 2, tmp_path / "out.mp4"
    if command == "generate":
        summary = inference.generate_video(
            [files / "face.png"], speech, files / "model", out, batch_size=batch_size, progress=False
        )
    else:  # the 1 s clip, looped 4 times
        summary = inference.redub_video(
            files / "clip.mp4", speech, files / "model", out, batch_size=batch_size, progress=False
        )
    assert summary["frames"] == len(leads) >= 100 and drawn["iter_frames" if command == "redub" else "audio_windows"]
    # A batch being filled, one waiting and one worked on per thread (read, generate, blend), a batch of frames
    # before the encoder; redub's face smoothing looks 3 frames ahead.
    assert max(leads) <= 8 * batch_size + 4


def _fail_at(monkeypatch, owner, name, error, at: int):
    calls, original = [], getattr(owner, name)

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


@pytest.mark.parametrize("stage", ["read", "generate", "blend", "encode"])
def test_an_error_in_any_stage_is_raised_as_it_was_and_leaves_no_output(files, tmp_path, monkeypatch, stage):
    from keras_s2v.paste import FaceBlender

    error = media.MediaError(files / "clip.mp4", f"broken in the {stage} stage")
    owner, name = {
        "read": (inference.FaceFollower, "push"),
        "generate": (backends.KerasGenerator, "generate_frame_pcm"),
        "blend": (FaceBlender, "paste"),
        "encode": (media.VideoWriter, "write"),
    }[stage]
    _fail_at(monkeypatch, owner, name, error, at=2 if stage == "generate" else 12)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(media.MediaError, match=f"clip.mp4: broken in the {stage} stage"):
        inference.redub_video(
            files / "clip.mp4", files / "speech.wav", files / "model", out / "r.mp4", batch_size=5, progress=False
        )
    assert list(out.iterdir()) == []  # no partial file, under its name or any other
    assert _pipeline_threads() == []
