"""Export of a masked-target Speech2Vid (the frame being made, lower half masked, before the faces): the
``target`` input, parity, every backend on the same target + faces, the LiteRT and TF Serving clients."""

import json

import cv2
import numpy as np
import pytest

from export import export_model, formats
from export.exporter import read_samples
from keras_s2v import backends, frame_loop, lite_client, model_files, serving_client
from keras_s2v.data import audio, media
from keras_s2v.signature_names import ON_DEVICE_SIGNATURES

MASKED = "model.speech2vid.masked_target=true"
FORMATS = ("saved_model", "tflite_float32", "tflite_float16", "tflite_int8", "onnx")
IMAGE = {"shape": [-1, 112, 112, 3], "dtype": "uint8"}


@pytest.fixture(scope="module")
def workdir(trained_tiny):
    return trained_tiny("s2v_tiny", MASKED)  # shared with test_presets.py: read only


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
    """One export for every test, with the Android assets (float16 and int8, as they ship)."""
    root = tmp_path_factory.mktemp("export")
    report = export_model(
        workdir, root / "out", android_assets=root / "android", calibration_samples=8, log=lambda _: None
    )
    return report, root / "out", root / "android"


@pytest.fixture(scope="module")
def clip(synth_shards):
    """Three held-out examples: each its own target frame and window, one reference face for all."""
    samples = read_samples(synth_shards, "validation", 1, 3, masked_target=True)
    return samples["faces"][:1], samples["target"], samples["pcm"]


def test_export_takes_the_target_and_passes_parity(exported):
    report, out, android = exported
    rows = json.loads((out / "parity.json").read_text())["rows"]
    assert rows == report["parity"] and all(r["ok"] for r in rows)
    assert {r["format"] for r in rows} == set(FORMATS)
    assert any(r["format"] == "saved_model" and r["check"] == "serving_default" for r in rows)
    int8_chain = next(r for r in rows if r["format"] == "tflite_int8" and r["check"].startswith("chain"))
    assert int8_chain["metric"] == "psnr_db" and int8_chain["value"] >= 30
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["masked_target"] is True and metadata["model_config"]["speech2vid"]["masked_target"] is True
    assert metadata["signatures"]["identity_features"]["inputs"] == {"target": IMAGE, "faces": IMAGE}
    assert sorted(metadata["signatures"]["serving_default"]["inputs"]) == ["faces", "pcm", "target"]
    assert sorted(metadata["signatures"]["generate_frame_pcm"]["inputs"]) == ["identity", "pcm", "skip_14", "skip_6"]
    assert "lower half" in metadata["normalisation"]["target"]
    embedded = model_files.read_embedded_metadata(out / "tflite" / "s2v_tiny_int8.tflite")
    assert embedded["masked_target"] is True
    assert embedded["signatures"]["identity_features"]["inputs"]["target"]["shape"] == [1, 112, 112, 3]
    runner = formats.LiteRunner(out / "tflite" / "s2v_tiny_float32.tflite")
    assert sorted(runner.signature_names()) == sorted(ON_DEVICE_SIGNATURES)
    assert sorted(runner.interpreter.get_signature_list()["identity_features"]["inputs"]) == ["faces", "target"]
    assert "first face of face.png" in json.loads((android / "metadata.json").read_text())["android"]["target"]


def _forms(workdir, out):
    return {
        "keras": backends.load_generator(workdir),
        "saved_model": backends.load_generator(out),
        "tflite": backends.load_generator(out / "tflite" / "s2v_tiny_float32.tflite"),
    }


