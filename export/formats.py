"""Converters (SavedModel -> TFLite, ONNX) and one runner per format with the same call.

Every runner has ``run(signature, inputs: dict[name, array]) -> dict[name, array]``,
so the parity check and the benchmark treat Keras, SavedModel, each TFLite
variant and ONNX alike; ``stream_steps`` / ``stream_frames`` drive any runner's
``generate_step`` (temporal GAN) as a streaming client does.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from keras_s2v.signature_names import FRAME, FRAMES, GENERATE_STEP, GENERATE_WINDOW, METADATA_NAME, NOISE, PCM

QUANTIZATIONS = ("float32", "float16", "int8")
# Ops of the in-graph MFCC (gather framing, DFT and mel matmuls, squares, log) and of the audio
# encoder's input BatchNorm: kept float32 in int8 models. Quantizing raw PCM and the power
# spectrum to 256 levels cost 19 dB of frame PSNR (31 vs 50 dB on the demo model).
FLOAT_FRONT_END_OPS = ("GATHER", "FULLY_CONNECTED", "MUL", "ADD", "LOG", "TRANSPOSE")
# And the GRU gates of a streaming generator (temporal GAN): float32 states do not carry int8 rounding
# from frame to frame (the noise GRU's state then matches Keras exactly; +4 dB frame PSNR on tgan_tiny).
FLOAT_RECURRENT_OPS = (*FLOAT_FRONT_END_OPS, "LOGISTIC", "TANH", "SUB", "SPLIT", "STRIDED_SLICE")
# ONNX gives no graph output an input's name: an output named like an input (a streaming model's new
# state) is stored as NAME + this suffix; OnnxRunner gives it back its signature name.
ONNX_CLASHING_OUTPUT_SUFFIX = "_next"


# --- TFLite ---------------------------------------------------------------------------------


def to_tflite(
    saved_model_dir, signature_keys, quantization: str, representative_dataset=None, float_ops=FLOAT_FRONT_END_OPS
) -> bytes:
    """One multi-signature .tflite of ``signature_keys``, builtin ops only.

    * ``float32``: as trained.
    * ``float16``: weights stored in float16 (half the size), computed in float32.
    * ``int8``: int8 weights and activations for every convolution,
      calibrated on ``representative_dataset`` (yields ``(signature_key,
      inputs)`` pairs); the op types ``float_ops`` (the audio front end,
      ``FLOAT_FRONT_END_OPS``; for a streaming model also its GRU gates,
      ``FLOAT_RECURRENT_OPS``) stay float32 by selective quantization. Inputs
      and outputs keep their float32 / uint8 types.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=list(signature_keys))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if representative_dataset is None:
            raise ValueError("int8 quantization needs calibration data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
        with warnings.catch_warnings():  # the debugger builds a tf.lite.Interpreter; the model is run with LiteRT
            warnings.simplefilter("ignore")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=representative_dataset, debug_options=options
            )
            return debugger.get_nondebug_quantized_model()
    elif quantization != "float32":
        raise ValueError(f"unknown quantization {quantization!r} ({', '.join(QUANTIZATIONS)})")
    return converter.convert()


def embed_metadata(tflite_model: bytes, metadata: dict) -> bytes:
    """The model with ``metadata`` as JSON in the flatbuffer's ``metadata`` table (name ``keras_s2v``).

    Read back by ``keras_s2v.model_files.read_embedded_metadata`` (clients read it without export/).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_ops(tflite_path) -> set[str]:
    """Builtin / custom op names used by a .tflite file (Flex ops show as custom ``Flex...``)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(tflite_path))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = set()
    for code in model.operatorCodes:
        if code.customCode:
            ops.add(code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode)
        else:
            ops.add(names.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode)))
    return ops


# --- ONNX -----------------------------------------------------------------------------------


def onnx_output_names(input_names, output_names) -> dict[str, str]:
    """Signature output name -> its name in the ONNX file (``ONNX_CLASHING_OUTPUT_SUFFIX``)."""
    return {k: f"{k}{ONNX_CLASHING_OUTPUT_SUFFIX}" if k in set(input_names) else k for k in output_names}


def to_onnx(saved_model_dir, signature: str, path, opset: int = 17) -> None:
    """Signature ``signature`` of the SavedModel as an ONNX file (tf2onnx), same input/output names
    except outputs named like an input (``onnx_output_names``)."""
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(str(saved_model_dir))  # kept alive: the signature only references its variables
    function = loaded.signatures[signature]
    inputs = function.structured_input_signature[1]
    specs = [tf.TensorSpec(spec.shape, spec.dtype, name=name) for name, spec in sorted(inputs.items())]
    names = [spec.name for spec in specs]
    renamed = onnx_output_names(names, function.structured_outputs)

    def call(*args):
        return {renamed[k]: v for k, v in function(**dict(zip(names, args))).items()}

    wrapped = tf.function(call, input_signature=specs)
    tf2onnx.convert.from_function(wrapped, input_signature=specs, opset=opset, output_path=str(path))


# --- Runners --------------------------------------------------------------------------------


