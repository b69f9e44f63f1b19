"""Export of a temporal GAN (streaming ``generate_step``): parity, signatures, frame-by-frame streaming, goldens."""

import json
import shutil

import cv2
import numpy as np
import pytest

from export import ExportError, export_model, exporter, formats
from keras_s2v import model_files, workdirs
from keras_s2v.configs.experiments import apply_overrides, get_experiment
from keras_s2v.data import audio, media
from keras_s2v.signature_names import STREAMING_SIGNATURES
from keras_s2v.training import train_lib

SHORT = ["train.epochs=1", "train.steps_per_epoch=2", "train.validation_steps=1"]
STATE_SHAPES = {"context_state1": (32,), "context_state2": (32,), "noise_state1": (4,)}  # tgan_tiny: 2 + 1 GRUs
STATES = tuple(STATE_SHAPES)
IDENTITY = ("identity", "skip_56", "skip_28", "skip_14", "skip_7")
STEPS = 6


def _train(name, shards, workdir):
    train_lib.train(apply_overrides(get_experiment(name), SHORT), shards, workdir)
    return workdir


@pytest.fixture(scope="module")
def workdir(synth_shards, tmp_path_factory):
    return _train("tgan_tiny", synth_shards, tmp_path_factory.mktemp("train") / "tgan_tiny")


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
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


@pytest.fixture(scope="module")
def clip(workdir, synth_shards):
    """A held-out face (S, S, 3) uint8, ``STEPS`` consecutive 2560-sample windows and seeded standard-normal noise."""
    config, _ = exporter.load_checkpoint(workdir)
    faces, speech = exporter.sample_face_and_speech(synth_shards, config)
    pcm = np.stack([audio.pcm_window(speech, t, audio.FPS, audio.WAVE_WINDOW_SAMPLES) for t in range(STEPS)])
    noise = np.random.default_rng(3).standard_normal((STEPS, 4)).astype(np.float32)
    return faces, pcm.astype(np.float32), noise


def test_export_writes_streaming_formats_with_passing_parity(exported):
    report, out, _ = exported
    rows = json.loads((out / "parity.json").read_text())["rows"]
    assert rows == report["parity"] and all(r["ok"] for r in rows)
    expected = (
        [f"identity_features/{k}" for k in IDENTITY]
        + ["generate_step/frame"]
        + [f"generate_step/{k}" for k in STATES]
        + ["chain identity_features -> generate_step x4"]
    )
    for fmt in ("saved_model", "tflite_float32", "tflite_float16", "tflite_int8", "onnx"):
        assert [r["check"] for r in rows if r["format"] == fmt] == expected, fmt
    for r in rows:
        if r["kind"] == "float32":
            assert r["tolerance"] == 1e-4 and r["value"] <= 1e-4, r
    int8 = {r["check"]: r for r in rows if r["format"] == "tflite_int8"}
    for check in ("generate_step/frame", "chain identity_features -> generate_step x4"):
        assert int8[check]["metric"] == "psnr_db" and int8[check]["value"] >= 30
    assert all(int8[f"generate_step/{k}"]["tolerance"] is None for k in STATES)  # reported, not bounded
    for quantization in ("float32", "float16", "int8"):
        path = out / "tflite" / f"tgan_tiny_{quantization}.tflite"
        assert not [op for op in formats.tflite_ops(path) if op.startswith("Flex")]
        runner = formats.LiteRunner(path)
        assert sorted(runner.signature_names()) == sorted(STREAMING_SIGNATURES)
        details = runner.interpreter.get_signature_runner("generate_step").get_input_details()
        assert all(d["shape_signature"][0] == 1 for d in details.values())  # the phone's fixed batch of 1
        assert model_files.read_embedded_metadata(path)["streaming"]["states"][0]["shape"] == [1, 32]
    assert sorted(p.name for p in (out / "onnx").glob("*.onnx")) == ["generate_step.onnx", "identity_features.onnx"]


