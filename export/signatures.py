"""The exported signatures, as functions over a trained ``Speech2Vid``, temporal GAN or lips-at-a-glance model.

=======================  ==========================================  ===========================
signature                inputs                                      outputs
=======================  ==========================================  ===========================
``identity_features``    ``faces`` uint8 (N, 112, 112, 3 n) RGB      ``identity`` (N, E) and, with
                         0..255, n aligned faces on channels         skips, ``skip_14``, ``skip_6``
``generate_frame``       identity outputs + ``mfcc`` (N, 12, 35)     ``frame`` (N, 112, 112, 3)
``generate_frame_pcm``   identity outputs + ``pcm`` (N, 5840)        ``frame``
``serving_default``      ``faces`` + ``pcm``                         ``frame``
=======================  ==========================================  ===========================

A ``Speech2Vid(masked_target=True)`` (Wav2Lip's conditioning) also sees the
frame being made, its lower half zeroed in the graph; its ``identity_features``
and ``serving_default`` take one more input, ``target``, and nothing else changes:

=======================  ==========================================  ===========================
signature                inputs                                      outputs
=======================  ==========================================  ===========================
``identity_features``    ``target`` uint8 (N, 112, 112, 3) RGB       as above
                         0..255, the aligned frame being made;
                         ``faces`` as above (the n reference faces)
``serving_default``      ``target`` + ``faces`` + ``pcm``            ``frame``
=======================  ==========================================  ===========================

The graph puts ``target`` before ``faces`` on channels, as the model trained
(``(N, 112, 112, 3 (n + 1))``). ``serving_default`` takes ``target`` too rather
than guessing it from the faces: a photo client sends its first face as the
target (``frame_loop.identity_faces``), a re-dubbing client each frame's own
face. ``target`` among ``identity_features``' inputs is what marks a masked
model to a client; ``metadata.json`` also records ``masked_target``.

Frames are float32 RGB in [0, 1]. ``pcm`` is 16 kHz mono float32 in [-1, 1]:
video frame ``t``'s window is samples ``[640 t - 2600, 640 t + 3240)``,
zero-padded past either end (``keras_s2v.data.audio.pcm_window``); the MFCC
is computed in the graph with builtin ops only.

A temporal GAN (``TemporalGenerator``) streams instead: its generator carries
GRU states from one video frame to the next (``StreamingSignatures``):

=======================  ==========================================  ===========================
signature                inputs                                      outputs
=======================  ==========================================  ===========================
``identity_features``    ``faces`` uint8 (N, 112, 112, 3) RGB        ``identity`` (N, I), ``skip_56``,
                         0..255, one aligned face                    ``skip_28``, ``skip_14``, ``skip_7``
``generate_step``        identity outputs + ``pcm`` (N, W) +         ``frame`` (N, 112, 112, 3) and
                         ``noise`` (N, Z) + each state (N, U)        each state (N, U), same names
=======================  ==========================================  ===========================

``W`` is the model's window (2560 raw samples, ``[640 t - 960, 640 t + 1600)``,
for the waveform model; 5840 as above for the MFCC one, whose MFCC is computed
in the graph). ``noise`` is standard normal, a fresh draw per frame; the
graph scales it by the model's ``noise_std``, so a client needs no setting.
The states (``context_state1``, ``context_state2``,
``noise_state1`` ..., ``TemporalGenerator.state_shapes``) are zeros for the
first frame; each state output is the next frame's input of the same name.
Call ``generate_step`` once per video frame, in order: the frames then equal
the whole-sequence model's. (Its SavedModel also answers ``serving_default``
with ``identity_features``: ``keras.export.ExportArchive`` aliases the first
endpoint, as TF Serving wants a default.)

A lips-at-a-glance generator (``GlanceGenerator``) makes a window of ``T``
64 x 64 lip frames at once (``WindowSignatures``; T = 16, 8 for the tiny
experiments):

=======================  ==========================================  ===========================
signature                inputs                                      outputs
=======================  ==========================================  ===========================
``identity_features``    ``faces`` uint8 (N, 112, 112, 3) RGB        ``identity`` (N, 8, 8, C),
                         0..255, one aligned face                    ``skip_32``, ``skip_16``
``generate_window``      identity outputs + ``pcm`` (N, P)           ``frames`` (N, T, 64, 64, 3)
=======================  ==========================================  ===========================

``identity_features`` crops the lips in the graph (``align.lip_box``: rows
45..100, columns 28..83 of the 112 face, bilinear to 64 x 64). Window ``k``
covers video frames ``[hop k, hop k + T)``, ``hop = T // 2``; its ``pcm`` is
``P = 640 T + 240`` samples (10480 for 16) ``[640 hop k - 120, 640 (hop k +
T) + 120)`` (``audio.log_mel_window_range``), from which the graph computes
the window's log-mel (4 x 128 per frame) with builtin ops. A client runs
every window in order, cross-fades the two windows each frame lies in
(window ``k``'s weight ``(j + 0.5) / hop`` at frame ``hop k + j``) and pastes
the lips into the face (``frame_loop.WindowedGenerator``). 25 fps only.
(Its SavedModel answers ``serving_default`` with ``identity_features`` too.)

The same functions called eagerly are the Keras reference the parity check
compares every format against. The names (signatures, tensors, metadata) are
``keras_s2v.signature_names``, which the clients import too.
"""

