"""The export from a tiny training run: every format, parity, serving requests, LiteRT client, bad inputs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from export import ExportError, ParityError, export_model, formats, parity
from keras_s2v import frame_loop, lite_client, model_files, serving_client, workdirs
from keras_s2v.configs.experiments import apply_overrides, get_experiment
from keras_s2v.data import audio, media
from keras_s2v.outputs import OutputError
from keras_s2v.signature_names import ON_DEVICE_SIGNATURES, SIGNATURES
from keras_s2v.training import train_lib

SHORT = ["train.epochs=1", "train.steps_per_epoch=3", "train.validation_steps=1"]


def _train(name, shards, workdir):
    train_lib.train(apply_overrides(get_experiment(name), SHORT), shards, workdir)
    return workdir


@pytest.fixture(scope="module")
def workdir(trained_tiny):
    return trained_tiny("s2v_tiny")  # shared with the other files: read only


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    report = export_model(
        workdir, root / "out", android_assets=root / "android", calibration_samples=16, log=lambda _: None
    )
    return report, root / "out", root / "android"


def test_export_writes_every_format_with_metadata_and_passing_parity(exported, workdir):
    _, out, _ = exported
    version = out / "serving" / "s2v_tiny" / "1"
    assert (version / "saved_model.pb").exists() and (version / "variables").is_dir()
    import tensorflow as tf

    stored = tf.train.load_checkpoint(str(version / "variables" / "variables")).get_variable_to_shape_map()
    values = sum(int(np.prod(shape)) for key, shape in stored.items() if "CHECKPOINTABLE" not in key)
    assert values == workdirs.load_trained_model(workdir).count_params()  # each weight stored once
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["audio"]["sample_rate"] == 16000 and metadata["audio"]["pcm_window_samples"] == 5840
    assert metadata["signatures"]["generate_frame_pcm"]["inputs"]["pcm"] == {"shape": [-1, 5840], "dtype": "float32"}
    assert metadata["signatures"]["identity_features"]["inputs"]["faces"]["dtype"] == "uint8"
    assert json.loads((out / "onnx" / "metadata.json").read_text())["signatures"] == metadata["signatures"]
    on_device = json.loads((out / "tflite" / "metadata.json").read_text())["signatures"]
    assert sorted(on_device) == sorted(ON_DEVICE_SIGNATURES)  # at the phone's fixed batch of 1
    assert on_device["generate_frame_pcm"]["inputs"]["pcm"]["shape"] == [1, 5840]
    for quantization in formats.QUANTIZATIONS:
        path = out / "tflite" / f"s2v_tiny_{quantization}.tflite"
        embedded = model_files.read_embedded_metadata(path)
        assert embedded["quantization"] == quantization and embedded["model_name"] == "s2v_tiny"
        assert embedded["signatures"] == on_device
        assert not [op for op in formats.tflite_ops(path) if op.startswith("Flex")]
        runner = formats.LiteRunner(path)
        assert sorted(runner.signature_names()) == sorted(ON_DEVICE_SIGNATURES)
    assert sorted(p.name for p in (out / "onnx").glob("*.onnx")) == sorted(f"{s}.onnx" for s in ON_DEVICE_SIGNATURES)
    rows = json.loads((out / "parity.json").read_text())["rows"]
    assert rows and all(r["ok"] for r in rows)
    checked = {r["format"] for r in rows}
    assert checked == {"saved_model", "tflite_float32", "tflite_float16", "tflite_int8", "onnx"}
    int8_chain = next(r for r in rows if r["format"] == "tflite_int8" and r["check"].startswith("chain"))
    assert int8_chain["metric"] == "psnr_db" and int8_chain["value"] >= 30
    assert not list(out.parent.glob(".out.partial-*"))


def _payload_inputs(signature, arrays):
    """What TF Serving decodes from a REST request: JSON lists back to arrays of the signature's dtypes."""
    body = json.loads(json.dumps(serving_client.rest_payload(signature, arrays)))
    assert body["signature_name"] == signature
    return {k: np.asarray(v, arrays[k].dtype) for k, v in body["inputs"].items()}