def test_saved_model_has_the_documented_streaming_signatures(exported):
    import tensorflow as tf

    _, out, _ = exported
    loaded = tf.saved_model.load(str(out / "serving" / "tgan_tiny" / "1"))
    # keras.export.ExportArchive also answers serving_default with the first endpoint (TF Serving wants a default).
    assert set(loaded.signatures) == {*STREAMING_SIGNATURES, "serving_default"}
    for name in ("identity_features", "serving_default"):
        identity = loaded.signatures[name]
        assert {k: (s.shape.as_list(), s.dtype) for k, s in identity.structured_input_signature[1].items()} == {
            "faces": ([None, 112, 112, 3], tf.uint8)
        }
        assert set(identity.structured_outputs) == set(IDENTITY)
    step = loaded.signatures["generate_step"]
    inputs = {k: s.shape.as_list() for k, s in step.structured_input_signature[1].items()}
    assert inputs == {
        "identity": [None, 16],
        "skip_56": [None, 56, 56, 8],
        "skip_28": [None, 28, 28, 16],
        "skip_14": [None, 14, 14, 32],
        "skip_7": [None, 7, 7, 64],
        "pcm": [None, 2560],
        "noise": [None, 4],
        "context_state1": [None, 32],
        "context_state2": [None, 32],
        "noise_state1": [None, 4],
    }
    outputs = {k: s.shape.as_list() for k, s in step.structured_outputs.items()}
    assert outputs == {
        "frame": [None, 112, 112, 3],
        "context_state1": [None, 32],
        "context_state2": [None, 32],
        "noise_state1": [None, 4],
    }


def _keras_sequence(workdir, faces, pcm, noise):
    """The whole-sequence Keras model on the same face, windows and noise: (T, S, S, 3)."""
    model = workdirs.load_trained_model(workdir)
    inputs = {
        "faces": faces[None].astype(np.float32) / 255.0,
        "audio": pcm[None],
        "noise": model.noise_std * noise[None],
    }
    return np.asarray(model(inputs, training=False))[0]


def test_streaming_frame_by_frame_equals_the_whole_sequence_model(exported, workdir, clip):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    _, out, _ = exported
    faces, pcm, noise = clip
    expected = _keras_sequence(workdir, faces, pcm, noise)

    loaded = tf.saved_model.load(str(out / "serving" / "tgan_tiny" / "1"))
    identity = loaded.signatures["identity_features"](faces=tf.constant(faces[None]))
    states = {k: tf.zeros((1, *shape)) for k, shape in STATE_SHAPES.items()}
    frames = []
    for t in range(STEPS):
        result = loaded.signatures["generate_step"](
            **identity, pcm=tf.constant(pcm[t : t + 1]), noise=tf.constant(noise[t : t + 1]), **states
        )
        frames.append(result["frame"].numpy()[0])
        states = {k: result[k] for k in STATES}
    np.testing.assert_allclose(np.stack(frames), expected, atol=1e-4)

    interpreter = Interpreter(model_path=str(out / "tflite" / "tgan_tiny_float32.tflite"))
    identity = interpreter.get_signature_runner("identity_features")(faces=faces[None])
    step = interpreter.get_signature_runner("generate_step")
    states = {k: np.zeros((1, *shape), np.float32) for k, shape in STATE_SHAPES.items()}
    frames = []
    for t in range(STEPS):
        result = step(**identity, pcm=pcm[t : t + 1], noise=noise[t : t + 1], **states)
        frames.append(result["frame"][0])
        states = {k: result[k] for k in STATES}
    np.testing.assert_allclose(np.stack(frames), expected, atol=1e-4)

    onnx = formats.OnnxRunner({n: out / "onnx" / f"{n}.onnx" for n in STREAMING_SIGNATURES})
    identity = onnx.run("identity_features", {"faces": faces[None]})
    frames = formats.stream_frames(onnx, identity, pcm, noise, STATE_SHAPES)  # new states come back under their names
    np.testing.assert_allclose(frames, expected, atol=1e-4)


