"""Speech2Vid ("You said that?", Chung, Jamaludin, Zisserman, BMVC 2017).

Three parts, each a functional model, so the export can run them apart:

* ``Speech2VidAudioEncoder``: one 12 x 35 MFCC window -> 256-d audio vector.
* ``Speech2VidIdentityEncoder``: 1 (or 5, stacked on channels) aligned
  112 x 112 faces -> 256-d identity vector + two skip feature maps. Computed
  once per face. With ``masked_target`` (Wav2Lip's and LipGAN's conditioning) a
  first image comes before them: the frame being made, its lower half masked in
  the graph, so the output keeps that frame's pose and only the mouth is drawn;
  a photo is its own target, a re-dubbed video gives each of its frames.
* ``Speech2VidDecoder``: identity outputs + audio vector -> one 112 x 112 frame.

``Speech2Vid`` wires them into faces + MFCC -> frame (what trains), and
``frame_generator()`` gives identity outputs + MFCC -> frame (what runs per
video frame after the identity is computed once).

Sizes follow the paper at ``width=1``; ``width`` scales every filter count
for small and tiny configurations. ``separable=True`` (the ``s2v_mobile``
experiment) makes the k x k body convolutions MobileNet depthwise-separable
blocks; the first convolutions over RGB / MFCC, the whole-map ``fc6``
convolutions, the 1 x 1 ``fc7`` and the decoder's transposed convolutions stay
standard. Inputs, outputs, skip maps and their shapes do not change.
"""

from __future__ import annotations

import keras

from keras_s2v.data import audio as audio_lib
from keras_s2v.layers.blocks import MaskLowerHalf, batch_norm, conv_bn_relu, deconv_bn_relu, resize_conv_bn_relu, scaled
from keras_s2v.models.base import FunctionalModel

IMAGE_SIZE = 112
# identity-encoder maps the decoder may concatenate
SKIP_NAMES = ("skip_112", "skip_56", "skip_28", "skip_14", "skip_6")
FULL_RES_FILTERS = 32  # the 112 px stage of full_res_skip, times width
UPSAMPLINGS = ("transpose", "resize")


@keras.saving.register_keras_serializable(package="keras_s2v")
class Speech2VidAudioEncoder(FunctionalModel):
    """MFCC window (12 coefficients x 35 steps, frequency x time) -> audio vector."""

    CONFIG_KEYS = ("width", "embedding_dim", "separable")

    def __init__(
        self,
        width: float = 1.0,
        embedding_dim: int = 256,
        separable: bool = False,
        name: str = "audio_encoder",
        **kwargs,
    ):
        mfcc = keras.Input((audio_lib.MFCC_COEFFS, audio_lib.MFCC_WINDOW_HOPS), name="mfcc")
        x = keras.layers.Reshape((audio_lib.MFCC_COEFFS, audio_lib.MFCC_WINDOW_HOPS, 1), name="add_channel")(mfcc)
        # MFCC scales differ per coefficient; normalise with statistics learnt in training.
        x = batch_norm("input_norm")(x)  # (B, 12, 35, 1)
        # conv1 sees 1 channel: standard even when separable.
        x = conv_bn_relu(x, scaled(64, width), 3, separable=separable, name="conv1")  # (B, 12, 35, 64)
        x = conv_bn_relu(x, scaled(128, width), 3, separable=separable, name="conv2")  # (B, 12, 35, 128)
        x = keras.layers.MaxPooling2D(3, strides=(1, 2), padding="same", name="pool2")(x)  # (B, 12, 18, 128): time only
        x = conv_bn_relu(x, scaled(256, width), 3, separable=separable, name="conv3")
        x = conv_bn_relu(x, scaled(256, width), 3, separable=separable, name="conv4")
        x = conv_bn_relu(x, scaled(256, width), 3, separable=separable, name="conv5")  # (B, 12, 18, 256)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool5")(x)  # (B, 5, 8, 256)
        x = conv_bn_relu(x, scaled(512, width), (5, 8), padding="valid", name="fc6")  # (B, 1, 1, 512)
        x = conv_bn_relu(x, embedding_dim, 1, name="fc7")  # (B, 1, 1, 256)
        outputs = keras.layers.Flatten(name="audio_vector")(x)  # (B, 256)
        super().__init__(inputs=mfcc, outputs=outputs, name=name, **kwargs)
        self.width = width
        self.embedding_dim = embedding_dim
        self.separable = separable