def test_every_backend_takes_one_target_per_row_and_agrees_with_keras(exported, workdir, clip):
    _, out, _ = exported
    faces, targets, pcm = clip
    frames, photo = {}, {}
    for name, backend in _forms(workdir, out).items():
        assert backend.masked_target and backend.num_identity_images == 1, name
        identity = backend.identity_features(frame_loop.identity_faces(backend, faces, targets))  # a video's frames
        assert {len(v) for v in identity.values()} == {3}, name
        frames[name] = backend.generate_frame_pcm(identity, pcm)  # window i with row i
        photo[name] = backend.generate_frame_pcm(
            backend.identity_features(frame_loop.identity_faces(backend, faces)), pcm
        )
    assert frames["keras"].shape == photo["keras"].shape == (3, 112, 112, 3)
    for name in ("saved_model", "tflite"):
        np.testing.assert_allclose(frames[name], frames["keras"], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(photo[name], photo["keras"], atol=1e-4, err_msg=name)
    assert np.abs(frames["keras"] - photo["keras"]).max() > 1e-3  # the target is not ignored


def test_only_the_upper_half_of_the_target_reaches_the_frame(exported, workdir, clip):
    _, out, _ = exported
    faces, targets, pcm = clip
    lower, upper = targets.copy(), targets.copy()
    lower[:, 56:] = 255 - lower[:, 56:]  # the mouth and jaw: masked in the graph
    upper[:, :56] = 255 - upper[:, :56]
    for name, backend in _forms(workdir, out).items():
        made = {}
        for key, target in (("same", targets), ("lower", lower), ("upper", upper)):
            identity = backend.identity_features(frame_loop.identity_faces(backend, faces, target))
            made[key] = backend.generate_frame_pcm(identity, pcm)
        np.testing.assert_array_equal(made["lower"], made["same"], err_msg=name)
        assert np.abs(made["upper"] - made["same"]).max() > 1e-3, name
        if name != "keras":
            with pytest.raises(
                ValueError, match=r"takes the target frame and 1 reference face.*got \(1, 112, 112, 3\)"
            ):
                backend.identity_features(faces)  # the target left out


def test_redub_and_generate_run_the_exported_model(exported, synth_shards, tmp_path):
    """A re-dubbed video: each frame's own face is its target (LiteRT, one identity row per frame); a photo: its own."""
    from keras_s2v import inference

    _, out, android = exported
    corpus_video = min((synth_shards.parent / "corpus").rglob("*.mp4"))
    speech = android / "speech.wav"
    frames = audio.num_frames(len(media.read_audio(speech)))
    summary = inference.redub_video(
        corpus_video,
        speech,
        out / "tflite" / "s2v_tiny_float32.tflite",
        tmp_path / "redub.mp4",
        audio_fit="trim",
        progress=False,
    )
    assert summary["model"].startswith("TFLite") and summary["frames"] == frames
    assert summary["frames_without_face"] < summary["frames"]
    summary = inference.generate_video(
        [android / "face.png"], speech, out, tmp_path / "photo.mp4", crop=True, progress=False
    )
    assert summary["model"].startswith("SavedModel") and summary["frames"] == frames


def test_lite_client_makes_the_golden_frames_from_the_photo(exported, tmp_path):
    _, _, android = exported
    metadata = json.loads((android / "metadata.json").read_text())["android"]
    face, speech = android / metadata["face"], android / metadata["speech"]
    faces = frame_loop.read_faces([face])
    waveform = media.read_audio(speech)
    model = android / metadata["models"]["int8"]
    client = lite_client.LiteTalkingFace(model)
    frames = list(lite_client.stream_frames(client, faces, lite_client.audio_chunks(waveform, 999)))
    golden = np.split(
        cv2.imread(str(android / metadata["golden"]["int8"]))[..., ::-1], len(metadata["golden_frame_indices"]), axis=1
    )
    for index, expected in zip(metadata["golden_frame_indices"], golden):
        assert np.abs(frames[index].astype(int) - expected).max() <= 1, index
    with pytest.raises(
        ValueError, match=r"needs 1 aligned face crop\(s\) .*got 2; the first is also the frame being made"
    ):
        lite_client.run(model, [face, face], speech, tmp_path / "two.mp4")
    result = lite_client.run(model, [face], speech, tmp_path / "talking.mp4")
    assert result["frames"] == len(frames) == audio.num_frames(len(waveform))
    assert not (tmp_path / "two.mp4").exists()


def test_tf_serving_client_sends_the_target(exported, clip, tmp_path):
    import tensorflow as tf

    from tests import serving_fakes

    _, out, android = exported
    faces, targets, pcm = clip
    version = out / "serving" / "s2v_tiny" / "1"
    expected = backends.load_generator(out)
    stacked = frame_loop.identity_faces(expected, faces, targets)
    expected = expected.generate_frame_pcm(expected.identity_features(stacked), pcm)
    metadata = json.loads((android / "metadata.json").read_text())["android"]
    face, speech = android / metadata["face"], android / metadata["speech"]
    with serving_fakes.rest_server(tf.saved_model.load(str(version)), version, "s2v_tiny") as port:
        client = serving_client.ServingClient("127.0.0.1", "s2v_tiny", rest_port=port)
        assert serving_client.backend(client) is client
        assert client.masked_target and (client.num_identity_images, client.face_size) == (1, 112)
        served = client.generate_frame_pcm(client.identity_features(stacked), pcm)
        one_call = client.predict("serving_default", target=targets, faces=np.repeat(faces, 3, 0), pcm=pcm)["frame"]
        count, _ = serving_client.make_video(client, [face], speech, tmp_path / "out.mp4", progress=False)
        with pytest.raises(ValueError, match=r"needs 1 aligned face crop\(s\)"):
            serving_client.make_video(client, [face, face], speech, tmp_path / "two.mp4", progress=False)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(one_call, expected, atol=1e-5)
    assert count == audio.num_frames(len(media.read_audio(speech)))