def test_metadata_describes_streaming(exported):
    _, out, _ = exported
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["audio"]["pcm_window_samples"] == 2560 and metadata["audio"]["pcm_window_offset"] == -960
    assert "mfcc" not in metadata["audio"]  # the waveform model reads raw samples
    streaming = metadata["streaming"]
    assert [(s["name"], s["shape"]) for s in streaming["states"]] == [
        ("context_state1", [-1, 32]),
        ("context_state2", [-1, 32]),
        ("noise_state1", [-1, 4]),
    ]
    assert streaming["noise_dim"] == 4 and streaming["noise_std"] == pytest.approx(0.6)
    assert "zeros first" in streaming["usage"] and streaming["signature"] == "generate_step"
    assert metadata["signatures"]["generate_step"]["inputs"]["pcm"] == {"shape": [-1, 2560], "dtype": "float32"}
    assert set(metadata["signatures"]["generate_step"]["outputs"]) == {"frame", *STATES}
    onnx = json.loads((out / "onnx" / "metadata.json").read_text())
    assert onnx["onnx_output_names"] == {"generate_step": {k: f"{k}_next" for k in STATES}}


def test_android_golden_frames_come_from_the_streaming_chain(exported):
    _, _, android = exported
    metadata = json.loads((android / "metadata.json").read_text())
    app = metadata["android"]
    faces = cv2.imread(str(android / app["face"]))[..., ::-1]
    waveform = media.read_audio(android / app["speech"])
    total = audio.num_frames(len(waveform))
    noise = np.fromfile(android / app["golden_noise"]["file"], "<f4").reshape(app["golden_noise"]["shape"])
    assert noise.shape == (total, metadata["streaming"]["noise_dim"])
    window = metadata["audio"]["pcm_window_samples"]
    pcm = np.stack([audio.pcm_window(waveform, t, audio.FPS, window) for t in range(total)]).astype(np.float32)
    shapes = {s["name"]: tuple(s["shape"][1:]) for s in metadata["streaming"]["states"]}
    for quantization, model in app["models"].items():
        runner = formats.LiteRunner(android / model)
        identity = runner.run("identity_features", {"faces": faces[None]})
        frames = formats.stream_frames(runner, identity, pcm, noise, shapes)
        golden = cv2.imread(str(android / app["golden"][quantization]))[..., ::-1]
        golden = np.split(golden, len(app["golden_frame_indices"]), axis=1)
        for index, expected in zip(app["golden_frame_indices"], golden):
            got = (np.clip(frames[index], 0, 1) * 255).round().astype(int)
            assert np.abs(got - expected).max() <= 1, (quantization, index)


def test_checkpoint_of_another_tgan_is_refused(workdir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(workdir, other, ignore=shutil.ignore_patterns("backup", "checkpoints", "logs", "samples"))
    config = json.loads((other / "config.json").read_text())
    config["model"]["tgan"]["noise_dim"] = 8
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="checkpoint of another experiment.*noise_dim"):
        export_model(other, tmp_path / "out")


