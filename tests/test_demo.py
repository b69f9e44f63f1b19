"""The built-in demo end to end (what `make demo` runs), with the tiny config."""

import json

from keras_s2v import demo
from keras_s2v.data import audio, media


def test_demo_makes_a_talking_video(tmp_path):
    lines = []
    summary = demo.run_demo(tmp_path / "demo", "s2v_small_tiny", ["train.epochs=1"], tmp_path / "android", log=lines.append)
    assert lines[0].startswith("1/5") and lines[-1].startswith("5/5")
    info = media.probe(summary["video"])
    speech = media.read_audio(tmp_path / "demo" / "speech.wav")
    assert info.has_audio and (info.width, info.height) == (112, 112)
    assert abs(info.duration - len(speech) / audio.SAMPLE_RATE) <= 1.5 / audio.FPS
    assert len(list(media.iter_frames(summary["video"]))) == audio.num_frames(len(speech))
    on_device = media.probe(summary["video_int8"])
    assert on_device.has_audio and (on_device.width, on_device.height) == (112, 112)
    assert summary["int8_chain_psnr"] >= 30
    android = sorted(p.name for p in (tmp_path / "android").iterdir())
    assert android == sorted(["face.png", "speech.wav", "metadata.json", "golden_int8.png", "golden_float16.png",
                              "s2v_small_tiny_int8.tflite", "s2v_small_tiny_float16.tflite"])  # fmt: skip
    assert (tmp_path / "demo" / "export" / "serving" / "s2v_small_tiny" / "1" / "saved_model.pb").exists()
    manifest = json.loads((tmp_path / "demo" / "shards" / "manifest.json").read_text())
    assert manifest["clips_ok"] == 12 and set(manifest["splits"]) == {"train", "validation"}


def test_generate_reports_bad_inputs_and_keeps_existing_output(tmp_path):
    import subprocess
    import sys

    import cv2
    import numpy as np

    from keras_s2v.configs.experiments import get_experiment
    from keras_s2v.models.speech2vid import Speech2Vid
    from keras_s2v.training import train_lib

    workdir = tmp_path / "run"
    config = get_experiment("s2v_tiny")
    train_lib.check_workdir(workdir, config)
    m = config.model
    Speech2Vid(m.num_identity_images, m.width, m.embedding_dim, m.skip_connections).save(workdir / "model.keras")
    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"keep me")
    speech = tmp_path / "speech.wav"
    media.write_wav(speech, np.zeros(audio.SAMPLE_RATE // 2, np.float32))

    def generate(*args):
        return subprocess.run([sys.executable, "-m", "keras_s2v.generate", "--model", str(workdir), *args],
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    cases = [
        (["--face", str(noise), "--audio", str(speech), "--out", str(tmp_path / "a.mp4")], "noise.png: no face found"),
        (["--face", str(tmp_path / "missing.jpg"), "--audio", str(speech), "--out", str(tmp_path / "b.mp4")],
         "missing.jpg: file not found"),
    ]
    for args, message in cases:
        result = generate(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-1500:]
    import skimage.data

    face = tmp_path / "face.png"
    cv2.imwrite(str(face), skimage.data.astronaut()[..., ::-1])
    result = generate("--face", str(face), "--audio", str(tmp_path / "nothing.wav"), "--out", str(tmp_path / "c.mp4"))
    assert result.returncode == 2 and "nothing.wav: file not found" in result.stderr
    result = generate("--face", str(face), "--audio", str(speech), "--out", str(existing))
    assert result.returncode == 2 and "already exists" in result.stderr and existing.read_bytes() == b"keep me"
    result = generate("--face", str(face), "--audio", str(speech), "--out", str(existing), "--overwrite")
    assert result.returncode == 0, result.stderr[-1500:]
    assert media.probe(existing).has_video and not list(tmp_path.glob(".*partial*"))
