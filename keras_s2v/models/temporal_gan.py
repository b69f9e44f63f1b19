"""Temporal GAN generators (Vougioukas, Petridis, Pantic, "End-to-End Speech-Driven Facial Animation
with Temporal GANs", BMVC 2018), raw-waveform and MFCC variants.

One still and a sequence of audio windows make a sequence of frames. Four parts:

* ``TemporalIdentityEncoder``: 6-layer strided CNN (BatchNorm + ReLU), still
  -> ``identity`` code (tanh) + the first 4 layers' maps as U-Net skips.
  Computed once per face.
* per-window audio encoder: ``WaveformEncoder`` on the 0.16 s raw window
  (a 250-tap first convolution, then short ones) or, for the MFCC variant,
  Speech2Vid's 5-convolution + 2-fully-connected ``Speech2VidAudioEncoder``
  (the same block), followed by a 2-layer GRU: the ``context``.
* noise generator: Gaussian noise through a GRU (1 or 2 layers), a temporally
  coherent code (blinks, head motion the audio does not explain).
* ``TemporalFrameDecoder``: transposed convolutions from [identity, context,
  noise] to a frame, skips concatenated at every scale (the MFCC variant puts
  a plain convolution after each concatenation).

``TemporalGenerator`` is what trains: ``{"faces" (B,S,S,3), "audio" (B,T,*window),
"noise" (B,T,N)} -> frames (B,T,S,S,3)`` for any ``T``. ``step_generator()``
is what streams: one audio window, one noise vector and the GRU states in,
one frame and the new states out, with the same weights; run step by step
from zero states it equals the whole-sequence model. The model never reads
audio beyond a frame's own window.
"""

from __future__ import annotations

import keras

from keras_s2v.data import audio as audio_lib
from keras_s2v.layers.blocks import conv1d_bn_relu, conv_bn_relu, deconv_bn_relu, scaled
from keras_s2v.layers.sequence import FoldTime, RepeatPerStep, UnfoldTime
from keras_s2v.models.base import FunctionalModel
from keras_s2v.models.speech2vid import Speech2VidAudioEncoder

IMAGE_SIZE = 112
AUDIO_INPUTS = ("pcm", "mfcc")  # raw 0.16 s waveform windows | 12 x 35 MFCC windows (Speech2Vid's)
SKIP_FILTERS = (64, 128, 256, 512)  # identity encoder layers 1-4 at width 1 (maps S/2 .. S/16)
CONTEXT_LAYERS = 2


def window_shape(audio_input: str) -> tuple[int, ...]:
    """One frame's audio input: ``(2560,)`` raw samples or ``(12, 35)`` MFCC."""
    if audio_input == "pcm":
        return (audio_lib.WAVE_WINDOW_SAMPLES,)
    if audio_input == "mfcc":
        return (audio_lib.MFCC_COEFFS, audio_lib.MFCC_WINDOW_HOPS)
    raise ValueError(f"unknown audio_input {audio_input!r} ({', '.join(AUDIO_INPUTS)})")


def window_samples(audio_input: str) -> int:
    """Raw samples per frame's window, centred on the frame (what a streaming client feeds)."""
    return audio_lib.WAVE_WINDOW_SAMPLES if audio_input == "pcm" else audio_lib.MFCC_WINDOW_SAMPLES


def skip_names(image_size: int = IMAGE_SIZE) -> tuple[str, ...]:
    return tuple(f"skip_{image_size // 2 ** (i + 1)}" for i in range(len(SKIP_FILTERS)))


