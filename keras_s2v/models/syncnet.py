"""A SyncNet-style audio-visual sync expert (Chung & Zisserman, "Out of time", ACCV 2016 workshops).

Two encoders map what should agree into one embedding space:

* ``SyncVideoEncoder``: 5 consecutive lower-face crops (grey, stacked on
  channels) -> embedding.
* ``SyncAudioEncoder``: the 0.2 s of MFCC those 5 frames span
  (``audio.sync_mfcc_slice``, 12 x 20) -> embedding.

In-sync pairs are close, shifted pairs far. ``SyncNet`` is what trains: for
each video window it embeds the audio at ``2 K + 1`` offsets (-K .. K frames)
and returns the distances; ``training.losses.OffsetContrastiveLoss`` makes the
in-sync one (index K) the nearest, a multi-way form of the contrastive loss
(Chung et al., "Perfect match", ICASSP 2019) that trains faster than pairwise margins.
Embeddings are L2-normalised, so distances lie in [0, 2]; they are this
network's own scale, not the original SyncNet's.

Scoring a clip (``keras_s2v.evaluation.sync``) uses the two encoders apart.
"""

from __future__ import annotations

import keras

from keras_s2v.data import audio as audio_lib
from keras_s2v.data.face import align
from keras_s2v.layers.blocks import Centered, conv_bn_relu, scaled
from keras_s2v.models.base import FunctionalModel

FACE_SIZE = 112  # aligned crop side


def lips_shape(face_size: int = FACE_SIZE, crop: str = "lower_half") -> tuple[int, int, int]:
    """(H, W, 5): the ``crop`` of ``SYNC_FRAMES`` aligned grey faces."""
    _, _, height, width = align.sync_region(face_size, crop)
    return height, width, audio_lib.SYNC_FRAMES


@keras.saving.register_keras_serializable(package="keras_s2v")
class SyncVideoEncoder(FunctionalModel):
    """(B, 56, 112, 5) grey lower faces (or (B, 56, 56, 5) mouths) in [0, 1] -> (B, D) unit embedding."""

    CONFIG_KEYS = ("face_size", "width", "embedding_dim", "crop", "dropout", "centered")

    def __init__(
        self,
        face_size: int = FACE_SIZE,
        width: float = 1.0,
        embedding_dim: int = 128,
        crop: str = "lower_half",
        dropout: float = 0.0,
        centered: bool = False,
        name: str = "sync_video_encoder",
        **kwargs,
    ):
        lips = keras.Input(lips_shape(face_size, crop), name="lips")
        # centered: only how the 5 frames differ from their mean, not the speaker's look (which a few
        # dozen speakers let the expert memorise)
        x = Centered(axis=-1, name="motion")(lips) if centered else lips
        x = conv_bn_relu(x, scaled(64, width), 5, strides=2, name="conv1")  # (B, 28, 56, 64)
        x = conv_bn_relu(x, scaled(96, width), 3, name="conv2")
        x = keras.layers.MaxPooling2D(2, name="pool2")(x)  # (B, 14, 28, 96)
        x = conv_bn_relu(x, scaled(128, width), 3, name="conv3")
        x = keras.layers.MaxPooling2D(2, name="pool3")(x)  # (B, 7, 14, 128)
        x = conv_bn_relu(x, scaled(256, width), 3, name="conv4")  # (B, 7, 14, 256)
        x = keras.layers.GlobalAveragePooling2D(name="pool4")(x)  # (B, 256)
        if dropout:
            x = keras.layers.Dropout(dropout, name="pool4_dropout")(x)
        x = keras.layers.Dense(embedding_dim, name="fc5")(x)
        outputs = keras.layers.UnitNormalization(name="video_embedding")(x)  # (B, D)
        super().__init__(inputs=lips, outputs=outputs, name=name, **kwargs)
        self.face_size = face_size
        self.width = width
        self.embedding_dim = embedding_dim
        self.crop = crop
        self.dropout = dropout
        self.centered = centered


