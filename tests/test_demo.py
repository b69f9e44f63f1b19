"""The built-in demo end to end (what `make demo` runs), with the tiny config and a corpus of 2 clips.

Every step runs as `make demo` runs it; only the synthetic corpus is smaller (1 clip per portrait
instead of 6), which is what the preparation, the training data and the evaluation scale with.
"""

import json

from keras_s2v import demo
from keras_s2v.data import audio, media


def test_demo_makes_a_talking_video(tmp_path):
    lines = []
    summary = demo.run_demo(
        tmp_path / "demo", "s2v_small_tiny", ["train.epochs=1"], tmp_path / "android", log=lines.append, num_clips=1
    )
    assert lines[0].startswith("1/7") and lines[-1].startswith("7/7")
    assert summary["preset"] == "s2v_real"  # the headline: the shipped preset on a portrait it never saw
    info = media.probe(summary["video"])
    speech = media.read_audio(tmp_path / "demo" / "speech.wav")
    portrait = media.read_image(tmp_path / "demo" / "portrait.png")
    assert info.has_audio and (info.height, info.width) == portrait.shape[:2]  # the whole portrait, face pasted back
    assert abs(info.duration - len(speech) / audio.SAMPLE_RATE) <= 1.5 / audio.FPS
    assert len(list(media.iter_frames(summary["video"]))) == audio.num_frames(len(speech))
    on_device = media.probe(summary["video_int8"])
    assert on_device.has_audio and (on_device.width, on_device.height) == (112, 112)
    assert summary["int8_chain_psnr"] >= 30
    android = sorted(p.name for p in (tmp_path / "android").iterdir())
    assert android == sorted(
        [
            "face.png",
            "speech.wav",
            "metadata.json",
            "golden_int8.png",
            "golden_float16.png",
            "s2v_real_int8.tflite",
            "s2v_real_float16.tflite",
        ]
    )
    assert (tmp_path / "demo" / "export" / "serving" / "s2v_real" / "1" / "saved_model.pb").exists()
    small = media.probe(summary["video_small"])  # the model trained in the demo says the same sentence
    assert small.has_audio and (small.height, small.width) == portrait.shape[:2]
    manifest = json.loads((tmp_path / "demo" / "shards" / "manifest.json").read_text())
    assert manifest["clips_ok"] == 2 and set(manifest["splits"]) == {"train", "validation"}
    # The evaluation of the demo model on the held-out tails, with the baselines.
    evaluation = summary["evaluation_summary"]
    assert set(evaluation) == {"model", "still", "shuffled audio", "ground truth"}
    assert evaluation["ground truth"]["lmd"]["mean"] == 0.0 and evaluation["model"]["psnr"]["mean"] > 10
    assert (tmp_path / "demo" / "evaluation" / "report.md").exists()