class KerasRunner:
    """The reference: the signature functions called eagerly on the Keras model."""

    name = "keras"

    def __init__(self, signatures):
        self.signatures = signatures

    def run(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        return self.signatures.run_keras(signature, inputs)


class SavedModelRunner:
    """``tf.saved_model.load`` and call each signature by name with named inputs (what TF Serving does)."""

    name = "saved_model"

    def __init__(self, path):
        import tensorflow as tf

        self._tf = tf
        self.loaded = tf.saved_model.load(str(path))

    def run(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        function = self.loaded.signatures[signature]
        wanted = function.structured_input_signature[1]
        outputs = function(**{k: self._tf.constant(inputs[k]) for k in wanted})
        return {k: v.numpy() for k, v in outputs.items()}


class LiteRunner:
    """A .tflite file run with LiteRT's interpreter through ``get_signature_runner``."""

    def __init__(self, path, num_threads: int | None = None, name: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.name = name or f"tflite_{self.path.stem}"
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._runners = {}

    def signature_names(self) -> list[str]:
        return list(self.interpreter.get_signature_list())

    def run(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        """Batches larger than the model's fixed batch of 1 run one example at a time."""
        if signature not in self._runners:
            self._runners[signature] = self.interpreter.get_signature_runner(signature)
        runner = self._runners[signature]
        wanted = self.interpreter.get_signature_list()[signature]["inputs"]
        arrays = {k: np.asarray(inputs[k]) for k in wanted}
        fixed = runner.get_input_details()[wanted[0]]["shape_signature"][0] == 1
        if not fixed:
            return dict(runner(**arrays))
        outputs = [runner(**{k: v[i : i + 1] for k, v in arrays.items()}) for i in range(len(arrays[wanted[0]]))]
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}


class OnnxRunner:
    """ONNX files (one per signature) run with onnxruntime."""

    name = "onnx"

    def __init__(self, paths: dict, num_threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Idle pools sleep instead of spinning: the identity and generator sessions share the cores
        # (spinning halved frames/s when a client runs both per frame).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.sessions = {
            k: onnxruntime.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
            for k, p in paths.items()
        }

    def run(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        session = self.sessions[signature]
        feed = {i.name: np.asarray(inputs[i.name]) for i in session.get_inputs()}
        names = [o.name for o in session.get_outputs()]
        own = {f"{k}{ONNX_CLASHING_OUTPUT_SUFFIX}": k for k in feed}  # a new state -> its signature name
        return {own.get(n, n): value for n, value in zip(names, session.run(names, feed))}


# --- Streaming (temporal GAN) ---------------------------------------------------------------


def stream_steps(runner, identity: dict, pcm: np.ndarray, noise: np.ndarray, state_shapes: dict):
    """Yield ``(inputs, outputs)`` of ``generate_step`` over consecutive windows, batch 1.

    ``pcm`` (T, W) and ``noise`` (T, Z): one row per video frame, in order.
    ``identity``: identity outputs of batch 1 (one face for the whole stream)
    or of batch T (step ``t`` takes row ``t``). The states start at zeros and
    each step's state outputs are the next step's inputs.
    """
    states = {k: np.zeros((1, *shape), np.float32) for k, shape in state_shapes.items()}
    for t in range(len(pcm)):
        face = {k: (v[t : t + 1] if len(v) > 1 else v) for k, v in identity.items()}
        inputs = {**face, PCM: pcm[t : t + 1], NOISE: noise[t : t + 1], **states}
        outputs = runner.run(GENERATE_STEP, inputs)
        yield inputs, outputs
        states = {k: np.asarray(outputs[k]) for k in state_shapes}


def stream_frames(runner, identity: dict, pcm: np.ndarray, noise: np.ndarray, state_shapes: dict) -> np.ndarray:
    """(T, S, S, 3) frames of ``stream_steps``."""
    return np.concatenate([out[FRAME] for _, out in stream_steps(runner, identity, pcm, noise, state_shapes)])


# --- Windows (lips at a glance) -------------------------------------------------------------


def window_lips(runner, identity: dict, rows: np.ndarray, window_frames: int) -> np.ndarray:
    """(T, L, L, 3) blended lip frames of any runner's ``generate_window`` over consecutive frames' rows.

    ``rows``: (T, ``frame_loop.windowed_row_samples(window_frames)``), one per
    video frame in order; ``identity``: batch 1. The windows and the
    cross-fade are ``frame_loop.WindowedGenerator``'s, one window at a time.
    """
    from keras_s2v import frame_loop

    def window_fn(identity_outputs, pcm):
        return np.concatenate([runner.run(GENERATE_WINDOW, {**identity_outputs, PCM: p[None]})[FRAMES] for p in pcm])

    backend = frame_loop.WindowedGenerator(lambda faces: identity, window_fn, window_frames, runner.name)
    backend.identity_features(np.zeros((1, frame_loop.FACE_SIZE, frame_loop.FACE_SIZE, 3), np.uint8))
    return backend.generate_lips(identity, np.asarray(rows, np.float32))
