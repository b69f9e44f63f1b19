"""The exported signatures, as functions over a trained ``Speech2Vid``.

=======================  ==========================================  ===========================
signature                inputs                                      outputs
=======================  ==========================================  ===========================
``identity_features``    ``faces`` uint8 (N, 112, 112, 3 n) RGB      ``identity`` (N, E) and, with
                         0..255, n aligned faces on channels         skips, ``skip_14``, ``skip_6``
``generate_frame``       identity outputs + ``mfcc`` (N, 12, 35)     ``frame`` (N, 112, 112, 3)
``generate_frame_pcm``   identity outputs + ``pcm`` (N, 5840)        ``frame``
``serving_default``      ``faces`` + ``pcm``                         ``frame``
=======================  ==========================================  ===========================

Frames are float32 RGB in [0, 1]. ``pcm`` is 16 kHz mono float32 in [-1, 1]:
video frame ``t``'s window is samples ``[640 t - 2600, 640 t + 3240)``,
zero-padded past either end (``keras_s2v.data.audio.pcm_window``); the MFCC
is computed in the graph with builtin ops only.

The same functions called eagerly are the Keras reference the parity check
compares every format against.
"""

from __future__ import annotations

import numpy as np

from keras_s2v.data import audio as audio_lib
from keras_s2v.models.speech2vid import IMAGE_SIZE, SKIP_NAMES

IDENTITY_FEATURES = "identity_features"
GENERATE_FRAME = "generate_frame"
GENERATE_FRAME_PCM = "generate_frame_pcm"
SERVING_DEFAULT = "serving_default"
SIGNATURES = (IDENTITY_FEATURES, GENERATE_FRAME, GENERATE_FRAME_PCM, SERVING_DEFAULT)
# What goes to phones and ONNX: the identity encoder and the per-window generator (both audio forms).
ON_DEVICE_SIGNATURES = (IDENTITY_FEATURES, GENERATE_FRAME, GENERATE_FRAME_PCM)


class Signatures:
    """Signature functions and their input specs for one ``Speech2Vid``."""

    def __init__(self, model):
        self.model = model
        self.identity_encoder = model.identity_encoder
        self.generator = model.frame_generator()
        # A model without skips outputs only what its generator takes.
        self.identity_keys = ["identity"] + [k for k in SKIP_NAMES if k in self.generator.input]
        outputs = self.identity_encoder.output
        self.identity_shapes = {k: tuple(outputs[k].shape[1:]) for k in self.identity_keys}
        self.face_channels = 3 * model.num_identity_images

    # --- The functions (tf.function-traceable and eager-callable) -------------------------

    def identity_features(self, faces):
        import tensorflow as tf

        x = tf.cast(faces, tf.float32) / 255.0
        outputs = self.identity_encoder(x, training=False)
        return {k: outputs[k] for k in self.identity_keys}

    def generate_frame(self, *identity_and_mfcc):
        *identity, mfcc = identity_and_mfcc
        inputs = dict(zip(self.identity_keys, identity), mfcc=mfcc)
        return {"frame": self.generator(inputs, training=False)}

    def generate_frame_pcm(self, *identity_and_pcm):
        *identity, pcm = identity_and_pcm
        return self.generate_frame(*identity, audio_lib.mfcc_tf(pcm))

    def serving_default(self, faces, pcm):
        identity = self.identity_features(faces)
        return self.generate_frame_pcm(*[identity[k] for k in self.identity_keys], pcm)

    # --- Specs ------------------------------------------------------------------------------

    def input_specs(self, name: str, batch: int | None = None) -> list:
        """Ordered, named ``tf.TensorSpec`` inputs of signature ``name`` (batch free unless given)."""
        import tensorflow as tf

        faces = tf.TensorSpec((batch, IMAGE_SIZE, IMAGE_SIZE, self.face_channels), tf.uint8, name="faces")
        identity = [tf.TensorSpec((batch, *self.identity_shapes[k]), tf.float32, name=k) for k in self.identity_keys]
        mfcc = tf.TensorSpec((batch, audio_lib.MFCC_COEFFS, audio_lib.MFCC_WINDOW_HOPS), tf.float32, name="mfcc")
        pcm = tf.TensorSpec((batch, audio_lib.MFCC_WINDOW_SAMPLES), tf.float32, name="pcm")
        return {
            IDENTITY_FEATURES: [faces],
            GENERATE_FRAME: [*identity, mfcc],
            GENERATE_FRAME_PCM: [*identity, pcm],
            SERVING_DEFAULT: [faces, pcm],
        }[name]

    def function(self, name: str):
        return getattr(self, name)

    def run_keras(self, name: str, inputs: dict) -> dict[str, np.ndarray]:
        """The Keras reference: signature ``name`` run eagerly on named NumPy inputs."""
        import tensorflow as tf

        args = [tf.convert_to_tensor(inputs[spec.name], spec.dtype) for spec in self.input_specs(name)]
        return {k: np.asarray(v) for k, v in self.function(name)(*args).items()}

    def output_specs(self, name: str) -> dict[str, tuple]:
        """Output name -> shape without the batch dimension."""
        if name == IDENTITY_FEATURES:
            return dict(self.identity_shapes)
        return {"frame": (IMAGE_SIZE, IMAGE_SIZE, 3)}


def write_saved_model(signatures: Signatures, path, names=SIGNATURES, batch: int | None = None) -> None:
    """A SavedModel with the named signatures, through ``keras.export.ExportArchive``.

    ``batch=1`` fixes the batch dimension (what the TFLite files are converted from).

    The archive saves the variables its endpoints capture, so converters see
    real weights (a plain ``tf.Module`` export has been seen to give
    weightless TFLite files that output NaN; the parity check would catch
    it). The model is not also ``track``-ed: that stores every weight twice,
    doubling the SavedModel and TF Serving's memory (keras-team/keras#23553).
    """
    import keras

    archive = keras.export.ExportArchive()
    for name in names:
        archive.add_endpoint(name, signatures.function(name), signatures.input_specs(name, batch))
    archive.write_out(str(path), verbose=False)
