"""Lip movements at a glance (Chen, Li, Maddox, Duan, Xu, "Lip Movements Generation at a Glance",
ECCV 2018): one lip image and 16 frames' audio make 16 lip frames at once.

Four parts, each a functional model:

* ``GlanceIdentityEncoder``: the 64 x 64 lip crop -> ``identity`` map
  (B, 8, 8, C) (3 stride-2 convolutions + a residual block) and the first two
  maps as skips. Computed once per face.
* ``GlanceAudioEncoder``: the window's log-mel spectrogram (4 spectral frames
  per video frame x 128 bands) -> f_s (B, T, 8, C): 2-D convolutions over
  (time, frequency) that reduce time 4x (one row per video frame) and
  frequency 16x (128 -> 8).
* fusion by duplication (the paper): f_s copied along a new spatial axis
  (frequency on rows, copied along columns) -> (B, T, 8, 8, C); the identity
  map copied T times -> (B, T, 8, 8, C); concatenated -> the ``fused`` layer
  (B, T, 8, 8, 2C).
* ``GlanceDecoder``: 2 residual 3-D blocks (3 x 3 x 3) at 8 x 8, then 3
  upsamplings to 64 x 64 (the identity skips, copied T times, concatenated at
  16 and 32) and a convolution to RGB, sigmoid.

``GlanceGenerator`` is what trains: ``{"lips" (B, 64, 64, 3), "log_mel" (B, 4T, 128)}
-> frames (B, T, 64, 64, 3)``. ``window_generator()`` is what the export runs
per window: the identity encoder's outputs (computed once) + ``log_mel`` ->
frames, with the same weights. Both decoders convert to TFLite builtins
(CONV_3D, TILE, CONCATENATION and TRANSPOSE_CONV / CONV_3D_TRANSPOSE) and
match Keras within 1e-5.

Where this differs from the paper and the authors' released code (PyTorch,
lelechen63/3d_gan), and why:

* ``upsampling="per_frame"`` (default): the decoder's 3 upsamplings are 2-D
  transposed convolutions (4 x 4, stride 2) and the RGB layer a 3 x 3
  convolution, run on all frames folded into the batch; time is mixed by the
  3-D residual blocks at 8 x 8 (receptive field 9 frames), where the mouth
  shape is decided. ``"3d"`` is the paper's decoder: Conv3DTranspose
  (3 x 4 x 4, strides (1, 2, 2)) and a 3 x 3 x 3 Conv3D to RGB. Both convert
  to TFLite; the per-frame one because it is faster everywhere it runs
  (width 0.25, 16 frames, batch 8, forward + backward on 2 CPU cores: 0.36 s
  vs 0.63 s with oneDNN, 0.70 s vs 2.7 s without, where TensorFlow's CPU
  Conv3DTranspose is pathological for batches > 1; TFLite at width 0.5:
  160 vs 315 ms a window; TRANSPOSE_CONV and CONV_2D also have XNNPACK and
  GPU delegate kernels, the 3-D ops none).
* Frames are sigmoid outputs in [0, 1] (the project's convention), not tanh.
* Each encoder gives C = 128 channels at ``width=1``, so the fused tensor is
  256 wide; the released code concatenates two 256-channel maps and
  compresses the 512 channels back to 256 with a 3-D convolution first. Same
  width at the residual blocks, one layer and half the encoder cost fewer.
* 2 residual blocks of 3 x 3 x 3 kernels (the released code: 9 blocks of
  1 x 3 x 3): every block mixes neighbouring frames and the model stays small
  enough to train on a CPU at reduced width.
* ``skips=True`` (default) concatenates the identity encoder's 16 x 16 and
  32 x 32 maps into the decoder (the released generator has none; they carry
  the lips' texture so the 3-D layers can spend themselves on motion).
  ``skips=False, upsampling="3d"`` is the paper's decoder.
* The log-mel input goes through a BatchNorm first (its scale is the natural
  log of mel power, far from unit variance), like the Speech2Vid MFCC encoder.
"""

from __future__ import annotations

import keras

from keras_s2v.data import audio as audio_lib
from keras_s2v.data.face.align import LIP_SIZE
from keras_s2v.layers.blocks import batch_norm, conv2plus1d, conv_bn_relu, deconv_bn_relu, scaled
from keras_s2v.layers.sequence import FoldTime, RepeatAlongAxis, UnfoldTime
from keras_s2v.models.base import FunctionalModel

