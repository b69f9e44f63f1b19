"""Temporal GAN training: a trainer model with one tape and one optimizer per player.

``TemporalGANTrainer`` wraps a ``TemporalGenerator`` (what ships, saved
alone as ``model.keras``) and the two discriminators (what only trains).
Each ``train_step``:

1. generator: frames from the still, the audio and fresh noise
   (``keras.random.SeedGenerator``); loss = ``l1_weight`` x L1 on the lower
   half of the face + both adversarial terms; gradients over the generator's
   weights only;
2. frame discriminator: real vs generated frames, each beside the still;
3. sequence discriminator: real vs generated sequences with their audio.

The discriminators see the frames generated before this step's generator
update. Every loss is a ``keras.losses.Loss`` called inside the replica, so
under ``MirroredStrategy`` it is scaled by 1 / replicas and the summed
gradients are those of the global batch.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_s2v.layers.sequence import fold_time
from keras_s2v.training.losses import LowerFaceL1, adversarial_loss, fooled_loss, real_fake_loss
from keras_s2v.training.metrics import mean_psnr
from keras_s2v.training.trainer import Trainer


class TemporalGANTrainer(Trainer):
    """Trains ``generator`` against ``frame_discriminator`` and ``sequence_discriminator``.

    Data: ``({"faces": (B, S, S, 3), "audio": (B, T, *window)}, frames (B, T, S, S, 3))``.
    Logs ``loss`` (lower-face L1, the validation monitor too), ``g_loss``,
    ``g_adversarial``, ``d_frame``, ``d_sequence`` and how often each
    discriminator scores real above generated (``d_frame_real_wins``,
    ``d_sequence_real_wins``).
    """

    def __init__(self, generator, frame_discriminator, sequence_discriminator, seed: int = 0, **kwargs):
        names = (
            "loss",
            "g_loss",
            "g_adversarial",
            "d_frame",
            "d_sequence",
            "d_frame_real_wins",
            "d_sequence_real_wins",
            "psnr",
        )
        super().__init__("generator", names, name="temporal_gan", **kwargs)
        self.generator = generator
        self.frame_discriminator = frame_discriminator
        self.sequence_discriminator = sequence_discriminator
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compile(self, g_optimizer, d_frame_optimizer, d_sequence_optimizer, l1_weight: float = 400.0, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_frame_optimizer = d_frame_optimizer
        self.d_sequence_optimizer = d_sequence_optimizer
        # Built here, under the caller's strategy scope: built lazily inside the distributed step,
        # their slots fail with 2+ replicas (unfed placeholders in a cond).
        for optimizer, player in (
            (g_optimizer, self.generator),
            (d_frame_optimizer, self.frame_discriminator),
            (d_sequence_optimizer, self.sequence_discriminator),
        ):
            optimizer.build(player.trainable_variables)
        self.l1_weight = l1_weight
        self.reconstruction_loss = LowerFaceL1()
        self.adversarial_loss = adversarial_loss()

    def noise(self, audio, stddev=None):
        """(B, T, N) Gaussian noise for a batch of audio sequences."""
        shape = (ops.shape(audio)[0], ops.shape(audio)[1], self.generator.noise_dim)
        stddev = self.generator.noise_std if stddev is None else stddev
        return keras.random.normal(shape, stddev=stddev, seed=self.seed_generator)

    def call(self, inputs, training=False):
        return self.generator({**inputs, "noise": self.noise(inputs["audio"])}, training=training)

    def _frame_logits(self, frames, still, training=True):
        """(B T, 1): every frame beside its sequence's still."""
        still = ops.repeat(still, ops.shape(frames)[1], axis=0)
        return self.frame_discriminator({"frame": fold_time(frames), "still": still}, training=training)

    def _discriminator_losses(self, inputs, real, fake):
        """(d_frame loss, d_sequence loss, their tapes' gradients), one tape per discriminator."""
        import tensorflow as tf

        bce = self.adversarial_loss
        with tf.GradientTape() as tape:
            real_logits = self._frame_logits(real, inputs["faces"])
            fake_logits = self._frame_logits(fake, inputs["faces"])
            d_frame = real_fake_loss(bce, real_logits, fake_logits)
            scaled = self.d_frame_optimizer.scale_loss(d_frame)  # mixed_float16's loss scale; else d_frame
        frame_grads = tape.gradient(scaled, self.frame_discriminator.trainable_weights)
        with tf.GradientTape() as tape:
            real_seq = self.sequence_discriminator({"frames": real, "audio": inputs["audio"]}, training=True)
            fake_seq = self.sequence_discriminator({"frames": fake, "audio": inputs["audio"]}, training=True)
            d_sequence = real_fake_loss(bce, real_seq, fake_seq)
            scaled = self.d_sequence_optimizer.scale_loss(d_sequence)
        sequence_grads = tape.gradient(scaled, self.sequence_discriminator.trainable_weights)
        self.track_losses(d_frame=d_frame, d_sequence=d_sequence)
        self.trackers["d_frame_real_wins"].update_state(ops.cast(real_logits > fake_logits, "float32"))
        self.trackers["d_sequence_real_wins"].update_state(ops.cast(real_seq > fake_seq, "float32"))
        return frame_grads, sequence_grads

    def _apply_discriminators(self, frame_grads, sequence_grads):
        self.d_frame_optimizer.apply_gradients(zip(frame_grads, self.frame_discriminator.trainable_weights))
        self.d_sequence_optimizer.apply_gradients(zip(sequence_grads, self.sequence_discriminator.trainable_weights))

    def train_step(self, data):
        import tensorflow as tf

        inputs, real, _ = keras.utils.unpack_x_y_sample_weight(data)
        noise = self.noise(inputs["audio"])
        with tf.GradientTape() as tape:
            fake = self.generator({**inputs, "noise": noise}, training=True)
            frame_logits = self._frame_logits(fake, inputs["faces"])
            sequence_logits = self.sequence_discriminator({"frames": fake, "audio": inputs["audio"]}, training=True)
            adversarial = fooled_loss(self.adversarial_loss, frame_logits) + fooled_loss(
                self.adversarial_loss, sequence_logits
            )
            l1 = self.reconstruction_loss(real, fake)
            g_loss = adversarial + self.l1_weight * l1
            scaled = self.g_optimizer.scale_loss(g_loss)
        g_grads = tape.gradient(scaled, self.generator.trainable_weights)
        frame_grads, sequence_grads = self._discriminator_losses(inputs, real, ops.stop_gradient(fake))
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_weights))
        self._apply_discriminators(frame_grads, sequence_grads)
        self.track_losses(loss=l1, g_loss=g_loss, g_adversarial=adversarial)
        self.trackers["psnr"].update_state(mean_psnr(real, fake))
        return self.results()

    def train_discriminators(self, data):
        """One step of the discriminators alone against the current generator (sanity checks, warm-up)."""
        inputs, real, _ = keras.utils.unpack_x_y_sample_weight(data)
        fake = self.generator({**inputs, "noise": self.noise(inputs["audio"])}, training=False)
        self._apply_discriminators(*self._discriminator_losses(inputs, real, ops.stop_gradient(fake)))
        return self.results("d_frame", "d_sequence")

    def test_step(self, data):
        """Reconstruction of held-out sequences with zero noise (the model's mean behaviour)."""
        inputs, real, _ = keras.utils.unpack_x_y_sample_weight(data)
        fake = self.generator({**inputs, "noise": self.noise(inputs["audio"], stddev=0.0)}, training=False)
        self.track_losses(loss=self.reconstruction_loss(real, fake))
        self.trackers["psnr"].update_state(mean_psnr(real, fake))
        return self.results("loss", "psnr")


class LearningRateDrop(keras.callbacks.Callback):
    """Multiply the named optimizers' rates by ``factor`` from epoch ``epoch`` (1-based) on; 0 turns it off.

    Set at the start of every epoch from the base rates, so a resumed run gets the right rate too.
    """

    def __init__(self, rates: dict, epoch: int, factor: float):
        super().__init__()
        self.rates, self.epoch, self.factor = dict(rates), epoch, factor

    def on_epoch_begin(self, epoch, logs=None):
        drop = self.epoch > 0 and epoch + 1 > self.epoch
        for name, base in self.rates.items():
            getattr(self.model, name).learning_rate = base * (self.factor if drop else 1.0)