from __future__ import annotations

import numpy as np

from export import formats
from keras_s2v.data import audio as audio_lib
from keras_s2v.models.speech2vid import IMAGE_SIZE, SKIP_NAMES
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
    MFCC,
    NOISE,
    ON_DEVICE_SIGNATURES,
    PCM,
    SERVING_DEFAULT,
    SIGNATURES,
    STREAMING_SIGNATURES,
    TARGET,
    WINDOW_SIGNATURES,
)


def signatures_for(model):
    """The signatures of a trained generator: ``StreamingSignatures`` for a model with
    ``step_generator`` (temporal GAN), ``WindowSignatures`` for one with ``window_generator``
    (lips at a glance), ``Signatures`` for a per-frame one (Speech2Vid)."""
    if hasattr(model, "window_generator"):
        return WindowSignatures(model)
    return StreamingSignatures(model) if hasattr(model, "step_generator") else Signatures(model)


class _SignatureFunctions:
    """What both kinds share: signature functions by name, and the eager Keras reference."""

    masked_target = False  # only a Speech2Vid can be (``Signatures``)

    def function(self, name: str):
        return getattr(self, name)

    def identity_inputs(self, faces, targets=None) -> dict[str, np.ndarray]:
        """``identity_features``' named inputs for uint8 ``faces`` (N, S, S, 3 n): with ``target`` for a
        masked model, ``targets`` (N, S, S, 3) or else the first face (a photo is its own target)."""
        faces = np.asarray(faces, np.uint8)
        if not self.masked_target:
            return {FACES: faces}
        return {TARGET: faces[..., :3] if targets is None else np.asarray(targets, np.uint8), FACES: faces}

    def run_keras(self, name: str, inputs: dict) -> dict[str, np.ndarray]:
        """The Keras reference: signature ``name`` run eagerly on named NumPy inputs."""
        import tensorflow as tf

        args = [tf.convert_to_tensor(inputs[spec.name], spec.dtype) for spec in self.input_specs(name)]
        return {k: np.asarray(v) for k, v in self.function(name)(*args).items()}