def test_mfcc_variant_exports_with_the_mfcc_in_the_graph(synth_shards, tmp_path):
    # Trained through train_lib.train (what the CLI calls), so the bucketed pyramid-pooling variant trains here too.
    workdir = _train("tgan_mfcc_spp_tiny", synth_shards, tmp_path / "mfcc")  # bucketed lengths 4 and 8
    history = json.loads((workdir / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["loss"]) and "val_psnr" in history[0]
    report = export_model(workdir, tmp_path / "out", "saved_model,tflite", "float32", synth_shards, log=lambda _: None)
    rows = report["parity"]
    assert all(r["ok"] for r in rows) and {r["format"] for r in rows} == {"saved_model", "tflite_float32"}
    states = ("context_state1", "context_state2", "noise_state1", "noise_state2")  # 2-layer noise GRU
    assert {r["check"] for r in rows} >= {f"generate_step/{k}" for k in states}
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["audio"]["pcm_window_samples"] == 5840 and metadata["audio"]["pcm_window_offset"] == -2600
    assert metadata["signatures"]["generate_step"]["inputs"]["pcm"]["shape"] == [-1, 5840]
    assert [s["name"] for s in metadata["streaming"]["states"]] == list(states)
    ops = formats.tflite_ops(tmp_path / "out" / "tflite" / "tgan_mfcc_spp_tiny_float32.tflite")
    assert "LOG" in ops and not [op for op in ops if op.startswith("Flex")]  # the MFCC, builtin ops only


def test_every_model_form_streams_through_generate_redub_and_evaluate(exported, workdir, synth_shards, tmp_path):
    """Keras workdir, SavedModel export and .tflite: the same frames, and each runs the user-facing commands."""
    from keras_s2v import backends, frame_loop, inference
    from keras_s2v.evaluation import evaluate_lib

    _, out, _ = exported
    forms = {"keras": workdir, "saved_model": out, "tflite": next((out / "tflite").glob("*_float32.tflite"))}
    loaded = {name: backends.load_generator(path) for name, path in forms.items()}
    assert {b.window_samples for b in loaded.values()} == {audio.WAVE_WINDOW_SAMPLES}
    corpus_video = sorted((synth_shards.parent / "corpus").rglob("*.mp4"))[0]
    speech = media.read_audio(corpus_video)[: audio.SAMPLE_RATE]
    face = next(evaluate_lib.clips_from_shards(synth_shards, "validation")).frames[0][None]
    frames = {
        name: np.stack(list(frame_loop.talking_frames(b, face, speech, batch_size=7))) for name, b in loaded.items()
    }
    for name in ("saved_model", "tflite"):
        assert np.abs(frames[name].astype(int) - frames["keras"].astype(int)).max() <= 1, name
    # A second run starts a new sequence: same frames (zero states, the noise stream restarted).
    again = np.stack(list(frame_loop.talking_frames(loaded["keras"], face, speech, batch_size=25)))
    np.testing.assert_array_equal(again, frames["keras"])

    summary = inference.generate_video(
        [_still(corpus_video, tmp_path)], corpus_video, forms["tflite"], tmp_path / "talking.mp4", progress=False
    )
    assert summary["frames"] == audio.num_frames(round(media.probe(corpus_video).duration * audio.SAMPLE_RATE))
    summary = inference.redub_video(
        corpus_video, corpus_video, forms["saved_model"], tmp_path / "redub.mp4", progress=False
    )
    assert summary["frames"] > 0 and summary["frames_without_face"] < summary["frames"]
    result = evaluate_lib.evaluate(
        forms["keras"], tmp_path / "report", data=synth_shards, acd_stride=10, log=lambda _: None
    )
    assert result["clips"] == 2 and (tmp_path / "report" / "report.md").exists()


def test_tf_serving_client_streams_the_steps(exported, synth_shards):
    """Through TF Serving (the stand-in, over gRPC) the client reads generate_step's states from the metadata."""
    import tensorflow as tf

    from keras_s2v import backends, frame_loop, serving_client
    from keras_s2v.evaluation import evaluate_lib
    from tests import serving_fakes

    _, out, _ = exported
    version = out / "serving" / "tgan_tiny" / "1"
    face = next(evaluate_lib.clips_from_shards(synth_shards, "validation")).frames[0][None]
    speech = media.read_audio(min((synth_shards.parent / "corpus").rglob("*.mp4")))[: audio.SAMPLE_RATE // 2]
    expected = np.stack(list(frame_loop.talking_frames(backends.load_generator(out), face, speech, batch_size=7)))
    with (
        serving_fakes.grpc_server(tf.saved_model.load(str(version)), version, "tgan_tiny") as port,
        serving_client.ServingClient("127.0.0.1", "tgan_tiny", protocol="grpc", grpc_port=port) as client,
    ):
        model = serving_client.backend(client)
        assert isinstance(model, frame_loop.StreamingGenerator)
        assert model.state_shapes == STATE_SHAPES and model.window_samples == audio.WAVE_WINDOW_SAMPLES
        served = np.stack(list(frame_loop.talking_frames(model, face, speech, batch_size=7)))
    assert served.shape == expected.shape == (13, 112, 112, 3)
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1


def _still(video, folder):
    """The video's first frame as a photo (the generate input)."""
    frame = next(media.iter_frames(video))
    path = folder / "still.png"
    cv2.imwrite(str(path), frame[..., ::-1])
    return path
