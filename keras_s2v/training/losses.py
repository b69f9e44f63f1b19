"""Every loss the trainers use, in one place, each a ``keras.losses.Loss`` so replicas scale it right.

Under ``MirroredStrategy`` a ``keras.losses.Loss`` called inside the replica divides by the global
batch, so the summed gradients are those of the global batch; a bare ``ops.mean`` would not be.
``unscaled`` takes such a per-replica value back to the global-batch scale for the logs.

* frame generators: ``FaceReconstructionLoss`` (Speech2Vid), ``LowerFaceL1`` (the temporal GAN);
* the sync expert: ``OffsetContrastiveLoss``, and ``EmbeddingDistance`` (its in-sync distance as
  Speech2Vid's lip-sync loss, ``training.lipsync``);
* lips at a glance: ``CorrelationLoss``, ``PerceptualLoss``, and the flow network's
  ``PhotometricLoss`` and ``FlowSmoothness``;
* GANs: ``adversarial_loss`` (binary cross-entropy on logits), ``real_fake_loss`` (a discriminator's
  real-as-real plus generated-as-fake) and ``fooled_loss`` (a generator's generated-as-real).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_s2v.data.face.align import lip_box

EPSILON = 1e-8  # the glance paper's epsilon in the cosine's denominator; also in unit()


def unscaled(value):
    """A replica's scaled loss back at the global-batch scale, for the logs."""
    import tensorflow as tf

    return value * tf.distribute.get_strategy().num_replicas_in_sync


# --- Reconstruction ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_s2v")
class FaceReconstructionLoss(keras.losses.Loss):
    """L1 over the face + ``mouth_weight`` x L1 over the mouth box + ``ssim_weight`` x (1 - SSIM) of the mouth box.

    Plain L1 over the whole 112 x 112 face (the paper) spends most of its gradient on the
    cheeks and background the identity skips already give, and settles on an average, blurred
    mouth. Weighting the mouth box (``align.lip_box``: rows 45..100, columns 28..83 at 112)
    puts the model's capacity where the speech is, and SSIM rewards the mouth's edges and
    texture, which L1 alone trades for blur (Zhao et al., "Loss functions for image
    restoration with neural networks", 2017). With both weights 0 this is the paper's L1.
    """

    def __init__(
        self,
        mouth_weight: float = 0.0,
        ssim_weight: float = 0.0,
        image_size: int = 112,
        name: str = "face_reconstruction",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.mouth_weight, self.ssim_weight, self.image_size = mouth_weight, ssim_weight, image_size

    def mouth(self, images):
        top, left, side = lip_box(self.image_size)
        return images[:, top : top + side, left : left + side, :]

    def call(self, y_true, y_pred):
        loss = ops.mean(ops.abs(y_true - y_pred), axis=(1, 2, 3))  # (B,)
        if self.mouth_weight:
            loss += self.mouth_weight * ops.mean(ops.abs(self.mouth(y_true) - self.mouth(y_pred)), axis=(1, 2, 3))
        if self.ssim_weight:
            import tensorflow as tf

            loss += self.ssim_weight * (1.0 - tf.image.ssim(self.mouth(y_true), self.mouth(y_pred), max_val=1.0))
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "mouth_weight": self.mouth_weight,
            "ssim_weight": self.ssim_weight,
            "image_size": self.image_size,
        }


