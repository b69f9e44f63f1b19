"""Stand-ins for TF Serving (none can be installed here): a SavedModel behind in-process REST and gRPC servers.

They answer as TF Serving does: ``:predict`` runs a signature with its inputs
converted to the signature's dtypes (refused when they do not fit), REST
leaves a signature's only output unnamed, and ``/metadata`` /
``GetModelMetadata`` give the signatures of the SavedModel's
``saved_model.pb``, as the model server reads them.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np


def run_signature(loaded, name, arrays):
    """Call a signature as TF Serving does: inputs converted to its dtypes, refused when they do not fit."""
    import tensorflow as tf

    signature = loaded.signatures[name]
    specs = signature.structured_input_signature[1]
    if set(arrays) != set(specs):
        raise ValueError(f"signature {name} takes inputs {sorted(specs)}, got {sorted(arrays)}")
    tensors = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if specs[key].dtype.is_integer and value.dtype.kind == "f":
            raise ValueError(f"{key}: expects {specs[key].dtype.name}, got floats")
        tensors[key] = tf.constant(value, dtype=specs[key].dtype)
    return {key: value.numpy() for key, value in signature(**tensors).items()}


def metadata_response(saved_model_dir, model_name: str):
    """The ``GetModelMetadataResponse`` TF Serving gives for a SavedModel: its signature defs."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in saved_model.meta_graphs[0].signature_def.items():
        signature_defs.signature_def[name].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = model_name
    response.model_spec.version.value = int(Path(saved_model_dir).name)
    response.metadata["signature_def"].Pack(signature_defs)
    return response


class _RestHandler(BaseHTTPRequestHandler):
    loaded = saved_model_dir = model_name = None  # set per server

    def log_message(self, *args):
        pass

    def _answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _model_or_404(self, method):
        match = re.fullmatch(rf"/v1/models/([^/:]+)(?:/versions/(\d+))?{method}", self.path)
        if not match or match[1] != self.model_name or match[2] not in (None, Path(self.saved_model_dir).name):
            name = match[1] if match else self.path
            self._answer(404, {"error": f"Servable not found for request: Latest({name})"})
            return False
        return True

    def do_GET(self):
        if self._model_or_404("/metadata"):
            from google.protobuf import json_format

            response = metadata_response(self.saved_model_dir, self.model_name)
            self._answer(200, json_format.MessageToDict(response, preserving_proto_field_name=True))

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self._model_or_404(":predict"):
            return
        try:
            outputs = run_signature(self.loaded, request.get("signature_name", "serving_default"), request["inputs"])
        except Exception as error:  # noqa: BLE001 (TF Serving answers any failure with 400)
            return self._answer(400, {"error": str(error)})
        if len(outputs) == 1:  # TF Serving leaves the only output unnamed
            return self._answer(200, {"outputs": next(iter(outputs.values())).tolist()})
        return self._answer(200, {"outputs": {k: v.tolist() for k, v in outputs.items()}})


@contextlib.contextmanager
def rest_server(loaded, saved_model_dir, model_name: str):
    """Serve ``loaded`` (the SavedModel at ``saved_model_dir``, a version folder) over REST; yields the port."""
    handler = type(
        "Handler",
        (_RestHandler,),
        {"loaded": loaded, "saved_model_dir": str(saved_model_dir), "model_name": model_name},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def grpc_server(loaded, saved_model_dir, model_name: str):
    """Serve ``loaded`` over gRPC (``Predict`` and ``GetModelMetadata``); yields the port."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    def check_model(spec, context):
        if spec.name != model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def GetModelMetadata(self, request, context):
            check_model(request.model_spec, context)
            return metadata_response(saved_model_dir, model_name)

        def Predict(self, request, context):
            check_model(request.model_spec, context)
            arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            signature = request.model_spec.signature_name or "serving_default"
            specs = loaded.signatures[signature].structured_input_signature[1]
            for key, value in arrays.items():
                if key in specs and value.dtype != specs[key].dtype.as_numpy_dtype:
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, f"{key}: expects {specs[key].dtype.name}, got {value.dtype}"
                    )
            try:
                outputs = run_signature(loaded, signature, arrays)
            except ValueError as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            response = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)