@keras.saving.register_keras_serializable(package="keras_s2v")
class SyncAudioEncoder(FunctionalModel):
    """(B, 12, 20) MFCC (coefficients x 10 ms steps) -> (B, D) unit embedding."""

    CONFIG_KEYS = ("width", "embedding_dim", "centered")

    def __init__(
        self,
        width: float = 1.0,
        embedding_dim: int = 128,
        centered: bool = False,
        name: str = "sync_audio_encoder",
        **kwargs,
    ):
        mfcc = keras.Input((audio_lib.MFCC_COEFFS, audio_lib.SYNC_MFCC_HOPS), name="mfcc")
        # centered: cepstral mean normalisation over the window, which removes the microphone and the voice
        x = Centered(axis=-1, name="cepstral_mean_norm")(mfcc) if centered else mfcc
        x = keras.layers.Reshape((audio_lib.MFCC_COEFFS, audio_lib.SYNC_MFCC_HOPS, 1), name="add_channel")(x)
        # Cepstral coefficients differ in scale by orders of magnitude: normalise each with learnt statistics.
        x = keras.layers.BatchNormalization(synchronized=True, axis=1, name="input_norm")(x)  # (B, 12, 20, 1)
        x = conv_bn_relu(x, scaled(32, width), 3, name="conv1")
        x = conv_bn_relu(x, scaled(64, width), 3, name="conv2")
        x = keras.layers.MaxPooling2D(2, name="pool2")(x)  # (B, 6, 10, 64)
        x = conv_bn_relu(x, scaled(128, width), 3, name="conv3")
        x = keras.layers.MaxPooling2D(2, name="pool3")(x)  # (B, 3, 5, 128)
        x = conv_bn_relu(x, scaled(256, width), 3, name="conv4")
        x = keras.layers.GlobalAveragePooling2D(name="pool4")(x)  # (B, 256)
        x = keras.layers.Dense(embedding_dim, name="fc5")(x)
        outputs = keras.layers.UnitNormalization(name="audio_embedding")(x)  # (B, D)
        super().__init__(inputs=mfcc, outputs=outputs, name=name, **kwargs)
        self.width = width
        self.embedding_dim = embedding_dim
        self.centered = centered


@keras.saving.register_keras_serializable(package="keras_s2v")
class SyncNet(FunctionalModel):
    """{"lips": (B, H, W, 5), "mfcc": (B, 2K+1, 12, 20)} -> distances (B, 2K+1); H x W: ``lips_shape``.

    ``mfcc[:, k]`` is the audio shifted by ``k - K`` frames; training makes
    index K (no shift) the nearest.
    """

    CONFIG_KEYS = ("face_size", "width", "embedding_dim", "max_shift", "crop", "dropout", "centered")

    def __init__(
        self,
        face_size: int = FACE_SIZE,
        width: float = 1.0,
        embedding_dim: int = 128,
        max_shift: int = 5,
        crop: str = "lower_half",
        dropout: float = 0.0,
        centered: bool = False,
        name: str = "syncnet",
        **kwargs,
    ):
        video_encoder = SyncVideoEncoder(face_size, width, embedding_dim, crop, dropout, centered)
        audio_encoder = SyncAudioEncoder(width, embedding_dim, centered)
        candidates = 2 * max_shift + 1
        lips = keras.Input(lips_shape(face_size, crop), name="lips")
        mfcc = keras.Input((candidates, audio_lib.MFCC_COEFFS, audio_lib.SYNC_MFCC_HOPS), name="mfcc")
        video = video_encoder(lips)  # (B, D)
        audio = keras.layers.TimeDistributed(audio_encoder, name="per_offset")(mfcc)  # (B, 2K+1, D)
        distances = keras.layers.Lambda(_distances, name="distances")([video, audio])  # (B, 2K+1)
        super().__init__(inputs={"lips": lips, "mfcc": mfcc}, outputs=distances, name=name, **kwargs)
        self.face_size = face_size
        self.width = width
        self.embedding_dim = embedding_dim
        self.max_shift = max_shift
        self.crop = crop
        self.dropout = dropout
        self.centered = centered
        self.video_encoder = video_encoder
        self.audio_encoder = audio_encoder


def _distances(tensors):
    video, audio = tensors
    return keras.ops.sqrt(keras.ops.sum(keras.ops.square(audio - video[:, None, :]), axis=-1) + 1e-8)