def test_saved_model_answers_serving_requests_by_signature_name(exported, workdir):
    import tensorflow as tf

    _, out, _ = exported
    loaded = tf.saved_model.load(str(out / "serving" / "s2v_tiny" / "1"))
    assert set(SIGNATURES) <= set(loaded.signatures)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    pcm = (0.1 * rng.standard_normal((2, audio.MFCC_WINDOW_SAMPLES))).astype(np.float32)
    identity = {
        k: v.numpy()
        for k, v in loaded.signatures["identity_features"](
            **_payload_inputs("identity_features", {"faces": faces})
        ).items()
    }
    assert set(identity) == {"identity", "skip_14", "skip_6"}
    frame = loaded.signatures["generate_frame_pcm"](**_payload_inputs("generate_frame_pcm", {**identity, "pcm": pcm}))[
        "frame"
    ]
    one_call = loaded.signatures["serving_default"](**_payload_inputs("serving_default", {"faces": faces, "pcm": pcm}))[
        "frame"
    ]
    np.testing.assert_allclose(frame.numpy(), one_call.numpy(), atol=1e-5)
    model = workdirs.load_trained_model(workdir)
    mfcc = np.stack([audio.mfcc_from_pcm_window(p) for p in pcm]).astype(np.float32)
    request = serving_client.predict_request("s2v_tiny", "generate_frame", {**identity, "mfcc": mfcc})
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    via_mfcc = loaded.signatures[request.model_spec.signature_name](**inputs)["frame"].numpy()
    keras_frame = np.asarray(model({"faces": faces.astype(np.float32) / 255.0, "mfcc": mfcc}, training=False))
    np.testing.assert_allclose(via_mfcc, keras_frame, atol=1e-4)


def test_saved_model_cli_lists_the_signatures(exported):
    _, out, _ = exported
    cli = Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run(
        [str(cli), "show", "--dir", str(out / "serving" / "s2v_tiny" / "1"), "--all"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout
    assert "inputs['pcm']" in result.stdout and "inputs['faces']" in result.stdout


def test_lite_client_reproduces_the_golden_frames(exported, tmp_path):
    _, _, android = exported
    metadata = json.loads((android / "metadata.json").read_text())["android"]
    faces = frame_loop.read_faces([android / metadata["face"]])
    waveform = media.read_audio(android / metadata["speech"])
    for quantization, model in metadata["models"].items():
        client = lite_client.LiteTalkingFace(android / model)
        frames = list(lite_client.stream_frames(client, faces, lite_client.audio_chunks(waveform, 999)))
        assert len(frames) == audio.num_frames(len(waveform))
        golden = cv2.imread(str(android / metadata["golden"][quantization]))[..., ::-1]
        golden = np.split(golden, len(metadata["golden_frame_indices"]), axis=1)
        for index, expected in zip(metadata["golden_frame_indices"], golden):
            assert np.abs(frames[index].astype(int) - expected).max() <= 1, (quantization, index)
    out = tmp_path / "talking.mp4"
    args = [
        sys.executable,
        "-m",
        "keras_s2v.lite_client",
        "--model",
        str(android / metadata["models"]["int8"]),
        "--face",
        str(android / metadata["face"]),
        "--audio",
        str(android / metadata["speech"]),
        "--out",
        str(out),
    ]
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    info = media.probe(out)
    assert (info.width, info.height) == (112, 112) and info.has_audio
    again = subprocess.run(args, check=False, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_mobile_model_exports_to_int8_within_tolerance(synth_shards, tmp_path):
    workdir = _train("s2v_mobile_tiny", synth_shards, tmp_path / "mobile")
    report = export_model(
        workdir, tmp_path / "out", "tflite", "float32,int8", calibration_samples=8, log=lambda _: None
    )
    assert all(r["ok"] for r in report["parity"])
    assert "DEPTHWISE_CONV_2D" in formats.tflite_ops(tmp_path / "out" / "tflite" / "s2v_mobile_tiny_int8.tflite")


# --- Bad input ------------------------------------------------------------------------------


def test_bad_inputs_get_clear_messages(workdir, tmp_path):
    no_checkpoint = tmp_path / "no_checkpoint"
    no_checkpoint.mkdir()
    shutil.copy(workdir / "config.json", no_checkpoint)
    with pytest.raises(ExportError, match="model.keras: no checkpoint"):
        export_model(no_checkpoint, tmp_path / "a")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ExportError, match="not a training workdir"):
        export_model(tmp_path / "plain", tmp_path / "a")

    other = tmp_path / "other"
    shutil.copytree(workdir, other)
    config = json.loads((other / "config.json").read_text())
    config["name"], config["model"]["width"] = "s2v_small", 0.25
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="checkpoint of another experiment than 's2v_small'.*width"):
        export_model(other, tmp_path / "a")

    with pytest.raises(ExportError, match="unknown format 'tflight'"):
        export_model(workdir, tmp_path / "a", formats_="saved_model,tflight")
    with pytest.raises(ExportError, match="unknown quantization 'int4'"):
        export_model(workdir, tmp_path / "a", quantizations="int4")

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty \\(pass --overwrite"):
        export_model(workdir, occupied)
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="file.txt is a file, not a folder"):
        export_model(workdir, a_file / "out")
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "s2v_tiny_int8.tflite").write_bytes(b"mine")
    with pytest.raises(ExportError, match="already holds s2v_tiny_int8.tflite; pass --overwrite"):
        export_model(workdir, tmp_path / "a", android_assets=assets)
    assert (assets / "s2v_tiny_int8.tflite").read_bytes() == b"mine"
    assert not (tmp_path / "a").exists()