@keras.saving.register_keras_serializable(package="keras_s2v")
class Speech2VidIdentityEncoder(FunctionalModel):
    """VGG-M style encoder: faces (B, 112, 112, 3 n) -> {identity, skip_14, skip_6}.

    With ``masked_target`` faces are (B, 112, 112, 3 (n + 1)): the target frame first.
    """

    CONFIG_KEYS = (
        "num_images",
        "width",
        "embedding_dim",
        "separable",
        "high_res_skips",
        "masked_target",
        "full_res_skip",
    )

    def __init__(
        self,
        num_images: int = 1,
        width: float = 1.0,
        embedding_dim: int = 256,
        separable: bool = False,
        high_res_skips: bool = False,
        masked_target: bool = False,
        full_res_skip: bool = False,
        name: str = "identity_encoder",
        **kwargs,
    ):
        faces = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3 * (num_images + masked_target)), name="faces")
        pixels = MaskLowerHalf(3, name="mask_target")(faces) if masked_target else faces
        x = pixels
        # conv1 sees 3 n channels: standard even when separable.
        skip_56 = conv_bn_relu(x, scaled(96, width), 7, strides=2, separable=separable, name="conv1")  # (B, 56, 56, 96)
        pool1 = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(skip_56)  # (B, 27, 27, 96)
        # skip_14: (B, 14, 14, 256)
        skip_14 = conv_bn_relu(pool1, scaled(256, width), 5, strides=2, separable=separable, name="conv2")
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool2")(skip_14)  # (B, 6, 6, 256)
        x = conv_bn_relu(x, scaled(512, width), 3, separable=separable, name="conv3")
        x = conv_bn_relu(x, scaled(512, width), 3, separable=separable, name="conv4")
        skip_6 = conv_bn_relu(x, scaled(512, width), 3, separable=separable, name="conv5")  # (B, 6, 6, 512)
        x = conv_bn_relu(skip_6, scaled(512, width), 6, padding="valid", name="fc6")  # (B, 1, 1, 512)
        x = conv_bn_relu(x, embedding_dim, 1, name="fc7")  # (B, 1, 1, 256)
        identity = keras.layers.Flatten(name="identity_vector")(x)  # (B, 256)
        outputs = {"identity": identity, "skip_14": skip_14, "skip_6": skip_6}
        if high_res_skips:  # the face's own texture at 56 and 28 px: what keeps generated faces sharp
            # skip_28: (B, 28, 28, 96)
            outputs["skip_28"] = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="skip_28_pad")(pool1)
            outputs["skip_56"] = skip_56  # (B, 56, 56, 96)
        if full_res_skip:  # the pixels themselves: with a masked target, its upper face passes through unblurred
            # skip_112: (B, 112, 112, 32)
            outputs["skip_112"] = conv_bn_relu(pixels, scaled(FULL_RES_FILTERS, width), 3, name="conv_skip112")
        super().__init__(inputs=faces, outputs=outputs, name=name, **kwargs)
        self.num_images = num_images
        self.width = width
        self.embedding_dim = embedding_dim
        self.separable = separable
        self.high_res_skips = high_res_skips
        self.masked_target = masked_target
        self.full_res_skip = full_res_skip


