"""The temporal GANs' discriminators: they only train, nothing here ships.

* ``FrameDiscriminator``: one frame concatenated on channels with the still
  -> logit (is this a real frame of this person?). ``strided`` (Vougioukas et
  al.): 6 convolutions; ``pooled`` (the MFCC variant): 4 convolution + max-pool
  blocks and 2 fully connected layers.
* ``SequenceDiscriminator``: per-frame CNN codes and per-window audio codes
  through a 2-layer GRU, then 2 fully connected layers -> logit (are these
  frames real and do they go with this audio?). ``last_state``: the GRU's
  final state; ``pyramid``: 1-D spatial pyramid pooling over all its states,
  so sequences of any length give the same-sized vector.

Outputs are logits; ``keras_s2v.training.gan`` applies the losses.
"""

from __future__ import annotations

import keras

from keras_s2v.layers.blocks import conv_bn_leaky, scaled
from keras_s2v.layers.sequence import FoldTime, SpatialPyramidPooling1D, UnfoldTime
from keras_s2v.models.base import FunctionalModel
from keras_s2v.models.temporal_gan import IMAGE_SIZE, audio_encoder, window_shape

FRAME_STYLES = ("strided", "pooled")
SEQUENCE_POOLING = ("last_state", "pyramid")
PYRAMID_LEVELS = (1, 2, 4)


@keras.saving.register_keras_serializable(package="keras_s2v")
class FrameDiscriminator(FunctionalModel):
    """{"frame": (B, S, S, 3), "still": (B, S, S, 3)} -> (B, 1) logit."""

    CONFIG_KEYS = ("image_size", "width", "style")

    def __init__(
        self,
        image_size: int = IMAGE_SIZE,
        width: float = 1.0,
        style: str = "strided",
        name: str = "frame_discriminator",
        **kwargs,
    ):
        if style not in FRAME_STYLES:
            raise ValueError(f"unknown frame discriminator style {style!r} ({', '.join(FRAME_STYLES)})")
        frame = keras.Input((image_size, image_size, 3), name="frame")
        still = keras.Input((image_size, image_size, 3), name="still")
        x = keras.layers.Concatenate(name="frame_and_still")([frame, still])  # (B, S, S, 6)
        if style == "strided":
            for i, filters in enumerate((64, 128, 256, 512), start=1):  # (B, S/2^i, S/2^i, f)
                x = conv_bn_leaky(x, scaled(filters, width), 4, strides=2, normalize=i > 1, name=f"conv{i}")
            x = conv_bn_leaky(x, scaled(512, width), 3, name="conv5")  # (B, S/16, S/16, 512)
            x = keras.layers.Conv2D(1, image_size // 16, padding="valid", name="conv6")(x)  # (B, 1, 1, 1)
            logit = keras.layers.Flatten(name="logit")(x)
        else:
            for i, filters in enumerate((32, 64, 128, 256), start=1):
                x = conv_bn_leaky(x, scaled(filters, width), 3, normalize=i > 1, name=f"conv{i}")
                x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)  # (B, S/2^i, S/2^i, f)
            x = keras.layers.Flatten(name="flatten")(x)
            x = keras.layers.Dense(scaled(256, width), name="fc5")(x)
            x = keras.layers.LeakyReLU(0.2, name="fc5_lrelu")(x)
            logit = keras.layers.Dense(1, name="logit")(x)
        super().__init__(inputs={"frame": frame, "still": still}, outputs=logit, name=name, **kwargs)
        self.image_size = image_size
        self.width = width
        self.style = style


@keras.saving.register_keras_serializable(package="keras_s2v")
class SequenceDiscriminator(FunctionalModel):
    """{"frames": (B, T, S, S, 3), "audio": (B, T, *window)} -> (B, 1) logit, any T >= 1."""

    CONFIG_KEYS = ("audio_input", "image_size", "width", "hidden_dim", "pooling")

    def __init__(
        self,
        audio_input: str = "pcm",
        image_size: int = IMAGE_SIZE,
        width: float = 1.0,
        hidden_dim: int = 256,
        pooling: str = "last_state",
        name: str = "sequence_discriminator",
        **kwargs,
    ):
        if pooling not in SEQUENCE_POOLING:
            raise ValueError(f"unknown sequence pooling {pooling!r} ({', '.join(SEQUENCE_POOLING)})")
        frames = keras.Input((None, image_size, image_size, 3), name="frames")
        audio = keras.Input((None, *window_shape(audio_input)), name="audio")
        x = FoldTime(name="fold_frames")(frames)  # (B T, S, S, 3)
        for i, filters in enumerate((32, 64, 128, 256), start=1):
            x = conv_bn_leaky(x, scaled(filters, width), 4, strides=2, normalize=i > 1, name=f"frame_conv{i}")
        x = keras.layers.GlobalAveragePooling2D(name="frame_pool")(x)  # (B T, 256)
        video = UnfoldTime(name="unfold_frames")([x, frames])  # (B, T, 256)
        encoder = audio_encoder(audio_input, width, hidden_dim, name="sequence_audio_encoder")
        sound = UnfoldTime(name="unfold_audio")([encoder(FoldTime(name="fold_audio")(audio)), audio])  # (B, T, H)
        x = keras.layers.Concatenate(name="video_and_audio")([video, sound])
        x = keras.layers.GRU(hidden_dim, return_sequences=True, name="gru1")(x)  # (B, T, H)
        x = keras.layers.GRU(hidden_dim, return_sequences=pooling == "pyramid", name="gru2")(x)
        if pooling == "pyramid":
            x = SpatialPyramidPooling1D(PYRAMID_LEVELS, name="pyramid")(x)  # (B, 7 H)
        x = keras.layers.Dense(hidden_dim, name="fc1")(x)
        x = keras.layers.LeakyReLU(0.2, name="fc1_lrelu")(x)
        logit = keras.layers.Dense(1, name="logit")(x)
        super().__init__(inputs={"frames": frames, "audio": audio}, outputs=logit, name=name, **kwargs)
        self.audio_input = audio_input
        self.image_size = image_size
        self.width = width
        self.hidden_dim = hidden_dim
        self.pooling = pooling
