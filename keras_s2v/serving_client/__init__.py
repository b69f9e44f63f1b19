"""Client for an exported generator under TF Serving, by signature name, over REST or gRPC.

    python -m keras_s2v.serving_client --host localhost --model s2v_small \\
        --face aligned_face.png --audio speech.wav --out out.mp4 [--protocol grpc] [--overwrite]

The exporter writes ``OUT/serving/<model>/<version>/`` with these signatures:

* ``identity_features``: ``faces`` uint8 ``(N, 112, 112, 3 n)`` RGB 0..255 ->
  ``identity`` ``(N, E)``, ``skip_14`` ``(N, 14, 14, C1)``, ``skip_6``
  ``(N, 6, 6, C2)`` float32 (only ``identity`` for models without skips).
* ``generate_frame``: those outputs and ``mfcc`` float32 ``(N, 12, 35)`` ->
  ``frame`` float32 ``(N, 112, 112, 3)`` RGB in [0, 1].
* ``generate_frame_pcm``: those outputs and ``pcm`` float32 ``(N, 5840)``, the
  raw 16 kHz window of each frame (``audio.pcm_window``) -> ``frame``.
* ``serving_default``: ``faces`` and ``pcm`` -> ``frame``.

A masked-target export (``Speech2Vid(masked_target=True)``) adds ``target``
uint8 ``(N, 112, 112, 3)``, the frame being made, to ``identity_features``
and ``serving_default``; the client sees it among the served inputs and
sends it: the first 3 channels of the faces it is given, the target first as
``frame_loop.identity_faces`` stacks them (the command: a photo is its own
target).

A temporal GAN export has ``identity_features`` and ``generate_step`` (one
frame per call, GRU states fed back); a lips-at-a-glance export has
``identity_features`` and ``generate_window`` (``pcm`` ``(N, 10480)`` ->
``frames`` ``(N, 16, 64, 64, 3)``, windows of 16 frames every 8, cross-faded
and pasted into the face). ``backend(client)`` reads the model's signatures
from the server (its metadata) and returns what ``frame_loop`` drives for each.

The REST path needs only NumPy and the standard library; gRPC imports
``grpc``, ``tensorflow_serving.apis`` and TensorFlow (for tensor protos) when
first used. gRPC sends tensors as raw bytes; REST as JSON text, about 12
characters per float, so prefer gRPC for long clips over a network.

The command runs what an app runs: ``identity_features`` once on the aligned
face, then the generator signature on the audio (``generate_frame_pcm`` on
batches of frames' windows; ``generate_step`` a frame at a time;
``generate_window`` on the windows a batch of frames needs), streaming the
frames into an mp4 with the audio muxed. The command is ``__main__.py``;
this library imports no command-line code.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

import numpy as np

from keras_s2v.data.audio import MFCC_WINDOW_SAMPLES
from keras_s2v.signature_names import (
    FACES,
    FRAME,
    FRAMES,
    GENERATE_FRAME,
    GENERATE_FRAME_PCM,
    GENERATE_STEP,
    GENERATE_WINDOW,
    IDENTITY,
    IDENTITY_FEATURES,
    NOISE,
    PCM,
    SERVING_DEFAULT,
    TARGET,
)

# Outputs of each exported signature, in order. Over REST, TF Serving drops
# the name of a signature's only output: it takes the first name here.
SIGNATURE_OUTPUTS = {
    IDENTITY_FEATURES: (IDENTITY, "skip_14", "skip_6"),
    GENERATE_FRAME: (FRAME,),
    GENERATE_FRAME_PCM: (FRAME,),
    SERVING_DEFAULT: (FRAME,),
    GENERATE_STEP: (FRAME,),  # and the new GRU states, under their input names
    GENERATE_WINDOW: (FRAMES,),
}
OUTPUT_DTYPE = np.float32  # every output of the exported signatures

REST_PORT = 8501
GRPC_PORT = 8500
DEFAULT_TIMEOUT = 60.0  # seconds per request
_MAX_GRPC_MESSAGE = -1  # unlimited: 25 frames are 3.8 MB, over gRPC's default 4 MB receive limit


class ServingError(Exception):
    """A request TF Serving did not answer, with the address and the problem."""

    def __init__(self, target: str, problem: str):
        self.target = target
        self.problem = problem
        super().__init__(f"{target}: {problem}")


# --- Inputs ---------------------------------------------------------------------------


def _as_input(value) -> np.ndarray:
    """An input array as sent: float64 (NumPy's default) becomes float32, the
    dtype of every float input of the exported signatures; others keep theirs."""
    array = np.asarray(value)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"cannot send an array of dtype {array.dtype}: numbers or booleans only")
    return array


def _single_output_name(signature_name: str) -> str:
    return SIGNATURE_OUTPUTS.get(signature_name, ("output",))[0]


# --- REST -------------------------------------------------------------------------------


def rest_url(
    host: str, model_name: str, version: int | None = None, port: int = REST_PORT, method: str = ":predict"
) -> str:
    """``http://host:port/v1/models/<name>[/versions/<v>]:predict`` (``method="/metadata"``: the model's metadata).

    ``host`` may also be a base URL (``https://serving.example.com``), used
    as it is, without ``port``.
    """
    if "://" in host:
        base = host.rstrip("/")
    else:
        if ":" in host and not host.startswith("["):  # IPv6 literal
            host = f"[{host}]"
        base = f"http://{host}:{port}"
    path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    return f"{base}{path}{method}"


def rest_payload(signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict:
    """``{"signature_name": ..., "inputs": {name: nested lists}}``: TF Serving's columnar request.

    Integers stay JSON integers (a uint8 ``faces`` input must not be sent as
    floats); floats are written exactly (float32 values round-trip).
    """
    return {
        "signature_name": signature_name,
        "inputs": {name: _as_input(value).tolist() for name, value in inputs.items()},
    }


def _to_array(value, dtype) -> np.ndarray:
    array = np.asarray(value)
    if dtype is not None:
        return array.astype(dtype)
    if array.dtype.kind == "f" or array.size == 0:
        return array.astype(np.float32)
    return array


def parse_rest_response(
    response: Mapping, output_name: str = "output", dtypes: Mapping[str, np.dtype] | np.dtype | None = None
) -> dict[str, np.ndarray]:
    """Arrays of a ``:predict`` answer, keyed by output name.

    Handles ``{"outputs": {name: value, ...}}`` (several outputs),
    ``{"outputs": value}`` (the only output, which TF Serving leaves unnamed:
    it is called ``output_name``) and the row form ``{"predictions": [...]}``.
    JSON carries no dtype: ``dtypes`` gives one per name (or one for all);
    otherwise floats become float32 and integers int64.
    """
    if "error" in response:
        raise ServingError("TF Serving", str(response["error"]))
    if "outputs" in response:
        outputs = response["outputs"]
        named = outputs if isinstance(outputs, Mapping) else {output_name: outputs}
    elif "predictions" in response:
        rows = response["predictions"]
        if rows and all(isinstance(row, Mapping) for row in rows):
            named = {name: [row[name] for row in rows] for name in rows[0]}
        else:
            named = {output_name: rows}
    else:
        raise ValueError(f"not a predict answer: no 'outputs' or 'predictions' in keys {sorted(response)}")

    def dtype_of(name):
        if isinstance(dtypes, Mapping):
            return dtypes.get(name)
        return dtypes

    return {name: _to_array(value, dtype_of(name)) for name, value in named.items()}


def _http_error_message(body: bytes) -> str:
    text = body.decode(errors="replace").strip()
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text or "no message"


def _rest_json(url: str, payload: dict | None, timeout: float) -> dict:
    """POST ``payload`` as JSON (``None``: GET) and parse the JSON answer."""
    if payload is None:
        request = urllib.request.Request(url, method="GET")
    else:
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
    except urllib.error.HTTPError as error:
        message = _http_error_message(error.read())
        hint = " (check --model and the version the server loaded)" if error.code == 404 else ""
        raise ServingError(url, f"HTTP {error.code}: {message}{hint}") from None
    except urllib.error.URLError as error:
        raise ServingError(url, _connection_problem(error.reason, "REST", timeout)) from None
    except (OSError, http.client.HTTPException) as error:  # timeout or reset while reading the answer
        raise ServingError(url, _connection_problem(error, "REST", timeout)) from None
    try:
        return json.loads(body)
    except ValueError:
        raise ServingError(url, f"the answer is not JSON: {body[:200]!r}") from None


def _connection_problem(reason, api: str, timeout: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return (
            f"connection refused: is TF Serving running, with its {api} API on this port? "
            "(docker run -p 8500:8500 -p 8501:8501 ... tensorflow/serving, see BUILD.md)"
        )
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s (raise --timeout, or send fewer frames per request)"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason})"
    return f"connection failed ({reason})"


def signature_shapes(metadata: Mapping) -> dict[str, dict[str, dict[str, tuple]]]:
    """``{signature: {"inputs": {name: shape}, "outputs": {name: shape}}}`` of a model's metadata.

    ``metadata`` is a ``GetModelMetadataResponse`` as JSON (TF Serving's REST
    answer, proto field names); unknown sizes are -1.
    """
    try:
        signature_defs = metadata["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError):
        raise ValueError(f"not a model metadata answer (keys {sorted(metadata)})") from None

    def shapes(tensors: Mapping) -> dict[str, tuple]:
        return {
            name: tuple(int(d.get("size", -1)) for d in info.get("tensor_shape", {}).get("dim", []))
            for name, info in tensors.items()
        }

    return {
        name: {"inputs": shapes(sig.get("inputs", {})), "outputs": shapes(sig.get("outputs", {}))}
        for name, sig in signature_defs.items()
        if name != "__saved_model_init_op"
    }


# --- gRPC -----------------------------------------------------------------------------


def predict_request(model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray], version: int | None = None):
    """A ``tensorflow_serving.apis.predict_pb2.PredictRequest`` with each input as a tensor proto."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(_as_input(value)))
    return request


def metadata_request(model_name: str, version: int | None = None):
    """A ``GetModelMetadataRequest`` for the model's signatures."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = int(version)
    return request


def metadata_as_json(response) -> dict:
    """A gRPC ``GetModelMetadataResponse`` as the JSON the REST API answers (``signature_shapes`` reads both)."""
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_defs)
    return {"metadata": {"signature_def": json_format.MessageToDict(signature_defs, preserving_proto_field_name=True)}}


def parse_predict_response(response) -> dict[str, np.ndarray]:
    """Arrays of a ``PredictResponse``, keyed by output name, with their own dtypes."""
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def _grpc_problem(error, timeout: float) -> str:
    import grpc

    code, details = error.code(), error.details()
    if code == grpc.StatusCode.UNAVAILABLE:
        return (
            f"cannot connect ({details}): is TF Serving running, with its gRPC API on this port? "
            "(docker run -p 8500:8500 -p 8501:8501 ... tensorflow/serving, see BUILD.md)"
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within {timeout:g} s (raise --timeout, or send fewer frames per request)"
    if code == grpc.StatusCode.NOT_FOUND:
        return f"{details} (check --model and the version the server loaded)"
    return f"{code.name}: {details}"


# --- Client -------------------------------------------------------------------------------


class ServingClient:
    """Calls an exported generator's signatures on a TF Serving model server.

    ``predict(signature_name, **inputs)`` returns the outputs as NumPy arrays;
    ``identity_features`` and ``generate_frame_pcm`` are the two calls an app
    makes with a Speech2Vid export (the ``frame_loop.FrameBackend`` protocol).
    ``backend(client)`` wraps it for the temporal GAN and lips-at-a-glance
    exports, whose signatures ``signatures()`` reads from the server.
    ``masked_target``, ``num_identity_images`` and ``face_size`` come from the
    served ``identity_features`` signature (asked once, on first use).
    """

    window_samples = MFCC_WINDOW_SAMPLES  # generate_frame_pcm's window

    def __init__(
        self,
        host: str,
        model_name: str,
        version: int | None = None,
        protocol: str = "rest",
        rest_port: int = REST_PORT,
        grpc_port: int = GRPC_PORT,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        if protocol not in ("rest", "grpc"):
            raise ValueError(f"protocol must be 'rest' or 'grpc', got {protocol!r}")
        self.host, self.model_name, self.version, self.protocol = host, model_name, version, protocol
        self.rest_port, self.grpc_port, self.timeout = rest_port, grpc_port, timeout
        self._channel = self._stub = None
        self._signatures = None

    @property
    def target(self) -> str:
        """The URL (REST) or host:port (gRPC) requests go to."""
        if self.protocol == "rest":
            return rest_url(self.host, self.model_name, self.version, self.rest_port)
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.grpc_port}"

    def signatures(self) -> dict[str, dict[str, dict[str, tuple]]]:
        """The served model's signatures with their input and output shapes (``signature_shapes``), asked once."""
        if self._signatures is None:
            if self.protocol == "rest":
                target = rest_url(self.host, self.model_name, self.version, self.rest_port, method="/metadata")
                answer = _rest_json(target, None, self.timeout)
            else:
                target = self._grpc_target
                request = metadata_request(self.model_name, self.version)
                answer = metadata_as_json(self._grpc_call("GetModelMetadata", request))
            try:
                self._signatures = signature_shapes(answer)
            except ValueError as error:
                raise ServingError(target, str(error)) from None
        return self._signatures

    def predict(self, signature_name: str, **inputs) -> dict[str, np.ndarray]:
        """Run one signature on a batch; outputs keyed by name."""
        if self.protocol == "rest":
            answer = _rest_json(self.target, rest_payload(signature_name, inputs), self.timeout)
            dtypes = OUTPUT_DTYPE if signature_name in SIGNATURE_OUTPUTS else None
            return parse_rest_response(answer, _single_output_name(signature_name), dtypes)
        request = predict_request(self.model_name, signature_name, inputs, self.version)
        return parse_predict_response(self._grpc_call("Predict", request))

    @property
    def description(self) -> str:
        return f"TF Serving {self.model_name} at {self.target}"

    def _face_shapes(self) -> dict[str, tuple]:
        signatures = self.signatures()
        if IDENTITY_FEATURES not in signatures:
            raise ServingError(
                self.target,
                f"{self.model_name} serves {sorted(signatures)}: no {IDENTITY_FEATURES} "
                "signature (python -m export writes it)",
            )
        return signatures[IDENTITY_FEATURES]["inputs"]

    @property
    def masked_target(self) -> bool:
        """Whether ``identity_features`` takes a ``target`` (the frame being made) besides the faces."""
        return TARGET in self._face_shapes()

    @property
    def num_identity_images(self) -> int:
        return self._face_shapes()[FACES][-1] // 3

    @property
    def face_size(self) -> int:
        return self._face_shapes()[FACES][1]

    @property
    def _grpc_target(self) -> str:
        return f"grpc://{self.target} ({self.model_name})"

    def _grpc_call(self, method: str, request):
        """One ``PredictionService`` call; a failure becomes a ``ServingError`` naming the address and the problem."""
        import grpc

        try:
            return getattr(self._grpc_stub(), method)(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(self._grpc_target, _grpc_problem(error, self.timeout)) from None

    def identity_features(self, faces_uint8: np.ndarray) -> dict[str, np.ndarray]:
        """``faces`` uint8 ``(112, 112, 3 n)`` or ``(N, 112, 112, 3 n)`` -> ``identity`` (and skips).

        A masked-target model: ``3 (n + 1)`` channels, the target frame first
        (``frame_loop.identity_faces``), sent as ``target`` beside the faces.
        """
        from keras_s2v import frame_loop

        faces = np.asarray(faces_uint8)
        if faces.dtype != np.uint8:
            raise TypeError(f"faces must be uint8 RGB 0..255, got {faces.dtype}")
        if faces.ndim == 3:
            faces = faces[None]
        return self.predict(IDENTITY_FEATURES, **frame_loop.identity_inputs(self, faces))

    def generate_frame_pcm(self, identity_outputs: Mapping[str, np.ndarray], pcm: np.ndarray) -> np.ndarray:
        """Frames float32 ``(N, 112, 112, 3)`` in [0, 1] for ``pcm`` ``(N, 5840)`` windows.

        ``identity_outputs`` is what ``identity_features`` returned: with
        batch 1 it is repeated for every window, with batch N window i gets row i.
        """
        from keras_s2v import frame_loop

        pcm = np.asarray(pcm, np.float32)
        if pcm.ndim == 1:
            pcm = pcm[None]
        inputs = frame_loop.identity_rows(identity_outputs, len(pcm))
        return self.predict(GENERATE_FRAME_PCM, **{PCM: pcm}, **inputs)[FRAME]

    def generate_window(self, identity_outputs: Mapping[str, np.ndarray], pcm: np.ndarray) -> np.ndarray:
        """Lip frames float32 ``(N, T, L, L, 3)`` for ``pcm`` ``(N, audio.log_mel_window_samples(T))`` windows."""
        pcm = np.asarray(pcm, np.float32)
        inputs = {name: _repeat_to(name, value, len(pcm)) for name, value in identity_outputs.items()}
        return self.predict(GENERATE_WINDOW, **{PCM: pcm}, **inputs)[FRAMES]

    def _grpc_stub(self):
        if self._stub is None:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            options = [
                ("grpc.max_send_message_length", _MAX_GRPC_MESSAGE),
                ("grpc.max_receive_message_length", _MAX_GRPC_MESSAGE),
            ]
            self._channel = grpc.insecure_channel(self.target, options=options)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        return self._stub

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _repeat_to(name: str, value, count: int) -> np.ndarray:
    value = np.asarray(value)
    if value.shape[0] == count:
        return value
    if value.shape[0] == 1:
        return np.repeat(value, count, axis=0)
    raise ValueError(f"{name} has batch {value.shape[0]}, expected 1 or {count}")


def backend(client: ServingClient):
    """What ``frame_loop`` drives for the served model, by its signatures.

    A Speech2Vid export: the client itself. A lips-at-a-glance export
    (``generate_window``): a ``frame_loop.WindowedGenerator`` over the client.
    A temporal GAN export (``generate_step``): a ``frame_loop.StreamingGenerator``
    over the client, one request per frame.
    """
    from keras_s2v import frame_loop

    signatures = client.signatures()
    description = f"TF Serving {client.model_name} at {client.target}"
    generators = {GENERATE_FRAME_PCM, GENERATE_STEP, GENERATE_WINDOW} & set(signatures)
    if IDENTITY_FEATURES not in signatures or not generators:
        raise ServingError(
            client.target,
            f"{client.model_name} serves {sorted(signatures)}: not a keras_s2v export "
            "(python -m export writes identity_features and a generator)",
        )
    face_size = signatures[IDENTITY_FEATURES]["inputs"][FACES][1]
    if GENERATE_WINDOW in signatures:
        _, window_frames, lip_size, _, _ = signatures[GENERATE_WINDOW]["outputs"][FRAMES]
        return frame_loop.WindowedGenerator(
            client.identity_features, client.generate_window, window_frames, description, face_size, lip_size
        )
    if GENERATE_STEP in signatures:
        inputs = signatures[GENERATE_STEP]["inputs"]
        identity_keys = signatures[IDENTITY_FEATURES]["outputs"]
        states = {k: shape[1:] for k, shape in inputs.items() if k not in (*identity_keys, PCM, NOISE)}

        def step(values):  # one frame: identity outputs, pcm, noise and states -> frame and new states
            return client.predict(GENERATE_STEP, **{k: values[k] for k in inputs})

        return frame_loop.StreamingGenerator(
            client.identity_features, step, states, inputs[NOISE][-1], inputs[PCM][-1], description, face_size
        )
    return client


# --- What the command runs (python -m keras_s2v.serving_client: __main__.py) --------------


def make_video(
    client,
    face_paths,
    audio_path,
    out,
    batch_size: int = 25,
    fps: float = 25.0,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[int, float]:
    """Read the face crop(s) and the audio, write ``out``; (frames, seconds of audio)."""
    from keras_s2v import frame_loop, outputs
    from keras_s2v.data import audio as audio_lib
    from keras_s2v.data import media

    inputs = [*(("--face", p) for p in face_paths), ("--audio", audio_path)]
    outputs.check_file(out, inputs=inputs, overwrite=overwrite)
    media.check_audio(audio_path)  # a cut file or NaN samples: the audio's fault, said before any request
    faces = frame_loop.read_faces(face_paths)  # the inputs are checked before any request
    waveform = media.read_audio(audio_path)
    model = backend(client)
    frame_loop.check_frame_rate(model, fps, "--fps")
    frame_loop.check_face_count(model, len(face_paths))
    face_size = client.signatures()[IDENTITY_FEATURES]["inputs"][FACES][1]
    if face_size != faces.shape[1]:
        faces = frame_loop.read_faces(face_paths, face_size)
    faces = frame_loop.identity_faces(model, faces)  # a masked-target model: the first crop is the target too
    count = frame_loop.write_talking_video(model, faces, waveform, out, batch_size, fps, overwrite, progress, inputs)
    return count, len(waveform) / audio_lib.SAMPLE_RATE