def test_cli_reports_a_bad_workdir_without_a_traceback(tmp_path, run_main_here):
    # What `python -m export --workdir missing` runs once its flags are parsed, in this process (the command's own
    # refusals run as subprocesses in tests/test_cli_safety.py).
    status, stderr = run_main_here(lambda: export_model(tmp_path / "missing", tmp_path / "o"))
    assert status == 2
    assert "no such training workdir" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "o").exists()


def test_failed_parity_leaves_nothing_behind(workdir, tmp_path, monkeypatch):
    monkeypatch.setitem(parity.MAX_ABS, "float32", -1.0)  # a tolerance nothing meets
    with pytest.raises(ParityError, match=r"saved_model generate_frame: max_abs_error .*needs <= -1"):
        export_model(workdir, tmp_path / "out", formats_="saved_model", log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_generate_runs_the_same_pipeline_on_every_model_form(exported, workdir, tmp_path):
    from keras_s2v import backends, inference

    _, out, android = exported
    metadata = json.loads((android / "metadata.json").read_text())["android"]
    faces = frame_loop.read_faces([android / metadata["face"]])
    pcm = frame_loop.pcm_windows(media.read_audio(android / metadata["speech"]), 10, 3)
    forms = {"keras": workdir, "saved_model": out, "tflite": out / "tflite" / "s2v_tiny_float32.tflite"}
    frames = {}
    for name, path in forms.items():
        backend = backends.load_generator(path)
        assert backend.num_identity_images == 1
        frames[name] = backend.generate_frame_pcm(backend.identity_features(faces), pcm)
    np.testing.assert_allclose(frames["saved_model"], frames["keras"], atol=1e-4)
    np.testing.assert_allclose(frames["tflite"], frames["keras"], atol=1e-4)
    speech = android / metadata["speech"]
    summary = inference.generate_video(
        [android / metadata["face"]], speech, forms["tflite"], tmp_path / "lite.mp4", crop=True, progress=False
    )
    assert summary["model"].startswith("TFLite")
    assert summary["frames"] == audio.num_frames(len(media.read_audio(speech)))
