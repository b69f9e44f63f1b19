"""Export of a lips-at-a-glance generator (``generate_window``): parity, signatures, windowed backends, goldens."""

import json

import cv2
import numpy as np
import pytest

from export import export_model, formats
from keras_s2v import model_files, workdirs
from keras_s2v.configs.experiments import apply_overrides, get_experiment
from keras_s2v.data import audio, media
from keras_s2v.signature_names import WINDOW_SIGNATURES
from keras_s2v.training import train_lib

SHORT = ["train.epochs=1", "train.steps_per_epoch=2", "train.validation_steps=1"]
WINDOW_FRAMES = 8  # glance_tiny
PCM = audio.log_mel_window_samples(WINDOW_FRAMES)  # 5360
IDENTITY = {"identity": [8, 8, 16], "skip_32": [32, 32, 8], "skip_16": [16, 16, 16]}  # glance_tiny: width 0.125
FORMATS = ("saved_model", "tflite_float32", "tflite_float16", "tflite_int8", "onnx")


@pytest.fixture(scope="module")
def workdir(synth_shards, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("train") / "glance_tiny"
    train_lib.train(apply_overrides(get_experiment("glance_tiny"), SHORT), synth_shards, workdir)
    return workdir


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
    """One export for every test: float16 too, as the Android assets ship it (a second export would cost more)."""
    root = tmp_path_factory.mktemp("export")
    report = export_model(
        workdir,
        root / "out",
        "saved_model,tflite,onnx",
        "float32,float16,int8",
        android_assets=root / "android",
        calibration_samples=8,
        log=lambda _: None,
    )
    return report, root / "out", root / "android"


def test_export_writes_every_format_with_passing_parity(exported):
    report, out, _ = exported
    rows = json.loads((out / "parity.json").read_text())["rows"]
    assert rows == report["parity"] and all(r["ok"] for r in rows)
    expected = [f"identity_features/{k}" for k in ("identity", "skip_32", "skip_16")] + [
        "generate_window",
        "chain identity_features -> generate_window",
    ]
    for fmt in FORMATS:
        assert [r["check"] for r in rows if r["format"] == fmt] == expected, fmt
    for r in rows:
        if r["kind"] == "float32":
            assert r["tolerance"] == 1e-4 and r["value"] <= 1e-4, r
    int8 = {r["check"]: r for r in rows if r["format"] == "tflite_int8"}
    for check in expected[3:]:
        assert int8[check]["metric"] == "psnr_db" and int8[check]["value"] >= 30
    for quantization in ("float32", "float16", "int8"):
        path = out / "tflite" / f"glance_tiny_{quantization}.tflite"
        ops = formats.tflite_ops(path)
        assert {"CONV_3D", "LOG"} <= ops and not [op for op in ops if op.startswith("Flex")]
        runner = formats.LiteRunner(path)
        assert sorted(runner.signature_names()) == sorted(WINDOW_SIGNATURES)
        details = runner.interpreter.get_signature_runner("generate_window").get_input_details()
        # the phone's fixed batch of 1
        assert {k: list(d["shape"]) for k, d in details.items()} == {
            **{k: [1, *shape] for k, shape in IDENTITY.items()},
            "pcm": [1, PCM],
        }
        embedded = model_files.read_embedded_metadata(path)
        assert embedded["quantization"] == quantization and embedded["windowed"]["window_frames"] == WINDOW_FRAMES
    assert sorted(p.name for p in (out / "onnx").glob("*.onnx")) == ["generate_window.onnx", "identity_features.onnx"]


def test_saved_model_has_the_documented_window_signatures(exported, workdir, synth_shards):
    import tensorflow as tf

    from export import exporter
    from keras_s2v.data.face import align

    _, out, _ = exported
    loaded = tf.saved_model.load(str(out / "serving" / "glance_tiny" / "1"))
    assert set(loaded.signatures) == {*WINDOW_SIGNATURES, "serving_default"}
    identity = loaded.signatures["identity_features"]
    assert {k: (s.shape.as_list(), s.dtype) for k, s in identity.structured_input_signature[1].items()} == {
        "faces": ([None, 112, 112, 3], tf.uint8)
    }
    assert {k: s.shape.as_list() for k, s in identity.structured_outputs.items()} == {
        k: [None, *shape] for k, shape in IDENTITY.items()
    }
    generate = loaded.signatures["generate_window"]
    assert {k: s.shape.as_list() for k, s in generate.structured_input_signature[1].items()} == {
        **{k: [None, *shape] for k, shape in IDENTITY.items()},
        "pcm": [None, PCM],
    }
    assert {k: s.shape.as_list() for k, s in generate.structured_outputs.items()} == {
        "frames": [None, WINDOW_FRAMES, 64, 64, 3]
    }

    # The two signatures chained equal the trained model on the lip crop and the training log-mel.
    samples = exporter.read_samples(synth_shards, "validation", 1, 2, window_frames=WINDOW_FRAMES)
    frames = generate(pcm=samples["pcm"], **identity(faces=samples["faces"]))["frames"].numpy()
    model = workdirs.load_trained_model(workdir)
    lips = np.asarray(align.lip_crops(samples["faces"].astype(np.float32) / 255.0))
    log_mel = np.stack([audio.log_mel_from_pcm_window(p, WINDOW_FRAMES) for p in samples["pcm"]])
    np.testing.assert_allclose(frames, np.asarray(model({"lips": lips, "log_mel": log_mel}, training=False)), atol=1e-4)


def test_metadata_and_android_goldens_describe_the_windows(exported):
    from export import exporter

    _, out, android = exported
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["audio"]["pcm_window_samples"] == PCM and metadata["audio"]["pcm_window_offset"] == -120
    assert "mfcc" not in metadata["audio"] and metadata["audio"]["log_mel"]["bands"] == 128
    windowed = metadata["windowed"]
    assert windowed["window_frames"] == WINDOW_FRAMES and windowed["hop_frames"] == WINDOW_FRAMES // 2
    assert windowed["lip_box"] == {"top": 45, "left": 28, "side": 56, "face_size": 112}
    assert windowed["sample_rate"] == 16000 and windowed["signature"] == "generate_window"
    assert metadata["signatures"]["generate_window"]["outputs"]["frames"]["shape"] == [-1, WINDOW_FRAMES, 64, 64, 3]

    app = json.loads((android / "metadata.json").read_text())["android"]
    face = cv2.imread(str(android / app["face"]))[..., ::-1]
    waveform = media.read_audio(android / app["speech"])
    rows = exporter.frame_loop_rows(waveform, audio.num_frames(len(waveform)), WINDOW_FRAMES)
    for quantization, model in app["models"].items():
        runner = formats.LiteRunner(android / model)
        lips = formats.window_lips(runner, runner.run("identity_features", {"faces": face[None]}), rows, WINDOW_FRAMES)
        golden = cv2.imread(str(android / app["golden"][quantization]))[..., ::-1]
        golden = np.split(golden, len(app["golden_frame_indices"]), axis=1)
        for index, expected in zip(app["golden_frame_indices"], golden):
            got = (np.clip(lips[index], 0, 1) * 255).round().astype(int)
            assert got.shape == (64, 64, 3) and np.abs(got - expected).max() <= 1, (quantization, index)


def test_every_model_form_gives_the_same_frames_and_runs_generate_and_redub(exported, workdir, synth_shards, tmp_path):
    """Keras workdir, SavedModel export and .tflite: the same windowed frames whatever the batch size."""
    from keras_s2v import backends, frame_loop, inference
    from keras_s2v.evaluation import evaluate_lib

    _, out, _ = exported
    forms = {"keras": workdir, "saved_model": out, "tflite": out / "tflite" / "glance_tiny_float32.tflite"}
    loaded = {name: backends.load_generator(path) for name, path in forms.items()}
    assert all(isinstance(b, frame_loop.WindowedGenerator) for b in loaded.values())
    assert {(b.window_frames, b.window_samples, b.face_size) for b in loaded.values()} == {(WINDOW_FRAMES, 9840, 112)}
    corpus_video = min((synth_shards.parent / "corpus").rglob("*.mp4"))
    speech = media.read_audio(corpus_video)[: 40 * audio.SAMPLES_PER_FRAME - 100]  # 40 frames, the last one partial
    face = next(evaluate_lib.clips_from_shards(synth_shards, "validation")).frames[0][None]
    frames = {}
    for name, backend in loaded.items():
        for batch_size in (7, 25):
            frames[name, batch_size] = np.stack(list(frame_loop.talking_frames(backend, face, speech, batch_size)))
    reference = frames["keras", 7]
    assert reference.shape == (40, 112, 112, 3)
    for key, value in frames.items():  # batches of windows round a pixel differently now and then
        assert np.abs(value.astype(int) - reference.astype(int)).max() <= 1, key
    top, left, side = 45, 28, 56  # align.lip_box(112): the frames differ from the face only there
    outside = np.ones((112, 112), bool)
    outside[top : top + side, left : left + side] = False
    np.testing.assert_array_equal(reference[:, outside], np.repeat(face[:, outside], 40, axis=0))
    assert backends.data_parameters(forms["keras"], loaded["keras"])["crop_size"] == 112

    summary = inference.generate_video(
        [_still(corpus_video, tmp_path)], corpus_video, forms["tflite"], tmp_path / "talking.mp4", progress=False
    )
    assert summary["frames"] == audio.num_frames(round(media.probe(corpus_video).duration * audio.SAMPLE_RATE))
    summary = inference.redub_video(
        corpus_video, corpus_video, forms["saved_model"], tmp_path / "redub.mp4", progress=False
    )
    assert summary["frames"] > 0 and summary["frames_without_face"] < summary["frames"]
    with pytest.raises(ValueError, match="30 fps.*25 fps video only"):  # windows are timed in 25 fps frames
        inference.generate_video(
            [_still(corpus_video, tmp_path)],
            corpus_video,
            forms["tflite"],
            tmp_path / "talking30.mp4",
            fps=30.0,
            progress=False,
        )
    assert not (tmp_path / "talking30.mp4").exists()


def test_tf_serving_client_runs_the_windows(exported, synth_shards, tmp_path):
    """Through TF Serving (the stand-in, over REST) the client finds generate_window and cross-fades its windows."""
    import tensorflow as tf

    from keras_s2v import backends, frame_loop, serving_client
    from keras_s2v.evaluation import evaluate_lib
    from tests import serving_fakes

    _, out, _ = exported
    version = out / "serving" / "glance_tiny" / "1"
    corpus_video = min((synth_shards.parent / "corpus").rglob("*.mp4"))
    speech = media.read_audio(corpus_video)[: 20 * audio.SAMPLES_PER_FRAME]
    face = next(evaluate_lib.clips_from_shards(synth_shards, "validation")).frames[0][None]
    expected = np.stack(list(frame_loop.talking_frames(backends.load_generator(out), face, speech, batch_size=25)))
    with serving_fakes.rest_server(tf.saved_model.load(str(version)), version, "glance_tiny") as port:
        client = serving_client.ServingClient("127.0.0.1", "glance_tiny", rest_port=port)
        model = serving_client.backend(client)
        assert isinstance(model, frame_loop.WindowedGenerator)
        assert (model.window_frames, model.lip_size, model.face_size) == (WINDOW_FRAMES, 64, 112)
        served = np.stack(list(frame_loop.talking_frames(model, face, speech, batch_size=7)))
        speech_path = tmp_path / "speech.wav"
        media.write_wav(speech_path, speech)
        with pytest.raises(ValueError, match="30 fps.*25 fps video only"):
            serving_client.make_video(
                client, [_still(corpus_video, tmp_path)], speech_path, tmp_path / "out.mp4", fps=30.0
            )
    assert served.shape == expected.shape == (20, 112, 112, 3)
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    assert not (tmp_path / "out.mp4").exists()


def _still(video, folder):
    """The video's first frame as a photo (the generate input)."""
    frame = next(media.iter_frames(video))
    path = folder / "still.png"
    cv2.imwrite(str(path), frame[..., ::-1])
    return path