@keras.saving.register_keras_serializable(package="keras_s2v")
class TemporalIdentityEncoder(FunctionalModel):
    """(B, S, S, 3) still -> {"identity": (B, I) in [-1, 1], "skip_{S/2}" .. "skip_{S/16}"}."""

    CONFIG_KEYS = ("image_size", "width", "identity_dim")

    def __init__(
        self,
        image_size: int = IMAGE_SIZE,
        width: float = 1.0,
        identity_dim: int = 50,
        name: str = "identity_encoder",
        **kwargs,
    ):
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
        faces = keras.Input((image_size, image_size, 3), name="faces")
        x, outputs = faces, {}
        for i, (filters, key) in enumerate(zip(SKIP_FILTERS, skip_names(image_size)), start=1):
            x = conv_bn_relu(x, scaled(filters, width), 4, strides=2, name=f"conv{i}")  # (B, S/2^i, S/2^i, f)
            outputs[key] = x
        x = conv_bn_relu(x, scaled(512, width), 3, name="conv5")  # (B, S/16, S/16, 512)
        x = keras.layers.Conv2D(identity_dim, image_size // 16, padding="valid", name="conv6")(x)  # (B, 1, 1, I)
        x = keras.layers.Activation("tanh", name="conv6_tanh")(x)
        outputs = {"identity": keras.layers.Flatten(name="identity_code")(x), **outputs}
        super().__init__(inputs=faces, outputs=outputs, name=name, **kwargs)
        self.image_size = image_size
        self.width = width
        self.identity_dim = identity_dim


@keras.saving.register_keras_serializable(package="keras_s2v")
class WaveformEncoder(FunctionalModel):
    """(B, 2560) raw 0.16 s window in [-1, 1] -> (B, D): a large first kernel, then short ones."""

    CONFIG_KEYS = ("width", "embedding_dim")

    def __init__(self, width: float = 1.0, embedding_dim: int = 256, name: str = "audio_encoder", **kwargs):
        pcm = keras.Input((audio_lib.WAVE_WINDOW_SAMPLES,), name="pcm")
        x = keras.layers.Reshape((audio_lib.WAVE_WINDOW_SAMPLES, 1), name="add_channel")(pcm)
        x = conv1d_bn_relu(x, scaled(16, width), 250, strides=50, name="conv1")  # (B, 52, 16): 15.6 ms taps
        x = conv1d_bn_relu(x, scaled(32, width), 4, strides=2, name="conv2")  # (B, 26, 32)
        x = conv1d_bn_relu(x, scaled(64, width), 4, strides=2, name="conv3")  # (B, 13, 64)
        x = conv1d_bn_relu(x, scaled(128, width), 4, strides=2, name="conv4")  # (B, 7, 128)
        x = conv1d_bn_relu(x, embedding_dim, 7, padding="valid", name="conv5")  # (B, 1, D)
        outputs = keras.layers.Flatten(name="audio_vector")(x)
        super().__init__(inputs=pcm, outputs=outputs, name=name, **kwargs)
        self.width = width
        self.embedding_dim = embedding_dim


def audio_encoder(audio_input: str, width: float, embedding_dim: int, name: str = "audio_encoder"):
    """The per-window audio encoder of ``audio_input`` (shared by the generator and the sequence discriminator)."""
    if audio_input == "pcm":
        return WaveformEncoder(width, embedding_dim, name=name)
    window_shape(audio_input)  # validates
    return Speech2VidAudioEncoder(width, embedding_dim, name=name)


@keras.saving.register_keras_serializable(package="keras_s2v")
class TemporalFrameDecoder(FunctionalModel):
    """{"code": (B, D), skips} -> (B, S, S, 3) frame in [0, 1].

    ``plain_convs=False`` (Vougioukas et al.): 5 transposed convolutions, each
    skip concatenated before the next. ``True`` (the MFCC variant): 6
    transposed and 4 plain convolutions alternating, a skip concatenated
    before each plain convolution.
    """

    CONFIG_KEYS = ("image_size", "width", "code_dim", "plain_convs")

    def __init__(
        self,
        image_size: int = IMAGE_SIZE,
        width: float = 1.0,
        code_dim: int = 316,
        plain_convs: bool = False,
        name: str = "frame_decoder",
        **kwargs,
    ):
        code = keras.Input((code_dim,), name="code")
        names = skip_names(image_size)
        skips = {
            key: keras.Input((image_size // 2 ** (i + 1),) * 2 + (scaled(f, width),), name=key)
            for i, (key, f) in enumerate(zip(names, SKIP_FILTERS))
        }
        x = keras.layers.Reshape((1, 1, code_dim), name="to_map")(code)
        size = image_size // 16
        # (B, S/16, S/16, 512)
        x = deconv_bn_relu(x, scaled(512, width), size, strides=1, padding="valid", name=f"deconv{size}")
        for j, (key, filters) in enumerate(zip(reversed(names), reversed(SKIP_FILTERS))):  # S/16 .. S/2
            x = keras.layers.Concatenate(name=f"concat_{key}")([x, skips[key]])
            if plain_convs:
                x = conv_bn_relu(x, scaled(filters, width), 3, name=f"conv{size}")
            if plain_convs or j < len(names) - 1:  # the last upsampling of the 5-layer decoder is the RGB one
                x = deconv_bn_relu(x, scaled(filters // 2, width), 4, name=f"deconv{2 * size}")  # (B, 2s, 2s, f/2)
            size *= 2
        if plain_convs:  # the 6th transposed convolution: to RGB at full size
            x = keras.layers.Conv2DTranspose(3, 3, padding="same", name="to_rgb")(x)
        else:
            x = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", name=f"deconv{image_size}")(x)
        frame = keras.layers.Activation("sigmoid", name="frame")(x)  # (B, S, S, 3)
        super().__init__(inputs={"code": code, **skips}, outputs=frame, name=name, **kwargs)
        self.image_size = image_size
        self.width = width
        self.code_dim = code_dim
        self.plain_convs = plain_convs


def _gru(units: int, name: str):
    """A sequence GRU whose cell (what ``step_generator`` runs) has a unique name too."""
    gru = keras.layers.GRU(units, return_sequences=True, name=name)
    gru.cell.name = f"{name}_cell"
    return gru


@keras.saving.register_keras_serializable(package="keras_s2v")
class TemporalGenerator(FunctionalModel):
    """{"faces": (B,S,S,3), "audio": (B,T,*window), "noise": (B,T,N)} -> (B,T,S,S,3) frames in [0, 1].

    ``noise_std`` is the standard deviation of the Gaussian noise the trainer
    and every runtime feed (part of the config so exports carry it).
    """

    CONFIG_KEYS = (
        "audio_input",
        "image_size",
        "width",
        "identity_dim",
        "audio_dim",
        "context_dim",
        "noise_dim",
        "noise_layers",
        "plain_convs",
        "noise_std",
    )

    def __init__(
        self,
        audio_input: str = "pcm",
        image_size: int = IMAGE_SIZE,
        width: float = 1.0,
        identity_dim: int = 50,
        audio_dim: int = 256,
        context_dim: int = 256,
        noise_dim: int = 10,
        noise_layers: int = 1,
        plain_convs: bool = False,
        noise_std: float = 0.6,
        name: str = "temporal_generator",
        **kwargs,
    ):
        identity_encoder = TemporalIdentityEncoder(image_size, width, identity_dim)
        encoder = audio_encoder(audio_input, width, audio_dim)
        decoder = TemporalFrameDecoder(image_size, width, identity_dim + context_dim + noise_dim, plain_convs)
        context_grus = [_gru(context_dim, f"context_gru{i + 1}") for i in range(CONTEXT_LAYERS)]
        noise_grus = [_gru(noise_dim, f"noise_gru{i + 1}") for i in range(noise_layers)]

        faces = keras.Input((image_size, image_size, 3), name="faces")
        audio = keras.Input((None, *window_shape(audio_input)), name="audio")
        noise = keras.Input((None, noise_dim), name="noise")
        identity = identity_encoder(faces)
        context = UnfoldTime(name="unfold_audio")([encoder(FoldTime(name="fold_audio")(audio)), audio])  # (B, T, A)
        for gru in context_grus:
            context = gru(context)  # (B, T, C)
        noise_code = noise
        for gru in noise_grus:
            noise_code = gru(noise_code)  # (B, T, N)
        # (B T, I + C + N)
        code = keras.layers.Concatenate(name="concat_code")(
            [
                RepeatPerStep(name="repeat_identity")([identity["identity"], audio]),
                FoldTime(name="fold_context")(context),
                FoldTime(name="fold_noise")(noise_code),
            ]
        )
        skips = {k: RepeatPerStep(name=f"repeat_{k}")([identity[k], audio]) for k in skip_names(image_size)}
        frames = UnfoldTime(name="frames")([decoder({"code": code, **skips}), audio])  # (B, T, S, S, 3)
        super().__init__(inputs={"faces": faces, "audio": audio, "noise": noise}, outputs=frames, name=name, **kwargs)
        self.audio_input = audio_input
        self.image_size = image_size
        self.width = width
        self.identity_dim = identity_dim
        self.audio_dim = audio_dim
        self.context_dim = context_dim
        self.noise_dim = noise_dim
        self.noise_layers = noise_layers
        self.plain_convs = plain_convs
        self.noise_std = noise_std
        self.identity_encoder = identity_encoder
        self.audio_encoder = encoder
        self.decoder = decoder
        self.context_grus = context_grus
        self.noise_grus = noise_grus

    num_identity_images = 1

    @property
    def window_samples(self) -> int:
        return window_samples(self.audio_input)

    def state_shapes(self) -> dict[str, tuple[int]]:
        """GRU state name -> (units,): what ``step_generator`` carries from frame to frame."""
        states = {f"context_state{i + 1}": (self.context_dim,) for i in range(CONTEXT_LAYERS)}
        states.update({f"noise_state{i + 1}": (self.noise_dim,) for i in range(self.noise_layers)})
        return states

    def step_generator(self) -> keras.Model:
        """One frame: identity outputs + ``audio`` (B, *window) + ``noise`` (B, N) + states -> frame, new states.

        Outputs ``{"frame": (B, S, S, 3), "<state>": (B, units) ...}``; feed the
        state outputs back as the next frame's inputs, zeros for the first.
        """
        identity = {k: keras.Input(t.shape[1:], name=k) for k, t in self.identity_encoder.output.items()}
        audio = keras.Input(window_shape(self.audio_input), name="audio")
        noise = keras.Input((self.noise_dim,), name="noise")
        states = {k: keras.Input(shape, name=k) for k, shape in self.state_shapes().items()}
        outputs = {}
        x = self.audio_encoder(audio)  # (B, A)
        for i, gru in enumerate(self.context_grus):
            key = f"context_state{i + 1}"
            x, _ = gru.cell(x, [states[key]])  # (B, C): the GRU layer's own cell, one step
            outputs[key] = keras.layers.Identity(name=f"{key}_out")(x)
        z = noise
        for i, gru in enumerate(self.noise_grus):
            key = f"noise_state{i + 1}"
            z, _ = gru.cell(z, [states[key]])
            outputs[key] = keras.layers.Identity(name=f"{key}_out")(z)
        code = keras.layers.Concatenate(name="concat_code")([identity["identity"], x, z])
        skips = {k: v for k, v in identity.items() if k != "identity"}
        frame = self.decoder({"code": code, **skips})
        return keras.Model(
            {**identity, "audio": audio, "noise": noise, **states}, {"frame": frame, **outputs}, name="step_generator"
        )
