"""TF Serving client: request building and parsing, errors, and a round trip through stand-in servers.

No model server runs here (none can be installed): a tiny SavedModel with the
exported signatures' names, dtypes and shapes (small channel counts) stands
behind in-process REST and gRPC servers that answer as TF Serving does
(``tests/serving_fakes.py``). Tests against a real export live in ``tests/export``.
"""

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_s2v import frame_loop, serving_client
from keras_s2v.data import audio as audio_lib
from keras_s2v.serving_client import ServingClient, ServingError
from tests import serving_fakes

ROOT = Path(__file__).resolve().parents[1]
MODEL = "s2v_tiny"
EMBED, C14, C6 = 4, 2, 3  # tiny identity and skip widths
PCM = audio_lib.MFCC_WINDOW_SAMPLES
SPEECH2VID_SIGNATURES = ("identity_features", "generate_frame", "generate_frame_pcm", "serving_default")


def _free_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "faces": rng.integers(0, 256, (batch, 112, 112, 3), dtype=np.uint8),
        "identity": rng.normal(size=(batch, EMBED)).astype(np.float32),
        "skip_14": rng.normal(size=(batch, 14, 14, C14)).astype(np.float32),
        "skip_6": rng.normal(size=(batch, 6, 6, C6)).astype(np.float32),
        "mfcc": rng.normal(size=(batch, 12, 35)).astype(np.float32),
        "pcm": rng.uniform(-1, 1, (batch, PCM)).astype(np.float32),
    }


# --- URL, JSON payload and parsing --------------------------------------------------------


def test_rest_url():
    assert serving_client.rest_url("localhost", "s2v_small") == "http://localhost:8501/v1/models/s2v_small:predict"
    assert (
        serving_client.rest_url("10.0.0.2", "s2v_small", version=3, port=9000)
        == "http://10.0.0.2:9000/v1/models/s2v_small/versions/3:predict"
    )
    assert serving_client.rest_url("::1", "m") == "http://[::1]:8501/v1/models/m:predict"
    assert (
        serving_client.rest_url("https://serve.example/", "m", 2)
        == "https://serve.example/v1/models/m/versions/2:predict"
    )


def test_rest_payload_json_round_trip_keeps_values_and_dtypes():
    inputs = _inputs()
    inputs["pcm"][0, :4] = [1e-30, -1.0, 1.0, 0.1]  # tiny, extreme and inexact values survive
    payload = json.loads(json.dumps(serving_client.rest_payload("generate_frame_pcm", inputs)))
    assert payload["signature_name"] == "generate_frame_pcm"
    assert set(payload["inputs"]) == set(inputs)
    faces = np.asarray(payload["inputs"]["faces"])
    assert faces.dtype.kind == "i", "uint8 must travel as JSON integers"
    np.testing.assert_array_equal(faces.astype(np.uint8), inputs["faces"])
    for name in ("identity", "skip_14", "skip_6", "mfcc", "pcm"):
        decoded = np.asarray(payload["inputs"][name])
        assert decoded.dtype.kind == "f", name
        np.testing.assert_array_equal(decoded.astype(np.float32), inputs[name], err_msg=name)


def test_rest_payload_sends_float64_as_float32_and_rejects_strings():
    payload = serving_client.rest_payload("generate_frame", {"mfcc": np.full((1, 2), 0.1)})
    assert payload["inputs"]["mfcc"] == [[float(np.float32(0.1))] * 2]
    with pytest.raises(TypeError, match="dtype"):
        serving_client.rest_payload("x", {"s": np.array(["a"])})


def test_parse_rest_response_named_outputs():
    identity = np.arange(8, dtype=np.float32).reshape(2, 4) / 3
    answer = {"outputs": {"identity": identity.tolist(), "skip_6": np.zeros((2, 6, 6, 3)).tolist()}}
    out = serving_client.parse_rest_response(json.loads(json.dumps(answer)))
    assert set(out) == {"identity", "skip_6"}
    assert out["identity"].dtype == np.float32 and out["skip_6"].shape == (2, 6, 6, 3)
    np.testing.assert_array_equal(out["identity"], identity)


