"""The built-in demo end to end (what `make demo` runs), with the tiny config."""

import json

from keras_s2v import demo
from keras_s2v.data import audio, media


def test_demo_makes_a_talking_video(tmp_path):
    lines = []
    summary = demo.run_demo(tmp_path / "demo", "s2v_small_tiny", ["train.epochs=1"], log=lines.append)
    assert lines[0].startswith("1/4") and lines[-1].startswith("4/4")
    info = media.probe(summary["video"])
    speech = media.read_audio(tmp_path / "demo" / "speech.wav")
    assert info.has_audio and (info.width, info.height) == (112, 112)
    assert abs(info.duration - len(speech) / audio.SAMPLE_RATE) <= 1.5 / audio.FPS
    assert len(list(media.iter_frames(summary["video"]))) == audio.num_frames(len(speech))
    manifest = json.loads((tmp_path / "demo" / "shards" / "manifest.json").read_text())
    assert manifest["clips_ok"] == 12 and set(manifest["splits"]) == {"train", "validation"}