GLANCE_FRAMES = 16  # video frames per generated window
LOG_MEL_BANDS = audio_lib.LOG_MEL_BANDS  # 128
IDENTITY_FILTERS = (64, 128, 128)  # identity encoder stages at width 1: maps S/2, S/4, S/8 (the last = C)
AUDIO_FILTERS = (32, 64, 128, 128, 128)  # audio encoder at width 1 (the last = C)
AUDIO_STRIDES = ((1, 1), (2, 2), (2, 2), (1, 2), (1, 2))  # (time, frequency): time / 4, frequency / 16
DECODER_FILTERS = (128, 64, 32)  # per-frame transposed convolutions to S/4, S/2, S at width 1
UPSAMPLING = ("per_frame", "3d")  # the decoder's upsampling: 2-D per frame (default) | 3-D (the paper)
FEATURE_SIZE = LOG_MEL_BANDS // 16  # 8: the audio map's frequency rows = the identity map's side


def skip_names(lip_size: int = LIP_SIZE) -> tuple[str, ...]:
    """The identity encoder's skip outputs, finest first: ``("skip_32", "skip_16")`` at 64."""
    return (f"skip_{lip_size // 2}", f"skip_{lip_size // 4}")


# --- Blocks -----------------------------------------------------------------------------------


def residual_block(x, kernel_size=3, name: str = "res"):
    """x + (Conv2D -> BN -> ReLU -> Conv2D -> BN), then ReLU; keeps the shape."""
    y = conv_bn_relu(x, x.shape[-1], kernel_size, name=f"{name}_conv1")
    y = keras.layers.Conv2D(
        x.shape[-1], kernel_size, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv2"
    )(y)
    y = batch_norm(f"{name}_conv2_bn")(y)
    x = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def conv3d_bn_relu(x, filters: int, kernel_size=3, strides=1, name: str = "conv3d"):
    """Conv3D -> BatchNorm -> ReLU, ``same`` padding, layers ``{name}``, ``{name}_bn``, ``{name}_relu``."""
    x = keras.layers.Conv3D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, kernel_initializer="he_normal", name=name
    )(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def conv3d_bn_leaky(x, filters: int, kernel_size=4, strides=1, normalize: bool = True, name: str = "conv3d"):
    """A factorised 3-D convolution [-> BatchNorm] -> LeakyReLU(0.2): the discriminator's block (``conv2plus1d``).

    (2+1)-D, not Conv3D: TensorFlow's gradients of a strided Conv3D take
    seconds per layer on CPU without oneDNN (10.8 s for the discriminator's
    step at width 0.25 against 0.2 s factorised).
    """
    return conv2plus1d(x, filters, kernel_size, strides, normalize=normalize, activation="leaky", name=name)


def deconv3d_bn_relu(x, filters: int, kernel_size=(3, 4, 4), strides=(1, 2, 2), name: str = "deconv3d"):
    """Conv3DTranspose -> BatchNorm -> ReLU: doubles height and width, keeps time (strides (1, 2, 2))."""
    x = keras.layers.Conv3DTranspose(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, kernel_initializer="he_normal", name=name
    )(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def residual3d_block(x, kernel_size=3, name: str = "res3d"):
    """x + (Conv3D -> BN -> ReLU -> Conv3D -> BN), then ReLU; keeps the shape."""
    y = conv3d_bn_relu(x, x.shape[-1], kernel_size, name=f"{name}_conv1")
    y = keras.layers.Conv3D(
        x.shape[-1], kernel_size, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv2"
    )(y)
    y = batch_norm(f"{name}_conv2_bn")(y)
    x = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def fuse(identity, speech, frames: int):
    """Fusion by duplication: identity (B, F, F, C) and f_s (B, T, F, C) -> ``fused`` (B, T, F, F, 2C)."""
    face = RepeatAlongAxis(frames, axis=1, name="repeat_identity")(identity)  # (B, T, F, F, C)
    sound = RepeatAlongAxis(speech.shape[2], axis=3, name="repeat_audio")(speech)  # (B, T, F rows, F, C)
    return keras.layers.Concatenate(name="fused")([face, sound])  # (B, T, F, F, 2C)


# --- Models -----------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_s2v")
class GlanceIdentityEncoder(FunctionalModel):
    """(B, S, S, 3) lips -> {"identity": (B, S/8, S/8, C), "skip_{S/2}": (B, S/2, S/2, c1), "skip_{S/4}": ...}."""

    CONFIG_KEYS = ("lip_size", "width")

    def __init__(self, lip_size: int = LIP_SIZE, width: float = 1.0, name: str = "identity_encoder", **kwargs):
        if lip_size % 8:
            raise ValueError(f"lip_size must be a multiple of 8, got {lip_size}")
        lips = keras.Input((lip_size, lip_size, 3), name="lips")
        x, skips = lips, {}
        for i, filters in enumerate(IDENTITY_FILTERS, start=1):
            x = conv_bn_relu(x, scaled(filters, width), 4, strides=2, name=f"conv{i}")  # (B, S/2^i, S/2^i, f)
            if i <= len(skip_names(lip_size)):
                skips[skip_names(lip_size)[i - 1]] = x
        x = residual_block(x, name="res")  # (B, S/8, S/8, C)
        super().__init__(inputs=lips, outputs={"identity": x, **skips}, name=name, **kwargs)
        self.lip_size = lip_size
        self.width = width


@keras.saving.register_keras_serializable(package="keras_s2v")
class GlanceAudioEncoder(FunctionalModel):
    """(B, 4 frames, 128) log-mel -> f_s (B, frames, 8, C): one row per video frame, 8 frequency bins."""

    CONFIG_KEYS = ("frames", "width")

    def __init__(self, frames: int = GLANCE_FRAMES, width: float = 1.0, name: str = "audio_encoder", **kwargs):
        hops = audio_lib.HOPS_PER_FRAME * frames
        log_mel = keras.Input((hops, LOG_MEL_BANDS), name="log_mel")
        x = keras.layers.Reshape((hops, LOG_MEL_BANDS, 1), name="add_channel")(log_mel)
        # Log mel power sits around -14 .. 10: normalise with statistics learnt in training.
        x = batch_norm("input_norm")(x)  # (B, 4T, 128, 1)
        for i, (filters, strides) in enumerate(zip(AUDIO_FILTERS, AUDIO_STRIDES), start=1):
            x = conv_bn_relu(x, scaled(filters, width), 3, strides=strides, name=f"conv{i}")
        # (B, 4T, 128, 32) -> (B, 2T, 64, 64) -> (B, T, 32, 128) -> (B, T, 16, 128) -> (B, T, 8, C)
        super().__init__(inputs=log_mel, outputs=x, name=name, **kwargs)
        self.frames = frames
        self.width = width


@keras.saving.register_keras_serializable(package="keras_s2v")
class GlanceDecoder(FunctionalModel):
    """{"fused": (B, T, S/8, S/8, 2C)[, "skip_{S/2}", "skip_{S/4}"]} -> (B, T, S, S, 3) frames in [0, 1].

    2 residual 3-D blocks at S/8 mix neighbouring frames, then 3 upsamplings
    (each skip, copied T times, concatenated after the one reaching its size)
    and a convolution to RGB. ``upsampling="per_frame"``: 2-D transposed
    convolutions (4 x 4, stride 2) and a 3 x 3 RGB convolution on all frames
    folded into one batch (``B T``). ``"3d"`` (the paper): Conv3DTranspose
    (3 x 4 x 4, strides (1, 2, 2)) and a 3 x 3 x 3 RGB Conv3D, time mixed at
    every scale.
    """

    CONFIG_KEYS = ("frames", "lip_size", "width", "skips", "upsampling")

    def __init__(
        self,
        frames: int = GLANCE_FRAMES,
        lip_size: int = LIP_SIZE,
        width: float = 1.0,
        skips: bool = True,
        upsampling: str = "per_frame",
        name: str = "decoder",
        **kwargs,
    ):
        if upsampling not in UPSAMPLING:
            raise ValueError(f"unknown upsampling {upsampling!r} ({', '.join(UPSAMPLING)})")
        channels = scaled(IDENTITY_FILTERS[-1], width) + scaled(AUDIO_FILTERS[-1], width)
        fused = keras.Input((frames, lip_size // 8, lip_size // 8, channels), name="fused")
        names = skip_names(lip_size)  # finest first
        skip_inputs = (
            {
                key: keras.Input((lip_size // 2 ** (i + 1),) * 2 + (scaled(f, width),), name=key)
                for i, (key, f) in enumerate(zip(names, IDENTITY_FILTERS))
            }
            if skips
            else {}
        )
        x = residual3d_block(fused, name="res1")
        x = residual3d_block(x, name="res2")  # (B, T, S/8, S/8, 2C)
        per_frame = upsampling == "per_frame"
        if per_frame:
            x = FoldTime(name="fold_frames")(x)  # (B T, S/8, S/8, 2C)
        size = lip_size // 8
        for filters in DECODER_FILTERS:
            size *= 2
            if per_frame:
                x = deconv_bn_relu(x, scaled(filters, width), 4, strides=2, name=f"deconv{size}")  # (B T, 2s, 2s, f)
            else:
                x = deconv3d_bn_relu(x, scaled(filters, width), name=f"deconv{size}")  # (B, T, 2s, 2s, f)
            key = f"skip_{size}"
            if key in skip_inputs:  # the identity's map at this scale, the same for every frame
                repeated = RepeatAlongAxis(frames, axis=1, name=f"repeat_{key}")(skip_inputs[key])  # (B, T, 2s, 2s, c)
                if per_frame:
                    repeated = FoldTime(name=f"fold_{key}")(repeated)  # (B T, 2s, 2s, c): rows like fold_frames
                x = keras.layers.Concatenate(name=f"concat_{key}")([x, repeated])  # f + c channels
        if per_frame:
            x = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="he_normal", name="to_rgb")(x)
            x = keras.layers.Activation("sigmoid", name="sigmoid")(x)  # (B T, S, S, 3)
            frames_out = UnfoldTime(name="frames")([x, fused])  # (B, T, S, S, 3)
        else:
            x = keras.layers.Conv3D(3, 3, padding="same", kernel_initializer="he_normal", name="to_rgb")(x)
            frames_out = keras.layers.Activation("sigmoid", name="frames")(x)  # (B, T, S, S, 3)
        super().__init__(inputs={"fused": fused, **skip_inputs}, outputs=frames_out, name=name, **kwargs)
        self.frames = frames
        self.lip_size = lip_size
        self.width = width
        self.skips = skips
        self.upsampling = upsampling


@keras.saving.register_keras_serializable(package="keras_s2v")
class GlanceGenerator(FunctionalModel):
    """{"lips": (B, S, S, 3), "log_mel": (B, 4 frames, 128)} -> (B, frames, S, S, 3) lip frames in [0, 1]."""

    CONFIG_KEYS = ("frames", "lip_size", "width", "skips", "upsampling")

    def __init__(
        self,
        frames: int = GLANCE_FRAMES,
        lip_size: int = LIP_SIZE,
        width: float = 1.0,
        skips: bool = True,
        upsampling: str = "per_frame",
        name: str = "glance_generator",
        **kwargs,
    ):
        if lip_size != 8 * FEATURE_SIZE:
            # The audio map has 8 frequency rows; duplication needs the identity map to be 8 x 8 too.
            raise ValueError(f"lip_size must be {8 * FEATURE_SIZE} (identity map = audio map side), got {lip_size}")
        identity_encoder = GlanceIdentityEncoder(lip_size, width)
        encoder = GlanceAudioEncoder(frames, width)
        decoder = GlanceDecoder(frames, lip_size, width, skips, upsampling)

        lips = keras.Input((lip_size, lip_size, 3), name="lips")
        log_mel = keras.Input((audio_lib.HOPS_PER_FRAME * frames, LOG_MEL_BANDS), name="log_mel")
        identity = identity_encoder(lips)
        fused = fuse(identity["identity"], encoder(log_mel), frames)  # (B, T, 8, 8, 2C)
        skip_maps = {key: identity[key] for key in skip_names(lip_size)} if skips else {}
        frames_out = decoder({"fused": fused, **skip_maps})  # (B, T, S, S, 3)
        super().__init__(inputs={"lips": lips, "log_mel": log_mel}, outputs=frames_out, name=name, **kwargs)
        self.frames = frames
        self.lip_size = lip_size
        self.width = width
        self.skips = skips
        self.upsampling = upsampling
        self.identity_encoder = identity_encoder
        self.audio_encoder = encoder
        self.decoder = decoder

    def window_generator(self) -> keras.Model:
        """Identity outputs {"identity", "skip_*"} + ``log_mel`` (B, 4 frames, 128) -> (B, frames, S, S, 3).

        What the export runs per window after the identity encoder ran once on
        the face; the same layers (weights) as this model. Every identity
        output is an input, also the skips a ``skips=False`` decoder ignores.
        """
        identity = {k: keras.Input(t.shape[1:], name=k) for k, t in self.identity_encoder.output.items()}
        log_mel = keras.Input((audio_lib.HOPS_PER_FRAME * self.frames, LOG_MEL_BANDS), name="log_mel")
        fused = fuse(identity["identity"], self.audio_encoder(log_mel), self.frames)
        skip_maps = {key: identity[key] for key in skip_names(self.lip_size)} if self.skips else {}
        frames_out = self.decoder({"fused": fused, **skip_maps})
        return keras.Model({**identity, "log_mel": log_mel}, frames_out, name="window_generator")