class Signatures(_SignatureFunctions):
    """Signature functions and their input specs for one ``Speech2Vid``.

    ``names``: every SavedModel signature; ``on_device_names``: those in the
    TFLite and ONNX files; ``window_samples``: the raw PCM window a client
    feeds per frame; ``state_shapes``: state name -> shape carried from frame
    to frame (none: each frame stands alone); ``int8_float_ops``: op types
    int8 TFLite files keep in float32.
    """

    names = SIGNATURES
    on_device_names = ON_DEVICE_SIGNATURES
    window_samples = audio_lib.MFCC_WINDOW_SAMPLES
    uses_mfcc = True
    int8_float_ops = formats.FLOAT_FRONT_END_OPS
    noise_dim = 0
    noise_std = 0.0

    def __init__(self, model):
        self.model = model
        self.state_shapes: dict[str, tuple] = {}
        self.identity_encoder = model.identity_encoder
        self.generator = model.frame_generator()
        # A model without skips outputs only what its generator takes.
        self.identity_keys = [IDENTITY] + [k for k in SKIP_NAMES if k in self.generator.input]
        outputs = self.identity_encoder.output
        self.identity_shapes = {k: tuple(outputs[k].shape[1:]) for k in self.identity_keys}
        self.face_channels = 3 * model.num_identity_images
        self.masked_target = bool(getattr(model, "masked_target", False))

    # --- The functions (tf.function-traceable and eager-callable) -------------------------

    def identity_features(self, *target_and_faces):
        """``faces``, or ``target`` and ``faces`` (masked model) -> identity outputs."""
        import tensorflow as tf

        # The target first on channels, as the model trained; its lower half is masked in the model.
        faces = tf.concat(target_and_faces, -1) if len(target_and_faces) > 1 else target_and_faces[0]
        x = tf.cast(faces, tf.float32) / 255.0
        outputs = self.identity_encoder(x, training=False)
        return {k: outputs[k] for k in self.identity_keys}

    def generate_frame(self, *identity_and_mfcc):
        *identity, mfcc = identity_and_mfcc
        inputs = dict(zip(self.identity_keys, identity), mfcc=mfcc)
        return {FRAME: self.generator(inputs, training=False)}

    def generate_frame_pcm(self, *identity_and_pcm):
        *identity, pcm = identity_and_pcm
        return self.generate_frame(*identity, audio_lib.mfcc_tf(pcm))

    def serving_default(self, *faces_and_pcm):
        """``identity_features``' inputs and ``pcm`` -> ``frame``."""
        *faces, pcm = faces_and_pcm
        identity = self.identity_features(*faces)
        return self.generate_frame_pcm(*[identity[k] for k in self.identity_keys], pcm)

    # --- Specs ------------------------------------------------------------------------------

    def input_specs(self, name: str, batch: int | None = None) -> list:
        """Ordered, named ``tf.TensorSpec`` inputs of signature ``name`` (batch free unless given)."""
        import tensorflow as tf

        faces = [tf.TensorSpec((batch, IMAGE_SIZE, IMAGE_SIZE, self.face_channels), tf.uint8, name=FACES)]
        if self.masked_target:
            faces.insert(0, tf.TensorSpec((batch, IMAGE_SIZE, IMAGE_SIZE, 3), tf.uint8, name=TARGET))
        identity = [tf.TensorSpec((batch, *self.identity_shapes[k]), tf.float32, name=k) for k in self.identity_keys]
        mfcc = tf.TensorSpec((batch, audio_lib.MFCC_COEFFS, audio_lib.MFCC_WINDOW_HOPS), tf.float32, name=MFCC)
        pcm = tf.TensorSpec((batch, audio_lib.MFCC_WINDOW_SAMPLES), tf.float32, name=PCM)
        return {
            IDENTITY_FEATURES: faces,
            GENERATE_FRAME: [*identity, mfcc],
            GENERATE_FRAME_PCM: [*identity, pcm],
            SERVING_DEFAULT: [*faces, pcm],
        }[name]

    def output_specs(self, name: str) -> dict[str, tuple]:
        """Output name -> shape without the batch dimension."""
        if name == IDENTITY_FEATURES:
            return dict(self.identity_shapes)
        return {FRAME: (IMAGE_SIZE, IMAGE_SIZE, 3)}