@keras.saving.register_keras_serializable(package="keras_s2v")
class Speech2VidDecoder(FunctionalModel):
    """[identity, audio] vectors (+ skips) -> frame (B, 112, 112, 3) in [0, 1]."""

    CONFIG_KEYS = (
        "width",
        "embedding_dim",
        "skip_connections",
        "separable",
        "upsampling",
        "high_res_skips",
        "full_res_skip",
    )

    def __init__(
        self,
        width: float = 1.0,
        embedding_dim: int = 256,
        skip_connections: bool = True,
        separable: bool = False,
        upsampling: str = "transpose",
        high_res_skips: bool = False,
        full_res_skip: bool = False,
        name: str = "decoder",
        **kwargs,
    ):
        if upsampling not in UPSAMPLINGS:
            raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {upsampling!r}")
        high_res_skips = high_res_skips and skip_connections
        full_res_skip = full_res_skip and skip_connections
        identity = keras.Input((embedding_dim,), name="identity")
        audio = keras.Input((embedding_dim,), name="audio")
        skips = {
            "skip_14": keras.Input((14, 14, scaled(256, width)), name="skip_14"),
            "skip_6": keras.Input((6, 6, scaled(512, width)), name="skip_6"),
        }
        if high_res_skips:
            skips["skip_28"] = keras.Input((28, 28, scaled(96, width)), name="skip_28")
            skips["skip_56"] = keras.Input((56, 56, scaled(96, width)), name="skip_56")
        if full_res_skip:
            skips["skip_112"] = keras.Input((IMAGE_SIZE, IMAGE_SIZE, scaled(FULL_RES_FILTERS, width)), name="skip_112")

        def up(x, filters, size, name):  # (B, s, s, C) -> (B, size, size, filters)
            if upsampling == "resize":
                return resize_conv_bn_relu(x, filters, size, separable, name=name)
            if size == 14:  # 6 -> 14: kernel 4, stride 2, valid
                return deconv_bn_relu(x, filters, 4, strides=2, padding="valid", name=name)
            return deconv_bn_relu(x, filters, 4, name=name)

        def merge(x, size, filters):  # the identity's own map at this size, mixed in by a convolution
            x = keras.layers.Concatenate(name=f"concat_skip_{size}")([x, skips[f"skip_{size}"]])
            return conv_bn_relu(x, filters, 3, separable=separable, name=f"conv{size}")

        x = keras.layers.Concatenate(name="concat_vectors")([identity, audio])  # (B, 512)
        x = keras.layers.Reshape((1, 1, 2 * embedding_dim), name="to_map")(x)  # (B, 1, 1, 512)
        x = deconv_bn_relu(x, scaled(512, width), 6, strides=1, padding="valid", name="deconv6")  # (B, 6, 6, 512)
        if skip_connections:
            x = keras.layers.Concatenate(name="concat_skip_6")([x, skips["skip_6"]])
        x = conv_bn_relu(x, scaled(512, width), 3, separable=separable, name="conv6")  # (B, 6, 6, 512)
        x = up(x, scaled(256, width), 14, name="deconv14")  # (B, 14, 14, 256)
        if skip_connections:
            x = keras.layers.Concatenate(name="concat_skip_14")([x, skips["skip_14"]])
        x = conv_bn_relu(x, scaled(256, width), 3, separable=separable, name="conv14")  # (B, 14, 14, 256)
        x = up(x, scaled(128, width), 28, name="deconv28")  # (B, 28, 28, 128)
        if high_res_skips:
            x = merge(x, 28, scaled(128, width))  # (B, 28, 28, 128)
        x = up(x, scaled(64, width), 56, name="deconv56")  # (B, 56, 56, 64)
        if high_res_skips:
            x = merge(x, 56, scaled(64, width))  # (B, 56, 56, 64)
        if full_res_skip:  # a 112 px stage that sees the face's own pixels, then a 1 x 1 to RGB
            x = up(x, scaled(FULL_RES_FILTERS, width), IMAGE_SIZE, name="deconv112_up")  # (B, 112, 112, 32)
            x = merge(x, IMAGE_SIZE, scaled(FULL_RES_FILTERS, width))  # (B, 112, 112, 32)
            x = keras.layers.Conv2D(3, 1, name="to_rgb")(x)  # (B, 112, 112, 3)
        elif upsampling == "resize":
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name="deconv112_resize")(x)
            x = keras.layers.Conv2D(3, 3, padding="same", name="deconv112")(x)  # (B, 112, 112, 3)
        else:
            x = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="deconv112")(x)  # (B, 112, 112, 3)
        frame = keras.layers.Activation("sigmoid", name="frame")(x)
        inputs = {"identity": identity, "audio": audio}
        if skip_connections:
            inputs.update(skips)
        super().__init__(inputs=inputs, outputs=frame, name=name, **kwargs)
        self.width = width
        self.embedding_dim = embedding_dim
        self.skip_connections = skip_connections
        self.separable = separable
        self.upsampling = upsampling
        self.high_res_skips = high_res_skips
        self.full_res_skip = full_res_skip