@keras.saving.register_keras_serializable(package="keras_s2v")
class LowerFaceL1(keras.losses.Loss):
    """Mean absolute error over the lower half of each frame (rows S/2..S): the mouth and jaw."""

    def __init__(self, name: str = "lower_face_l1", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        rows = ops.shape(y_true)[-3]
        difference = ops.abs(y_true[..., rows // 2 :, :, :] - y_pred[..., rows // 2 :, :, :])
        return ops.mean(difference, axis=(-3, -2, -1))  # (B,) or (B, T)


# --- Sync -------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_s2v")
class OffsetContrastiveLoss(keras.losses.Loss):
    """The sync expert's loss (``models.syncnet.SyncNet``): softmax cross-entropy over offsets, logits
    ``-distance / temperature``; ``y_true`` is the in-sync index.

    A multi-way form of the contrastive loss (Chung et al., "Perfect match", ICASSP 2019) that
    trains faster than pairwise margins.
    """

    def __init__(self, temperature: float = 0.1, name: str = "offset_contrastive", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.sparse_categorical_crossentropy(labels, -y_pred / self.temperature, from_logits=True)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="keras_s2v")
class EmbeddingDistance(keras.losses.Loss):
    """Euclidean distance between two (B, D) embeddings, per sample: the sync expert's in-sync distance."""

    def __init__(self, name: str = "embedding_distance", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return ops.sqrt(ops.sum(ops.square(y_true - y_pred), axis=-1) + 1e-8)


# --- Lips at a glance -------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_s2v")
class CorrelationLoss(keras.losses.Loss):
    """``1 - cos(a, v)`` per sample, of audio features ``a`` and visual features ``v`` (B, T, D), in [0, 2].

    Each feature channel is centred over time first (a Pearson correlation
    over the whole clip): phi_s and phi_v learn with the generator, and
    without centring both could output one constant vector and make the
    cosine 1 whatever the audio. After centring, only features that change
    together over time score.
    """

    def __init__(self, name: str = "correlation", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        a = y_true - ops.mean(y_true, axis=1, keepdims=True)
        v = y_pred - ops.mean(y_pred, axis=1, keepdims=True)
        dot = ops.sum(a * v, axis=(1, 2))
        norms = ops.sqrt(ops.sum(ops.square(a), axis=(1, 2))) * ops.sqrt(ops.sum(ops.square(v), axis=(1, 2)))
        return 1.0 - dot / (norms + EPSILON)


class PerceptualLoss(keras.losses.Loss):
    """Squared distance of the frozen autoencoder's features of real and generated frames, any leading axes.

    Each position's feature vector is scaled to unit length first (as LPIPS
    does): the raw scale of a freshly trained encoder's features is arbitrary
    (about 58 on the first steps of ``glance_tiny``, 0.9 for the correlation
    term), and the paper's weight of 1 assumes terms of like size. In [0, 4].
    """

    def __init__(self, encoder, name: str = "perceptual", **kwargs):
        super().__init__(name=name, **kwargs)
        self.encoder = encoder

    def call(self, y_true, y_pred):
        batch = ops.shape(y_true)[0]
        real = unit(self.encoder(ops.reshape(y_true, (-1, *y_true.shape[-3:])), training=False))
        fake = unit(self.encoder(ops.reshape(y_pred, (-1, *y_pred.shape[-3:])), training=False))
        squared = ops.sum(ops.square(real - fake), axis=-1)  # (B T, h, w)
        return ops.mean(ops.reshape(squared, (batch, -1)), axis=-1)


def unit(features):
    """Feature vectors (last axis) scaled to unit length."""
    return features / (ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True)) + EPSILON)


@keras.saving.register_keras_serializable(package="keras_s2v")
class PhotometricLoss(keras.losses.Loss):
    """Charbonnier distance sqrt(d^2 + 1e-6) of a frame and its neighbour warped onto it (robust to occlusions)."""

    def __init__(self, name: str = "photometric", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return ops.mean(ops.sqrt(ops.square(y_true - y_pred) + 1e-6), axis=(-3, -2, -1))


@keras.saving.register_keras_serializable(package="keras_s2v")
class FlowSmoothness(keras.losses.Loss):
    """Mean absolute first-order gradient of a flow field (B, H, W, 2): neighbouring pixels move alike."""

    def __init__(self, name: str = "smoothness", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        dx = ops.abs(y_pred[:, :, 1:] - y_pred[:, :, :-1])
        dy = ops.abs(y_pred[:, 1:] - y_pred[:, :-1])
        return ops.mean(dx, axis=(1, 2, 3)) + ops.mean(dy, axis=(1, 2, 3))


# --- Adversarial ------------------------------------------------------------------------------


def adversarial_loss(name: str = "adversarial"):
    """The GANs' loss: binary cross-entropy of a discriminator's logits."""
    return keras.losses.BinaryCrossentropy(from_logits=True, name=name)


def real_fake_loss(loss, real_logits, fake_logits):
    """A discriminator's loss: ``real_logits`` scored real plus ``fake_logits`` scored fake."""
    return loss(ops.ones_like(real_logits), real_logits) + loss(ops.zeros_like(fake_logits), fake_logits)


def fooled_loss(loss, fake_logits):
    """A generator's (non-saturating) adversarial loss: its frames' logits scored real."""
    return loss(ops.ones_like(fake_logits), fake_logits)