class StreamingSignatures(_SignatureFunctions):
    """``identity_features`` and ``generate_step`` of one ``TemporalGenerator`` (module docstring).

    The same interface as ``Signatures``; ``state_shapes`` (ordered) are the
    GRU states ``generate_step`` takes and returns.
    """

    names = STREAMING_SIGNATURES
    on_device_names = STREAMING_SIGNATURES
    int8_float_ops = formats.FLOAT_RECURRENT_OPS

    def __init__(self, model):
        from keras_s2v.models.temporal_gan import skip_names

        self.model = model
        self.identity_encoder = model.identity_encoder
        self.step = model.step_generator()  # built once; shares the model's weights
        outputs = self.identity_encoder.output
        self.identity_keys = [k for k in (IDENTITY, *skip_names(model.image_size)) if k in outputs]
        self.identity_shapes = {k: tuple(outputs[k].shape[1:]) for k in self.identity_keys}
        self.state_shapes = {k: tuple(v) for k, v in model.state_shapes().items()}
        self.window_samples = int(model.window_samples)
        self.uses_mfcc = model.audio_input == "mfcc"
        self.noise_dim = int(model.noise_dim)
        self.noise_std = float(model.noise_std)
        self.image_size = int(model.image_size)

    # --- The functions (tf.function-traceable and eager-callable) -------------------------

    def identity_features(self, faces):
        import tensorflow as tf

        x = tf.cast(faces, tf.float32) / 255.0
        outputs = self.identity_encoder(x, training=False)
        return {k: outputs[k] for k in self.identity_keys}

    def generate_step(self, *args):
        """identity outputs, ``pcm``, ``noise``, states (``input_specs`` order) -> ``frame`` + new states."""
        count = len(self.identity_keys)
        identity, (pcm, noise), states = args[:count], args[count : count + 2], args[count + 2 :]
        audio = audio_lib.mfcc_tf(pcm) if self.uses_mfcc else pcm
        inputs = {
            **dict(zip(self.identity_keys, identity)),
            "audio": audio,
            "noise": noise * self.noise_std,
            **dict(zip(self.state_shapes, states)),
        }
        outputs = self.step(inputs, training=False)
        return {FRAME: outputs["frame"], **{k: outputs[k] for k in self.state_shapes}}

    # --- Specs ------------------------------------------------------------------------------

    def input_specs(self, name: str, batch: int | None = None) -> list:
        """Ordered, named ``tf.TensorSpec`` inputs of signature ``name`` (batch free unless given)."""
        import tensorflow as tf

        if name == IDENTITY_FEATURES:
            return [tf.TensorSpec((batch, self.image_size, self.image_size, 3), tf.uint8, name=FACES)]
        if name != GENERATE_STEP:
            raise KeyError(name)
        return [
            *[tf.TensorSpec((batch, *self.identity_shapes[k]), tf.float32, name=k) for k in self.identity_keys],
            tf.TensorSpec((batch, self.window_samples), tf.float32, name=PCM),
            tf.TensorSpec((batch, self.noise_dim), tf.float32, name=NOISE),
            *[tf.TensorSpec((batch, *shape), tf.float32, name=k) for k, shape in self.state_shapes.items()],
        ]

    def output_specs(self, name: str) -> dict[str, tuple]:
        """Output name -> shape without the batch dimension."""
        if name == IDENTITY_FEATURES:
            return dict(self.identity_shapes)
        return {FRAME: (self.image_size, self.image_size, 3), **self.state_shapes}