def test_parse_rest_response_single_output_and_rows():
    frame = np.linspace(0, 1, 2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    out = serving_client.parse_rest_response({"outputs": frame.tolist()}, output_name="frame")
    assert list(out) == ["frame"] and out["frame"].dtype == np.float32
    np.testing.assert_array_equal(out["frame"], frame)
    # Integral floats come back as JSON ints; a dtype keeps them float32.
    out = serving_client.parse_rest_response({"outputs": [[0, 1]]}, "frame", dtypes=np.float32)
    assert out["frame"].dtype == np.float32
    rows = {"predictions": [{"a": [1.5], "b": 2}, {"a": [2.5], "b": 3}]}
    out = serving_client.parse_rest_response(rows, dtypes={"b": np.int32})
    np.testing.assert_array_equal(out["a"], [[1.5], [2.5]])
    assert out["b"].dtype == np.int32
    assert list(serving_client.parse_rest_response({"predictions": [1.0, 2.0]})) == ["output"]


def test_parse_rest_response_errors():
    with pytest.raises(ServingError, match="Servable not found"):
        serving_client.parse_rest_response({"error": "Servable not found for request: Latest(x)"})
    with pytest.raises(ValueError, match="not a predict answer"):
        serving_client.parse_rest_response({"model_version_status": []})


def test_signature_shapes_of_a_rest_metadata_answer():
    """The JSON TF Serving's /metadata gives (proto field names, sizes as strings, the Any's @type)."""

    def dim(*sizes):
        return {"dim": [{"size": str(size), "name": ""} for size in sizes], "unknown_rank": False}

    answer = {
        "model_spec": {"name": "glance", "signature_name": "", "version": "1"},
        "metadata": {
            "signature_def": {
                "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap",
                "signature_def": {
                    "generate_window": {
                        "inputs": {
                            "pcm": {
                                "dtype": "DT_FLOAT",
                                "tensor_shape": dim(-1, 10480),
                                "name": "generate_window_pcm:0",
                            }
                        },
                        "outputs": {
                            "frames": {"dtype": "DT_FLOAT", "tensor_shape": dim(-1, 16, 64, 64, 3), "name": "x:0"}
                        },
                        "method_name": "tensorflow/serving/predict",
                    },
                    "__saved_model_init_op": {
                        "inputs": {},
                        "outputs": {
                            "__saved_model_init_op": {
                                "dtype": "DT_INVALID",
                                "tensor_shape": {"dim": [], "unknown_rank": True},
                                "name": "NoOp",
                            }
                        },
                    },
                },
            }
        },
    }
    assert serving_client.signature_shapes(answer) == {
        "generate_window": {"inputs": {"pcm": (-1, 10480)}, "outputs": {"frames": (-1, 16, 64, 64, 3)}}
    }
    with pytest.raises(ValueError, match="not a model metadata answer"):
        serving_client.signature_shapes({"model_version_status": []})
    assert (
        serving_client.rest_url("h", "m", 2, 9000, method="/metadata")
        == "http://h:9000/v1/models/m/versions/2/metadata"
    )


def test_backend_refuses_a_model_that_is_not_a_keras_s2v_export():
    class OtherModel(ServingClient):
        def signatures(self):
            return {"serving_default": {"inputs": {"x": (-1, 4)}, "outputs": {"y": (-1, 2)}}}

    with pytest.raises(ServingError, match=r"classifier serves \['serving_default'\]: not a keras_s2v export"):
        serving_client.backend(OtherModel("localhost", "classifier"))


# --- gRPC protos ------------------------------------------------------------------------


def test_predict_request_tensor_protos():
    import tensorflow as tf

    inputs = _inputs()
    inputs["mfcc"] = inputs["mfcc"].astype(np.float64)
    request = serving_client.predict_request("s2v_small", "generate_frame", inputs, version=7)
    assert request.model_spec.name == "s2v_small"
    assert request.model_spec.signature_name == "generate_frame"
    assert request.model_spec.version.value == 7
    assert set(request.inputs) == set(inputs)
    for name, value in inputs.items():
        decoded = tf.make_ndarray(request.inputs[name])
        expected = value.astype(np.float32) if value.dtype == np.float64 else value
        assert decoded.dtype == expected.dtype, name
        np.testing.assert_array_equal(decoded, expected, err_msg=name)
    assert request.inputs["faces"].dtype == tf.uint8.as_datatype_enum
    assert request.inputs["mfcc"].dtype == tf.float32.as_datatype_enum
    unversioned = serving_client.predict_request("m", "identity_features", {"faces": inputs["faces"]})
    assert not unversioned.model_spec.HasField("version")


def test_parse_predict_response():
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    outputs = {k: v for k, v in _inputs().items() if k in ("identity", "skip_14", "skip_6")}
    response = predict_pb2.PredictResponse()
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
    parsed = serving_client.parse_predict_response(response)
    assert set(parsed) == set(outputs)
    for name, value in outputs.items():
        assert parsed[name].dtype == np.float32
        np.testing.assert_array_equal(parsed[name], value)


# --- Errors a user sees ---------------------------------------------------------------------


def test_unreachable_rest_server_says_so():
    port = _free_port()
    client = ServingClient("127.0.0.1", "s2v_small", rest_port=port, timeout=5)
    with pytest.raises(ServingError) as error:
        client.predict("identity_features", faces=np.zeros((1, 112, 112, 3), np.uint8))
    message = str(error.value)
    assert f"http://127.0.0.1:{port}/v1/models/s2v_small:predict" in message
    assert "connection refused" in message and "is TF Serving running" in message


def test_unreachable_grpc_server_says_so():
    port = _free_port()
    client = ServingClient("127.0.0.1", "s2v_small", protocol="grpc", grpc_port=port, timeout=5)
    with client, pytest.raises(ServingError) as error:
        client.identity_features(np.zeros((112, 112, 3), np.uint8))
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "is TF Serving running" in message


def test_client_rejects_bad_arguments():
    with pytest.raises(ValueError, match="protocol"):
        ServingClient("localhost", "m", protocol="http")
    with pytest.raises(TypeError, match="uint8"):
        ServingClient("localhost", "m").identity_features(np.zeros((112, 112, 3), np.float32))


# --- The frame loop, with a backend that records its calls ------------------------------------


class RecordingBackend:
    """Frames whose pixels hold the frame index; records every call."""

    window_samples = PCM

    def __init__(self):
        self.identity_calls, self.pcm_batches = [], []

    def identity_features(self, faces):
        self.identity_calls.append(faces)
        return {"identity": np.ones((1, EMBED), np.float32)}

    def generate_frame_pcm(self, identity, pcm):
        assert identity["identity"].shape == (1, EMBED)
        first = sum(len(b) for b in self.pcm_batches)
        self.pcm_batches.append(pcm)
        index = np.arange(first, first + len(pcm), dtype=np.float32)
        return np.broadcast_to((index / 255.0)[:, None, None, None], (len(pcm), 112, 112, 3))


def test_talking_frames_uses_each_frames_window_in_batches():
    rng = np.random.default_rng(1)
    waveform = rng.uniform(-1, 1, 16000 + 100).astype(np.float32)  # 1.006 s: 26 frames
    faces = np.zeros((1, 112, 112, 3), np.uint8)
    backend = RecordingBackend()
    frames = list(frame_loop.talking_frames(backend, faces, waveform, batch_size=10))
    assert len(frames) == audio_lib.num_frames(len(waveform)) == 26
    assert len(backend.identity_calls) == 1
    assert [len(b) for b in backend.pcm_batches] == [10, 10, 6]
    windows = np.concatenate(backend.pcm_batches)
    assert windows.dtype == np.float32 and windows.shape == (26, PCM)
    for t in (0, 1, 12, 25):
        np.testing.assert_array_equal(windows[t], audio_lib.pcm_window(waveform, t))
    # Frame t's window is samples [640 t - 2600, 640 t + 3240), zero outside the clip.
    np.testing.assert_array_equal(windows[0, :2600], 0)
    np.testing.assert_array_equal(windows[5, :], waveform[640 * 5 - 2600 : 640 * 5 + 3240])
    assert all(f.dtype == np.uint8 and f.shape == (112, 112, 3) for f in frames)
    assert [int(f[0, 0, 0]) for f in frames] == list(range(26))


def test_face_input_checks_and_resizes():
    square = np.full((224, 224, 3), 200, np.uint8)
    faces = frame_loop.face_input([square])
    assert faces.shape == (1, 112, 112, 3) and faces.dtype == np.uint8
    assert frame_loop.face_input([square] * 5).shape == (1, 112, 112, 15)
    with pytest.raises(ValueError, match=r"photo\.jpg: 300x200 is not square"):
        frame_loop.face_input([np.zeros((200, 300, 3), np.uint8)], ["photo.jpg"])


# --- A tiny SavedModel with the exported signatures, behind stand-in servers -------------------


@pytest.fixture(scope="module")
def tiny_saved_model(tmp_path_factory):
    """(loaded SavedModel, its serving folder): the four signatures with tiny widths."""
    import tensorflow as tf

    def features(faces):
        x = tf.cast(faces, tf.float32) / 255.0  # (N, 112, 112, 3)
        identity = tf.concat([tf.reduce_mean(x, [1, 2]), tf.reduce_max(x, [1, 2, 3])[:, None]], -1)  # (N, 4)
        skip_14 = tf.nn.avg_pool2d(x, 8, 8, "VALID")[..., :C14]  # (N, 14, 14, 2)
        skip_6 = tf.image.resize(x, (6, 6))  # (N, 6, 6, 3)
        return {"identity": identity, "skip_14": skip_14, "skip_6": skip_6}

    def decode(identity, skip_14, skip_6, audio):
        base = tf.concat([tf.image.resize(skip_14, (112, 112)), tf.image.resize(skip_6[..., :1], (112, 112))], -1)
        shift = tf.reduce_mean(identity, -1) + audio  # (N,)
        return {"frame": tf.sigmoid(base + shift[:, None, None, None])}  # (N, 112, 112, 3)

    spec = {
        "faces": tf.TensorSpec([None, 112, 112, 3], tf.uint8, name="faces"),
        "identity": tf.TensorSpec([None, EMBED], tf.float32, name="identity"),
        "skip_14": tf.TensorSpec([None, 14, 14, C14], tf.float32, name="skip_14"),
        "skip_6": tf.TensorSpec([None, 6, 6, C6], tf.float32, name="skip_6"),
        "mfcc": tf.TensorSpec([None, 12, 35], tf.float32, name="mfcc"),
        "pcm": tf.TensorSpec([None, PCM], tf.float32, name="pcm"),
    }

    def pcm_level(pcm):
        return 10.0 * tf.reduce_mean(tf.abs(pcm), -1)

    module = tf.Module()
    module.identity_features = tf.function(features, input_signature=[spec["faces"]])
    module.generate_frame = tf.function(
        lambda identity, skip_14, skip_6, mfcc: decode(identity, skip_14, skip_6, tf.reduce_mean(mfcc, [1, 2])),
        input_signature=[spec["identity"], spec["skip_14"], spec["skip_6"], spec["mfcc"]],
    )
    module.generate_frame_pcm = tf.function(
        lambda identity, skip_14, skip_6, pcm: decode(identity, skip_14, skip_6, pcm_level(pcm)),
        input_signature=[spec["identity"], spec["skip_14"], spec["skip_6"], spec["pcm"]],
    )
    module.serving_default = tf.function(
        lambda faces, pcm: decode(**features(faces), audio=pcm_level(pcm)), input_signature=[spec["faces"], spec["pcm"]]
    )
    path = tmp_path_factory.mktemp("export") / "serving" / MODEL / "1"
    signatures = {name: getattr(module, name).get_concrete_function() for name in SPEECH2VID_SIGNATURES}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return tf.saved_model.load(str(path)), path


def test_saved_model_signatures_match_the_client_contract(tiny_saved_model):
    loaded, _ = tiny_saved_model
    assert set(loaded.signatures) == set(SPEECH2VID_SIGNATURES)
    for name in SPEECH2VID_SIGNATURES:
        outputs = serving_client.SIGNATURE_OUTPUTS[name]
        assert set(loaded.signatures[name].structured_outputs) == set(outputs), name


@pytest.mark.parametrize(
    ("signature", "names"),
    [
        ("identity_features", ["faces"]),
        ("generate_frame", ["identity", "skip_14", "skip_6", "mfcc"]),
        ("generate_frame_pcm", ["identity", "skip_14", "skip_6", "pcm"]),
        ("serving_default", ["faces", "pcm"]),
    ],
)
def test_decoded_rest_payload_feeds_the_signature(tiny_saved_model, signature, names):
    loaded, _ = tiny_saved_model
    inputs = {k: v for k, v in _inputs().items() if k in names}
    payload = json.loads(json.dumps(serving_client.rest_payload(signature, inputs)))
    from_json = serving_fakes.run_signature(loaded, payload["signature_name"], payload["inputs"])
    direct = serving_fakes.run_signature(loaded, signature, inputs)
    assert set(from_json) == set(serving_client.SIGNATURE_OUTPUTS[signature])
    for key in direct:
        np.testing.assert_array_equal(from_json[key], direct[key], err_msg=key)


@pytest.fixture(scope="module")
def rest_server(tiny_saved_model):
    with serving_fakes.rest_server(*tiny_saved_model, MODEL) as port:
        yield port


@pytest.fixture(scope="module")
def grpc_server(tiny_saved_model):
    with serving_fakes.grpc_server(*tiny_saved_model, MODEL) as port:
        yield port


@pytest.fixture(params=["rest", "grpc"])
def client(request, rest_server, grpc_server):
    with ServingClient(
        "127.0.0.1", MODEL, protocol=request.param, rest_port=rest_server, grpc_port=grpc_server, timeout=30
    ) as client:
        yield client


def test_client_identity_then_frames(client, tiny_saved_model):
    loaded, _ = tiny_saved_model
    inputs = _inputs(batch=3)
    identity = client.identity_features(inputs["faces"][0])  # one face, no batch axis
    assert {k: (v.shape, v.dtype) for k, v in identity.items()} == {
        "identity": ((1, EMBED), np.float32),
        "skip_14": ((1, 14, 14, C14), np.float32),
        "skip_6": ((1, 6, 6, C6), np.float32),
    }
    expected = serving_fakes.run_signature(loaded, "identity_features", {"faces": inputs["faces"][:1]})
    for key in expected:
        np.testing.assert_allclose(identity[key], expected[key], rtol=1e-6, err_msg=key)
    frames = client.generate_frame_pcm(identity, inputs["pcm"])
    assert frames.shape == (3, 112, 112, 3) and frames.dtype == np.float32
    repeated = {k: np.repeat(v, 3, axis=0) for k, v in expected.items()}
    direct = serving_fakes.run_signature(loaded, "generate_frame_pcm", {**repeated, "pcm": inputs["pcm"]})["frame"]
    np.testing.assert_allclose(frames, direct, rtol=1e-6)
    # serving_default gives the same frames from the face and the audio in one call.
    one_call = client.predict("serving_default", faces=np.repeat(inputs["faces"][:1], 3, 0), pcm=inputs["pcm"])
    np.testing.assert_allclose(one_call["frame"], frames, rtol=1e-5, atol=1e-6)


def test_client_reads_the_signatures_and_drives_a_speech2vid_model_itself(client):
    signatures = client.signatures()
    assert set(signatures) == set(SPEECH2VID_SIGNATURES)
    assert signatures["identity_features"] == {
        "inputs": {"faces": (-1, 112, 112, 3)},
        "outputs": {"identity": (-1, EMBED), "skip_14": (-1, 14, 14, C14), "skip_6": (-1, 6, 6, C6)},
    }
    assert signatures["generate_frame_pcm"]["inputs"]["pcm"] == (-1, PCM)
    assert serving_client.backend(client) is client
    assert not client.masked_target and (client.num_identity_images, client.face_size) == (1, 112)


def test_client_talking_frames(client):
    waveform = np.sin(np.arange(8000) / 16000 * 2 * np.pi * 220).astype(np.float32)  # 0.5 s: 13 frames
    faces = frame_loop.face_input([np.full((112, 112, 3), 90, np.uint8)])
    frames = list(frame_loop.talking_frames(client, faces, waveform, batch_size=5))
    assert len(frames) == 13 and frames[0].dtype == np.uint8 and frames[0].shape == (112, 112, 3)
    assert not np.array_equal(frames[0], frames[6]), "frames must follow the audio"


def test_server_errors_name_the_problem(client):
    wrong = ServingClient(
        client.host,
        "no_such_model",
        protocol=client.protocol,
        rest_port=client.rest_port,
        grpc_port=client.grpc_port,
        timeout=30,
    )
    with wrong, pytest.raises(ServingError, match="Servable not found.*check --model"):
        wrong.identity_features(np.zeros((112, 112, 3), np.uint8))
    with pytest.raises(ServingError, match="generate_frame takes inputs"):
        client.predict("generate_frame", identity=np.zeros((1, EMBED), np.float32))


# --- A masked-target export: identity_features takes the frame being made as ``target`` ----------


@pytest.fixture(scope="module")
def masked_saved_model(tmp_path_factory):
    """(loaded, serving folder) of a tiny masked-target export: ``target`` + ``faces`` -> ``identity``; its frame
    reads only the target's upper half (what the model's mask leaves)."""
    import tensorflow as tf

    def image(name):
        return tf.TensorSpec([None, 112, 112, 3], tf.uint8, name=name)

    def features(target, faces):
        x = tf.cast(tf.concat([target, faces], -1), tf.float32) / 255.0  # (N, 112, 112, 6), the target first
        upper = tf.reduce_mean(x[:, :56, :, :3], [1, 2])  # (N, 3)
        return {"identity": tf.concat([upper, tf.reduce_mean(x[..., 3:], [1, 2, 3])[:, None]], -1)}  # (N, 4)

    def generate(identity, pcm):
        level = tf.reduce_mean(identity, -1) + 10.0 * tf.reduce_mean(tf.abs(pcm), -1)  # (N,)
        return {"frame": tf.sigmoid(tf.zeros([tf.shape(pcm)[0], 112, 112, 3]) + level[:, None, None, None])}

    module = tf.Module()
    module.identity_features = tf.function(features, input_signature=[image("target"), image("faces")])
    module.generate_frame_pcm = tf.function(
        generate,
        input_signature=[
            tf.TensorSpec([None, EMBED], tf.float32, name="identity"),
            tf.TensorSpec([None, PCM], tf.float32, name="pcm"),
        ],
    )
    path = tmp_path_factory.mktemp("masked") / "serving" / MODEL / "1"
    signatures = {
        name: getattr(module, name).get_concrete_function() for name in ("identity_features", "generate_frame_pcm")
    }
    tf.saved_model.save(module, str(path), signatures=signatures)
    return tf.saved_model.load(str(path)), path


@pytest.fixture(params=["rest", "grpc"])
def masked_client(request, masked_saved_model):
    server = serving_fakes.rest_server if request.param == "rest" else serving_fakes.grpc_server
    with server(*masked_saved_model, MODEL) as port:
        with ServingClient(
            "127.0.0.1", MODEL, protocol=request.param, rest_port=port, grpc_port=port, timeout=30
        ) as client:
            yield client


def test_client_of_a_masked_model_sends_each_rows_target(masked_client, masked_saved_model):
    loaded, _ = masked_saved_model
    assert masked_client.masked_target and masked_client.num_identity_images == 1
    assert serving_client.backend(masked_client) is masked_client
    rng = np.random.default_rng(3)
    faces = rng.integers(0, 256, (1, 112, 112, 3), dtype=np.uint8)
    targets = rng.integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    identity = masked_client.identity_features(frame_loop.identity_faces(masked_client, faces, targets))
    expected = serving_fakes.run_signature(
        loaded, "identity_features", {"target": targets, "faces": np.repeat(faces, 3, 0)}
    )
    np.testing.assert_allclose(identity["identity"], expected["identity"], rtol=1e-6)
    pcm = _inputs(batch=3)["pcm"]
    frames = masked_client.generate_frame_pcm(identity, pcm)  # window i with identity row i
    direct = serving_fakes.run_signature(loaded, "generate_frame_pcm", {**expected, "pcm": pcm})["frame"]
    np.testing.assert_allclose(frames, direct, rtol=1e-6)
    photo = masked_client.identity_features(frame_loop.identity_faces(masked_client, faces))  # its own target
    np.testing.assert_allclose(photo["identity"][0, :3], faces[0, :56].mean((0, 1)) / 255.0, rtol=1e-5)
    assert masked_client.generate_frame_pcm(photo, pcm).shape == (3, 112, 112, 3)
    with pytest.raises(ValueError, match=r"takes the target frame and 1 reference face\(s\).*got \(1, 112, 112, 3\)"):
        masked_client.identity_features(faces)
    with pytest.raises(ValueError, match=r"identity outputs with \[3\] rows for 2 audio windows"):
        masked_client.generate_frame_pcm(identity, pcm[:2])


def test_rest_path_imports_no_tensorflow():
    code = (
        "import sys, numpy as np; from keras_s2v import serving_client, frame_loop; "
        "serving_client.rest_payload('x', {'a': np.zeros(2)}); "
        "serving_client.parse_rest_response({'outputs': [1.0]}); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- The command ------------------------------------------------------------------------------


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "keras_s2v.serving_client", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory):
    import cv2

    from keras_s2v.data import media

    root = tmp_path_factory.mktemp("cli")
    face = np.zeros((224, 224, 3), np.uint8)
    cv2.circle(face, (112, 112), 80, (40, 160, 220), -1)
    cv2.imwrite(str(root / "face.png"), face)
    cv2.imwrite(str(root / "photo.png"), np.zeros((120, 160, 3), np.uint8))
    wave = 0.5 * np.sin(np.arange(8000) / 16000 * 2 * np.pi * 220).astype(np.float32)  # 0.5 s: 13 frames
    media.write_wav(root / "speech.wav", wave)
    return root


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg not installed")
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_cli_writes_video(cli_inputs, rest_server, grpc_server, tmp_path, protocol):
    from keras_s2v.data import media

    out = tmp_path / "out.mp4"
    result = _run_cli(
        "--host",
        "127.0.0.1",
        "--model",
        MODEL,
        f"--protocol={protocol}",
        f"--rest_port={rest_server}",
        f"--grpc_port={grpc_server}",
        "--batch_size=5",
        "--face",
        str(cli_inputs / "face.png"),
        "--audio",
        str(cli_inputs / "speech.wav"),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: 13 frames" in result.stdout
    info = media.probe(out)
    assert info.has_video and info.has_audio and (info.width, info.height) == (112, 112)
    assert len(list(media.iter_frames(out))) == 13
    again = _run_cli(
        "--host",
        "127.0.0.1",
        "--model",
        MODEL,
        f"--rest_port={rest_server}",
        "--face",
        str(cli_inputs / "face.png"),
        "--audio",
        str(cli_inputs / "speech.wav"),
        "--out",
        str(out),
    )
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.parametrize(
    ("face", "audio", "expected"),
    [
        ("missing.png", "speech.wav", r"missing\.png: file not found"),
        ("photo.png", "speech.wav", r"photo\.png: 160x120 is not square"),
        ("face.png", "missing.wav", r"missing\.wav: file not found"),
        ("face.png", "face.png", r"face\.png: no audio stream"),
    ],
)
def test_cli_bad_input_names_the_file(cli_inputs, tmp_path, face, audio, expected):
    result = _run_cli(
        "--host",
        "127.0.0.1",
        f"--rest_port={_free_port()}",
        "--face",
        str(cli_inputs / face),
        "--audio",
        str(cli_inputs / audio),
        "--out",
        str(tmp_path / "out.mp4"),
    )
    assert result.returncode == 2
    assert re.search(expected, result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg not installed")
def test_make_video_of_a_masked_model_takes_the_photo_as_its_target(cli_inputs, masked_client, tmp_path):
    count, _ = serving_client.make_video(
        masked_client, [cli_inputs / "face.png"], cli_inputs / "speech.wav", tmp_path / "out.mp4", progress=False
    )
    assert count == 13
    with pytest.raises(
        ValueError,
        match=r"needs 1 aligned face crop\(s\) \(--face IMAGE, repeated\), got 2; the first "
        "is also the frame being made",
    ):
        serving_client.make_video(
            masked_client,
            [cli_inputs / "face.png"] * 2,
            cli_inputs / "speech.wav",
            tmp_path / "two.mp4",
            progress=False,
        )
    assert not (tmp_path / "two.mp4").exists()


def test_cli_unreachable_server(cli_inputs, tmp_path):
    port = _free_port()
    result = _run_cli(
        "--host",
        "127.0.0.1",
        f"--rest_port={port}",
        "--face",
        str(cli_inputs / "face.png"),
        "--audio",
        str(cli_inputs / "speech.wav"),
        "--out",
        str(tmp_path / "out.mp4"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "is TF Serving running" in result.stderr
    assert not (tmp_path / "out.mp4").exists()
