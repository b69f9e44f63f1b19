"""What the lips-at-a-glance model trains with and never ships: motion, perceptual features, the discriminator.

Chen et al. (ECCV 2018) train the ``GlanceGenerator`` with three more signals
than pixels, all here:

* motion: ``LipFlowNet`` estimates the optical flow between consecutive lip
  frames (the paper uses a pretrained FlowNet; here a small encoder-decoder
  trained self-supervised on the lip crops, photometric + smoothness loss
  through ``warp``, by the lead's ``FlowTrainer``). ``clip_motion`` turns a
  clip into its T - 1 flows (or plain frame differences, the ablation).
* audio-visual correlation: ``AudioDerivativeEncoder`` (phi_s, on the change
  of the audio features) and ``MotionEncoder`` (phi_v, on the motion) map both
  to (B, T', D) sequences the correlation loss compares step by step. Both
  keep the time axis (``same`` padding, no temporal stride) and have no bias,
  so silence and stillness map to zero.
* perceptual loss: ``LipAutoencoder`` learns to reconstruct lip frames; its
  ``encoder`` (16 x 16 features after the residual blocks) is phi.
* ``ThreeStreamDiscriminator``: audio, video and motion streams on a shared
  (T', h, w) grid, concatenated, 2 convolutions, one logit.

Where this differs from the paper and the authors' code (lelechen63/3d_gan),
and why:

* The flow network is a 4-level encoder-decoder (about a million weights at
  ``width=1``) trained here, not FlowNet: a pretrained FlowNet is not available
  to this project, and 64 x 64 lips move a few pixels per frame.
* The motion stream of the discriminator uses the video stream's strides on
  the motion padded to T frames (a zero first frame), so the two grids match
  by construction; the released code reaches the same grid with other strides.
* The audio stream strides 2 in both axes at every layer so its fully
  connected layer stays small (T/4 x 8 x 256 inputs instead of T x 32 x 256).
* BatchNorm (synchronized, as everywhere in the project) instead of
  InstanceNorm in the discriminator; the correlation encoders have no
  normalisation at all (no bias, a per-clip statistic would leak time).

On CPU, train with ``TF_ENABLE_ONEDNN_OPTS=1`` (set before TensorFlow is
imported; it is off by default on CPUs without AVX-512): TensorFlow's default
CPU kernels for the gradients of strided Conv3D, which the discriminator and
the motion encoder are made of, are tens of times slower (a whole glance
training step at width 0.25, batch 8: about 100 s instead of 1.5-3 s).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_s2v.data import audio as audio_lib
from keras_s2v.data.face.align import LIP_SIZE
from keras_s2v.layers.blocks import conv2plus1d, conv_bn_leaky, conv_bn_relu, deconv_bn_relu, scaled
from keras_s2v.layers.sequence import FoldTime, RepeatAlongAxis, UnfoldTime, fold_time
from keras_s2v.models.base import FunctionalModel
from keras_s2v.models.glance import GLANCE_FRAMES, LOG_MEL_BANDS, conv3d_bn_leaky, residual_block

MOTION_KINDS = ("flow", "difference")
STREAMS = ("audio", "video", "flow")
FLOW_FILTERS = (32, 64, 128, 256)  # flow encoder at width 1: maps S/2 .. S/16
FLOW_SCALE = 4.0  # pixels per unit of the flow head: flows of a few pixels stay in the head's easy range
LIP_ENCODER_FILTERS = (32, 64, 128)  # autoencoder at width 1: maps S, S/2, S/4 (the last = phi's channels)
MOTION_FILTERS = (32, 64, 64, 128, 128, 128)  # 6 Conv3D, temporal kernel 3 each: receptive field 13 frames
DERIVATIVE_FILTERS = (128, 128, 128)  # 3 hidden Conv1D + a linear one, kernel 3 each: receptive field 9 frames
DISCRIMINATOR_FILTERS = (64, 128, 256, 256)  # video and motion streams at width 1
DISCRIMINATOR_STRIDES = ((2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))  # (time, height, width): T/8, S/16
AUDIO_STREAM_FILTERS = (32, 64, 128, 256)  # audio stream convolutions, stride 2 each


def motion_channels(kind: str) -> int:
    """Channels of ``clip_motion(..., kind)``: 2 for flow (dx, dy), 3 for RGB differences."""
    if kind not in MOTION_KINDS:
        raise ValueError(f"unknown motion kind {kind!r} ({', '.join(MOTION_KINDS)})")
    return 2 if kind == "flow" else 3


def parse_streams(streams: str) -> tuple[str, ...]:
    """``"audio,video,flow"`` -> ("audio", "video", "flow"); audio and video are required."""
    names = tuple(s.strip() for s in streams.split(",") if s.strip())
    if set(names) - set(STREAMS) or not {"audio", "video"} <= set(names) or len(set(names)) != len(names):
        raise ValueError(f"streams must be 'audio,video' or 'audio,video,flow', got {streams!r}")
    return names


# --- Flow -------------------------------------------------------------------------------------


def warp(image, flow):
    """Backward bilinear warp: ``out[y, x] = image[y + dy, x + dx]``, coordinates clamped to the border.

    image (B, H, W, C), flow (B, H, W, 2) in pixels, (dx, dy) -> (B, H, W, C).
    Differentiable in both (the bilinear weights carry the flow's gradient).
    """
    image = ops.convert_to_tensor(image)
    flow = ops.cast(ops.convert_to_tensor(flow), image.dtype)
    batch = ops.shape(image)[0]
    height, width, channels = (ops.shape(image)[i] if image.shape[i] is None else image.shape[i] for i in (1, 2, 3))
    xs = ops.cast(ops.arange(width), image.dtype)[None, None, :]  # (1, 1, W)
    ys = ops.cast(ops.arange(height), image.dtype)[None, :, None]  # (1, H, 1)
    x = ops.clip(xs + flow[..., 0], 0.0, ops.cast(width - 1, image.dtype))  # (B, H, W)
    y = ops.clip(ys + flow[..., 1], 0.0, ops.cast(height - 1, image.dtype))
    x0, y0 = ops.floor(x), ops.floor(y)
    wx, wy = ((x - x0)[..., None], (y - y0)[..., None])  # (B, H, W, 1): the gradient path to the flow
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    x1, y1 = ops.minimum(x0 + 1, width - 1), ops.minimum(y0 + 1, height - 1)
    pixels = ops.reshape(image, (batch, -1, channels))  # (B, H W, C)

    def at(yi, xi):  # image[b, yi, xi] for every output pixel
        index = ops.reshape(yi * width + xi, (batch, -1, 1))  # (B, H W, 1)
        gathered = ops.take_along_axis(pixels, ops.repeat(index, channels, axis=2), axis=1)
        return ops.reshape(gathered, (batch, height, width, channels))

    top = (1.0 - wx) * at(y0, x0) + wx * at(y0, x1)
    bottom = (1.0 - wx) * at(y1, x0) + wx * at(y1, x1)
    return (1.0 - wy) * top + wy * bottom


@keras.saving.register_keras_serializable(package="keras_s2v")
class LipFlowNet(FunctionalModel):
    """{"first": (B, S, S, 3), "second": (B, S, S, 3)} -> flow (B, S, S, 2) in pixels, ``warp(second, flow) ~ first``.

    No BatchNorm: the network is used frozen, in inference mode, after a few
    hundred steps, when moving statistics are still far from the data's.
    4 stride-2 convolutions, bilinear upsampling with the encoder's maps (and
    the input pair at full size) concatenated, a linear 2-channel head times
    ``FLOW_SCALE``. The head starts small (near-zero flow, the identity warp)
    but not zero, so every layer gets gradients from the first step.
    """

    CONFIG_KEYS = ("lip_size", "width")

    def __init__(self, lip_size: int = LIP_SIZE, width: float = 1.0, name: str = "lip_flow_net", **kwargs):
        if lip_size % 16:
            raise ValueError(f"lip_size must be a multiple of 16, got {lip_size}")
        first = keras.Input((lip_size, lip_size, 3), name="first")
        second = keras.Input((lip_size, lip_size, 3), name="second")
        x = pair = keras.layers.Concatenate(name="pair")([first, second])  # (B, S, S, 6)
        maps = []
        for i, filters in enumerate(FLOW_FILTERS, start=1):
            # (B, S/2^i, S/2^i, f)
            x = conv_bn_leaky(x, scaled(filters, width), 3, strides=2, normalize=False, name=f"down{i}")
            maps.append(x)
        for skip, filters in zip([pair, *maps[:-1]][::-1], FLOW_FILTERS[::-1][1:] + (16,)):
            size = skip.shape[1]
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{size}")(x)
            x = keras.layers.Concatenate(name=f"concat{size}")([x, skip])
            x = conv_bn_leaky(x, scaled(filters, width), 3, normalize=False, name=f"conv{size}")  # (B, size, size, f)
        x = keras.layers.Conv2D(
            2, 3, padding="same", name="flow_head", kernel_initializer=keras.initializers.RandomNormal(stddev=0.01)
        )(x)
        flow = keras.layers.Rescaling(FLOW_SCALE, name="flow")(x)  # (B, S, S, 2) pixels (dx, dy)
        super().__init__(inputs={"first": first, "second": second}, outputs=flow, name=name, **kwargs)
        self.lip_size = lip_size
        self.width = width


def clip_motion(flow_net, clips, kind: str = "flow"):
    """clips (B, T, S, S, 3) -> motion (B, T - 1, S, S, M) between consecutive frames.

    ``"flow"``: ``flow_net`` on the pairs (t, t + 1), all folded into one batch
    (M = 2; ``warp(frame t+1, flow) ~ frame t``); run in inference mode, it is
    a fixed feature here and trains apart. ``"difference"``: frame t+1 - frame t
    (M = 3; ``flow_net`` unused). Differentiable in ``clips`` either way.
    """
    motion_channels(kind)  # validates
    clips = ops.convert_to_tensor(clips)
    first, second = clips[:, :-1], clips[:, 1:]  # (B, T - 1, S, S, 3)
    if kind == "difference":
        return second - first
    flows = flow_net({"first": fold_time(first), "second": fold_time(second)}, training=False)  # (B (T-1), S, S, 2)
    return ops.reshape(flows, (ops.shape(clips)[0], -1, *flows.shape[1:]))


# --- Perceptual features ----------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_s2v")
class LipFeatureEncoder(FunctionalModel):
    """(B, S, S, 3) lip frames -> (B, S/4, S/4, C) features after ``res_blocks`` residual blocks: phi."""

    CONFIG_KEYS = ("lip_size", "width", "res_blocks")

    def __init__(
        self, lip_size: int = LIP_SIZE, width: float = 1.0, res_blocks: int = 6, name: str = "lip_encoder", **kwargs
    ):
        frames = keras.Input((lip_size, lip_size, 3), name="frames")
        x = conv_bn_relu(frames, scaled(LIP_ENCODER_FILTERS[0], width), 7, name="conv1")  # (B, S, S, 32)
        x = conv_bn_relu(x, scaled(LIP_ENCODER_FILTERS[1], width), 4, strides=2, name="conv2")  # (B, S/2, S/2, 64)
        x = conv_bn_relu(x, scaled(LIP_ENCODER_FILTERS[2], width), 4, strides=2, name="conv3")  # (B, S/4, S/4, C)
        for i in range(res_blocks):
            x = residual_block(x, name=f"res{i + 1}")
        super().__init__(inputs=frames, outputs=x, name=name, **kwargs)
        self.lip_size = lip_size
        self.width = width
        self.res_blocks = res_blocks


@keras.saving.register_keras_serializable(package="keras_s2v")
class LipAutoencoder(FunctionalModel):
    """(B, S, S, 3) lip frames -> (B, S, S, 3) reconstruction in [0, 1]; ``encoder`` is the perceptual phi."""

    CONFIG_KEYS = ("lip_size", "width", "res_blocks")

    def __init__(
        self, lip_size: int = LIP_SIZE, width: float = 1.0, res_blocks: int = 6, name: str = "lip_autoencoder", **kwargs
    ):
        if lip_size % 4:
            raise ValueError(f"lip_size must be a multiple of 4, got {lip_size}")
        encoder = LipFeatureEncoder(lip_size, width, res_blocks)
        frames = keras.Input((lip_size, lip_size, 3), name="frames")
        x = encoder(frames)  # (B, S/4, S/4, C)
        x = deconv_bn_relu(x, scaled(LIP_ENCODER_FILTERS[1], width), 4, name=f"deconv{lip_size // 2}")
        x = deconv_bn_relu(x, scaled(LIP_ENCODER_FILTERS[0], width), 4, name=f"deconv{lip_size}")  # (B, S, S, 32)
        x = keras.layers.Conv2D(3, 7, padding="same", kernel_initializer="he_normal", name="to_rgb")(x)
        reconstruction = keras.layers.Activation("sigmoid", name="reconstruction")(x)  # (B, S, S, 3)
        super().__init__(inputs=frames, outputs=reconstruction, name=name, **kwargs)
        self.lip_size = lip_size
        self.width = width
        self.res_blocks = res_blocks
        self.encoder = encoder


# --- Audio-visual correlation -----------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_s2v")
class AudioDerivativeEncoder(FunctionalModel):
    """phi_s: (B, T', 128) audio features (their change from frame to frame) -> (B, T', D), any T'.

    1-D convolutions of kernel 3 with ``same`` padding (the length is kept,
    receptive field 9 frames), no bias, LeakyReLU between, linear last.
    ``frames`` is the window the trainer uses (T' = frames - 1); the model
    itself takes any length.
    """

    CONFIG_KEYS = ("frames", "width", "feature_dim")

    def __init__(
        self,
        frames: int = GLANCE_FRAMES,
        width: float = 1.0,
        feature_dim: int = 64,
        name: str = "audio_derivative_encoder",
        **kwargs,
    ):
        audio = keras.Input((None, LOG_MEL_BANDS), name="audio")
        x = audio
        for i, filters in enumerate(DERIVATIVE_FILTERS, start=1):
            x = keras.layers.Conv1D(
                scaled(filters, width),
                3,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"conv{i}",
            )(x)
            x = keras.layers.LeakyReLU(0.2, name=f"conv{i}_lrelu")(x)  # (B, T', f)
        x = keras.layers.Conv1D(feature_dim, 3, padding="same", use_bias=False, name="embedding")(x)  # (B, T', D)
        super().__init__(inputs=audio, outputs=x, name=name, **kwargs)
        self.frames = frames
        self.width = width
        self.feature_dim = feature_dim


@keras.saving.register_keras_serializable(package="keras_s2v")
class MotionEncoder(FunctionalModel):
    """phi_v: motion (B, T', S, S, channels) -> (B, T', D), any T'.

    6 factorised 3-D convolutions (``conv2plus1d``) of kernel 3 with strides
    (1, 2, 2) (time kept, temporal receptive field 13 frames), no bias,
    LeakyReLU after each half; the spatial average of each step;
    a linear projection to D.
    """

    CONFIG_KEYS = ("lip_size", "channels", "width", "feature_dim")

    def __init__(
        self,
        lip_size: int = LIP_SIZE,
        channels: int = 2,
        width: float = 1.0,
        feature_dim: int = 64,
        name: str = "motion_encoder",
        **kwargs,
    ):
        motion = keras.Input((None, lip_size, lip_size, channels), name="motion")
        x = motion
        for i, filters in enumerate(MOTION_FILTERS, start=1):
            # (B, T', S/2^i, S/2^i, f)
            x = conv2plus1d(
                x,
                scaled(filters, width),
                3,
                (1, 2, 2),
                normalize=False,
                activation="leaky",
                use_bias=False,
                name=f"conv{i}",
            )
        pooled = keras.layers.GlobalAveragePooling2D(name="spatial_mean")(FoldTime(name="fold")(x))  # (B T', C)
        x = UnfoldTime(name="unfold")([pooled, x])  # (B, T', C)
        x = keras.layers.Dense(feature_dim, use_bias=False, name="embedding")(x)  # (B, T', D)
        super().__init__(inputs=motion, outputs=x, name=name, **kwargs)
        self.lip_size = lip_size
        self.channels = channels
        self.width = width
        self.feature_dim = feature_dim


# --- Discriminator ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_s2v")
class ThreeStreamDiscriminator(FunctionalModel):
    """{"frames": (B, T, S, S, 3), "motion": (B, T-1, S, S, M), "log_mel": (B, 4T, 128)} -> (B, 1) logit.

    ``streams="audio,video"`` (the two-stream ablation) has no motion input or stream.
    """

    CONFIG_KEYS = ("frames", "lip_size", "width", "motion_channels", "streams")

    def __init__(
        self,
        frames: int = GLANCE_FRAMES,
        lip_size: int = LIP_SIZE,
        width: float = 1.0,
        motion_channels: int = 2,
        streams: str = "audio,video,flow",
        name: str = "three_stream_discriminator",
        **kwargs,
    ):
        names = parse_streams(streams)
        hops = audio_lib.HOPS_PER_FRAME * frames
        inputs = {"frames": keras.Input((frames, lip_size, lip_size, 3), name="frames")}
        if "flow" in names:
            inputs["motion"] = keras.Input((frames - 1, lip_size, lip_size, motion_channels), name="motion")
        inputs["log_mel"] = keras.Input((hops, LOG_MEL_BANDS), name="log_mel")

        def stream(x, prefix):  # (B, T, S, S, c) -> (B, T', S/16, S/16, 256)
            for i, (filters, strides) in enumerate(zip(DISCRIMINATOR_FILTERS, DISCRIMINATOR_STRIDES), start=1):
                x = conv3d_bn_leaky(x, scaled(filters, width), 4, strides, normalize=i > 1, name=f"{prefix}_conv{i}")
            return x

        video = stream(inputs["frames"], "video")  # (B, T', S/16, S/16, 256)
        grids = [video]
        if "flow" in names:
            # A zero first frame: T - 1 motions on the video's T-frame grid, the same strides give the same T'.
            padded = keras.layers.ZeroPadding3D(((1, 0), (0, 0), (0, 0)), name="motion_pad")(inputs["motion"])
            grids.append(stream(padded, "motion"))  # (B, T', S/16, S/16, 256)

        x = keras.layers.Reshape((hops, LOG_MEL_BANDS, 1), name="audio_add_channel")(inputs["log_mel"])
        for i, filters in enumerate(AUDIO_STREAM_FILTERS, start=1):  # (B, 4T / 2^i, 128 / 2^i, f)
            x = conv_bn_leaky(x, scaled(filters, width), 3, strides=2, normalize=i > 1, name=f"audio_conv{i}")
        x = keras.layers.Flatten(name="audio_flatten")(x)  # (B, T/4 x 8 x 256)
        x = keras.layers.Dense(scaled(256, width), name="audio_fc")(x)
        x = keras.layers.LeakyReLU(0.2, name="audio_fc_lrelu")(x)  # (B, A)
        # Duplicated to the video grid, innermost axis first: (B, w, A) -> (B, h, w, A) -> (B, T', h, w, A).
        for axis_name, repeats in zip(("width", "height", "time"), reversed(video.shape[1:4])):
            x = RepeatAlongAxis(repeats, axis=1, name=f"audio_repeat_{axis_name}")(x)
        grids.append(x)

        x = keras.layers.Concatenate(name="streams")(grids)  # (B, T', h, w, 256 (1 or 2) + A)
        x = conv3d_bn_leaky(x, scaled(512, width), 3, name="joint_conv1")
        x = keras.layers.Conv3D(1, 3, padding="same", kernel_initializer="he_normal", name="joint_conv2")(x)
        logit = keras.layers.GlobalAveragePooling3D(name="logit")(x)  # (B, 1)
        super().__init__(inputs=inputs, outputs=logit, name=name, **kwargs)
        self.frames = frames
        self.lip_size = lip_size
        self.width = width
        self.motion_channels = motion_channels
        self.streams = streams