class WindowSignatures(_SignatureFunctions):
    """``identity_features`` and ``generate_window`` of one ``GlanceGenerator`` (module docstring).

    The same interface as ``Signatures``; ``window_frames`` (T) and ``hop``
    say how windows tile the video, ``window_samples`` is one window's pcm.
    """

    names = WINDOW_SIGNATURES
    on_device_names = WINDOW_SIGNATURES
    # The in-graph log-mel converts to the MFCC's ops (GATHER, FULLY_CONNECTED, MUL, ADD, LOG): kept float32
    # alike. The quantizer leaves CONV_3D (the 3-D residual blocks) in float32: int8 files keep those weights float.
    int8_float_ops = formats.FLOAT_FRONT_END_OPS
    uses_mfcc = False
    noise_dim = 0
    noise_std = 0.0

    def __init__(self, model):
        from keras_s2v.data.face import align
        from keras_s2v.models.glance import skip_names

        self.model = model
        self.identity_encoder = model.identity_encoder
        self.generator = model.window_generator()  # built once; shares the model's weights
        self.state_shapes: dict[str, tuple] = {}
        self.window_frames = int(self.generator.input["log_mel"].shape[1]) // audio_lib.HOPS_PER_FRAME
        self.hop = self.window_frames // 2
        self.window_samples = audio_lib.log_mel_window_samples(self.window_frames)
        self.lip_size = int(self.identity_encoder.input.shape[1])
        self.image_size = IMAGE_SIZE
        self.lip_box = align.lip_box(IMAGE_SIZE)
        outputs = self.identity_encoder.output
        # A decoder without skips reads only ``identity``; the window model still names the skips, fed zeros.
        used = (IDENTITY, *skip_names(self.lip_size)) if model.skips else (IDENTITY,)
        self.identity_keys = [k for k in used if k in outputs]
        self.identity_shapes = {k: tuple(outputs[k].shape[1:]) for k in outputs}

    # --- The functions (tf.function-traceable and eager-callable) -------------------------

    def identity_features(self, faces):
        import tensorflow as tf

        from keras_s2v.data.face import align

        lips = align.lip_crops(tf.cast(faces, tf.float32) / 255.0, self.lip_size)  # (N, 64, 64, 3)
        outputs = self.identity_encoder(lips, training=False)
        return {k: outputs[k] for k in self.identity_keys}

    def generate_window(self, *identity_and_pcm):
        """identity outputs, ``pcm`` (``input_specs`` order) -> ``frames`` (N, T, 64, 64, 3)."""
        import tensorflow as tf

        *identity, pcm = identity_and_pcm
        inputs = dict(zip(self.identity_keys, identity))
        batch = tf.shape(pcm)[0]
        for key in self.generator.input:  # the skips a skips=False decoder ignores
            if key not in inputs and key != "log_mel":
                inputs[key] = tf.zeros(tf.concat([[batch], self.identity_shapes[key]], 0))
        inputs["log_mel"] = audio_lib.log_mel_tf(pcm, self.window_frames)
        return {FRAMES: self.generator(inputs, training=False)}

    # --- Specs ------------------------------------------------------------------------------

    def input_specs(self, name: str, batch: int | None = None) -> list:
        """Ordered, named ``tf.TensorSpec`` inputs of signature ``name`` (batch free unless given)."""
        import tensorflow as tf

        if name == IDENTITY_FEATURES:
            return [tf.TensorSpec((batch, self.image_size, self.image_size, 3), tf.uint8, name=FACES)]
        if name != GENERATE_WINDOW:
            raise KeyError(name)
        return [
            *[tf.TensorSpec((batch, *self.identity_shapes[k]), tf.float32, name=k) for k in self.identity_keys],
            tf.TensorSpec((batch, self.window_samples), tf.float32, name=PCM),
        ]

    def output_specs(self, name: str) -> dict[str, tuple]:
        """Output name -> shape without the batch dimension."""
        if name == IDENTITY_FEATURES:
            return {k: self.identity_shapes[k] for k in self.identity_keys}
        return {FRAMES: (self.window_frames, self.lip_size, self.lip_size, 3)}


def write_saved_model(signatures, path, names=None, batch: int | None = None) -> None:
    """A SavedModel with the named signatures (default: all of ``signatures.names``), through
    ``keras.export.ExportArchive``.

    ``batch=1`` fixes the batch dimension (what the TFLite files are converted from).

    The archive saves the variables its endpoints capture, so converters see
    real weights (a plain ``tf.Module`` export has been seen to give
    weightless TFLite files that output NaN; the parity check would catch
    it). The model is not also ``track``-ed: that stores every weight twice,
    doubling the SavedModel and TF Serving's memory (keras-team/keras#23553).
    """
    import keras

    archive = keras.export.ExportArchive()
    for name in signatures.names if names is None else names:
        archive.add_endpoint(name, signatures.function(name), signatures.input_specs(name, batch))
    archive.write_out(str(path), verbose=False)