@keras.saving.register_keras_serializable(package="keras_s2v")
class Speech2Vid(FunctionalModel):
    """{"faces": (B, 112, 112, 3 n), "mfcc": (B, 12, 35)} -> frame (B, 112, 112, 3).

    Faces and frames are float32 RGB in [0, 1]; n = ``num_identity_images``, plus
    the target frame first with ``masked_target``.
    """

    CONFIG_KEYS = (
        "num_identity_images",
        "width",
        "embedding_dim",
        "skip_connections",
        "separable",
        "upsampling",
        "high_res_skips",
        "masked_target",
        "full_res_skip",
    )

    def __init__(
        self,
        num_identity_images: int = 1,
        width: float = 1.0,
        embedding_dim: int = 256,
        skip_connections: bool = True,
        separable: bool = False,
        upsampling: str = "transpose",
        high_res_skips: bool = False,
        masked_target: bool = False,
        full_res_skip: bool = False,
        name: str = "speech2vid",
        **kwargs,
    ):
        high_res_skips = high_res_skips and skip_connections
        full_res_skip = full_res_skip and skip_connections
        identity_encoder = Speech2VidIdentityEncoder(
            num_identity_images, width, embedding_dim, separable, high_res_skips, masked_target, full_res_skip
        )
        audio_encoder = Speech2VidAudioEncoder(width, embedding_dim, separable)
        decoder = Speech2VidDecoder(
            width, embedding_dim, skip_connections, separable, upsampling, high_res_skips, full_res_skip
        )
        faces = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3 * (num_identity_images + masked_target)), name="faces")
        mfcc = keras.Input((audio_lib.MFCC_COEFFS, audio_lib.MFCC_WINDOW_HOPS), name="mfcc")
        identity = identity_encoder(faces)
        decoder_inputs = {"identity": identity["identity"], "audio": audio_encoder(mfcc)}
        if skip_connections:
            decoder_inputs.update({k: v for k, v in identity.items() if k != "identity"})
        frame = decoder(decoder_inputs)
        super().__init__(inputs={"faces": faces, "mfcc": mfcc}, outputs=frame, name=name, **kwargs)
        self.num_identity_images = num_identity_images
        self.width = width
        self.embedding_dim = embedding_dim
        self.skip_connections = skip_connections
        self.separable = separable
        self.upsampling = upsampling
        self.high_res_skips = high_res_skips
        self.masked_target = masked_target
        self.full_res_skip = full_res_skip
        self.identity_encoder = identity_encoder
        self.audio_encoder = audio_encoder
        self.decoder = decoder

    def frame_generator(self) -> keras.Model:
        """Identity outputs + one MFCC window -> one frame, sharing this model's weights.

        What runs per video frame once ``identity_encoder`` has run on the face.
        """
        identity = keras.Input((self.embedding_dim,), name="identity")
        mfcc = keras.Input((audio_lib.MFCC_COEFFS, audio_lib.MFCC_WINDOW_HOPS), name="mfcc")
        inputs = {"identity": identity, "mfcc": mfcc}
        decoder_inputs = {"identity": identity, "audio": self.audio_encoder(mfcc)}
        if self.skip_connections:
            for key, tensor in self.identity_encoder.output.items():
                if key != "identity":
                    inputs[key] = keras.Input(tensor.shape[1:], name=key)
                    decoder_inputs[key] = inputs[key]
        return keras.Model(inputs, self.decoder(decoder_inputs), name="frame_generator")
