"""Speech2Vid with an expert's lip-sync loss (Wav2Lip's lesson: a frozen sync expert makes mouths follow speech).

``LipSyncTrainer`` wraps a ``Speech2Vid`` (what ships, saved alone as ``model.keras``) and a frozen,
trained ``SyncNet``. It trains on windows of the expert's 5 frames: each ``train_step`` generates the
5 frames ``t - 2 .. t + 2`` from the still and each frame's own MFCC window, and the loss is

    reconstruction (``FaceReconstructionLoss`` over the 5 frames)
    + ``sync_weight`` x distance between the expert's embedding of the generated lower faces and of
      the 0.2 s of audio they span (the expert's in-sync pair; unit embeddings, so in [0, 2]).

    + ``adversarial_weight`` x the non-saturating GAN loss of a mouth-box discriminator (optional,
      Wav2Lip's visual-quality discriminator): L1 and the expert both accept a blurred mouth, the
      discriminator does not.

Either critic may train alone: without an expert (``sync_weight`` 0) the sync term and its
``sync_distance`` log are left out and the discriminator sharpens what L1 learnt. Regression alone
settles on an average mouth that barely moves; the expert's distance is only small when the mouth
moves with this audio. The generator's tape takes gradients over its weights
only (the expert stays frozen, BatchNorm in inference mode); the discriminator has its own tape and
optimizer. Every loss is a ``keras.losses.Loss`` called inside the replica, so MirroredStrategy
scales it right.
"""

from __future__ import annotations

from keras import ops

from keras_s2v.data import audio as audio_lib
from keras_s2v.data.face.align import lip_box
from keras_s2v.layers.sequence import fold_time
from keras_s2v.training.losses import EmbeddingDistance, adversarial_loss, fooled_loss, real_fake_loss
from keras_s2v.training.metrics import mean_psnr
from keras_s2v.training.trainer import Trainer

SYNC_WINDOW = audio_lib.SYNC_FRAMES  # frames per training sample
# Columns of the centre frame's 12 x 35 MFCC window that the expert pairs with the 5 frames
# (audio.sync_mfcc_slice relative to audio.mfcc_window of the same frame: 7 .. 27).
_SYNC_START = audio_lib.MFCC_WINDOW_HOPS // 2 - audio_lib.SYNC_MFCC_HOPS // 2


def sync_mfcc(audio):
    """(B, 5, 12, 35) per-frame MFCC windows -> (B, 12, 20): the expert's audio for the 5 frames."""
    return audio[:, SYNC_WINDOW // 2, :, _SYNC_START : _SYNC_START + audio_lib.SYNC_MFCC_HOPS]


class LipSyncTrainer(Trainer):
    """Trains ``generator`` with reconstruction + the frozen ``expert``'s sync distance (``expert`` None: without).

    Data: ``sequence_dataset`` windows of 5 frames with MFCC audio,
    ``({"faces": (B, S, S, 3), "audio": (B, 5, 12, 35)}, frames (B, 5, S, S, 3))``.
    Logs ``loss`` (the total, also the validation monitor), ``reconstruction``, ``sync_distance``
    (lower is better synced) and ``psnr``.
    """

    def __init__(self, generator, expert=None, discriminator=None, **kwargs):
        if expert is None and discriminator is None:
            raise ValueError("LipSyncTrainer needs a sync expert, a mouth discriminator or both")
        names = ("loss", "reconstruction") + (("sync_distance",) if expert is not None else ()) + ("psnr",)
        if discriminator is not None:
            names += ("adversarial", "d_loss")
        super().__init__("generator", names, name="lipsync", **kwargs)
        self.generator = generator
        self.expert = expert
        if expert is not None:
            self.expert.trainable = False
        self.crop = getattr(expert, "crop", "lower_half")
        self.discriminator = discriminator  # a FrameDiscriminator of mouth boxes, or None

    def compile(
        self,
        optimizer,
        reconstruction_loss,
        sync_weight: float = 0.1,
        d_optimizer=None,
        adversarial_weight: float = 0.0,
        **kwargs,
    ):
        super().compile(**kwargs)
        self.g_optimizer = optimizer
        optimizer.build(self.generator.trainable_variables)  # under the caller's strategy scope
        self.reconstruction_loss = reconstruction_loss
        self.sync_weight = sync_weight
        self.sync_loss = EmbeddingDistance()
        self.adversarial_weight = adversarial_weight
        if self.discriminator is not None:
            self.d_optimizer = d_optimizer
            d_optimizer.build(self.discriminator.trainable_variables)
            self.gan_loss = adversarial_loss("gan")

    def mouth_logits(self, frames, stills, training=True):
        """The discriminator's logits for (B, 5, S, S, 3) frames' mouth boxes, each beside its still's."""
        steps = ops.shape(frames)[1]
        top, left, side = lip_box(int(self.generator.output.shape[1]))
        mouths = fold_time(frames)[:, top : top + side, left : left + side]
        still = ops.repeat(stills[..., :3], steps, axis=0)[:, top : top + side, left : left + side]
        return self.discriminator({"frame": mouths, "still": still}, training=training)

    def call(self, inputs, training=False, targets=None):
        """(B, 5, S, S, 3): every frame of the window from the still and its own MFCC window.

        A ``masked_target`` generator also gets each frame of ``targets`` (B, 5, S, S, 3)
        (the real window) before the still, and sees only their upper halves; without
        ``targets`` the still is its own target, as a photo is.
        """
        faces, audio = inputs["faces"], inputs["audio"]
        steps = ops.shape(audio)[1]
        faces = ops.repeat(faces, steps, axis=0)  # (B 5, S, S, 3 n)
        if getattr(self.generator, "masked_target", False):
            target = faces[..., :3] if targets is None else fold_time(targets)
            faces = ops.concatenate([target, faces], axis=-1)  # (B 5, S, S, 3 (n + 1))
        frames = self.generator({"faces": faces, "mfcc": fold_time(audio)}, training=training)
        return ops.reshape(frames, (-1, steps, *frames.shape[1:]))

    def sync_embeddings(self, frames, audio):
        """The expert's (video, audio) embeddings of generated 5-frame windows and their audio, (B, D) each."""
        from keras_s2v.data import pipeline

        lips = pipeline.lips(frames, self.crop, int(frames.shape[-2]))  # (B, 5, H, W)
        video = self.expert.video_encoder(ops.transpose(lips, (0, 2, 3, 1)), training=False)
        speech = self.expert.audio_encoder(sync_mfcc(audio), training=False)
        return video, speech

    def _generate_and_score(self, inputs, truth, training):
        frames = self(inputs, training=training, targets=truth)
        reconstruction = self.reconstruction_loss(fold_time(truth), fold_time(frames))
        if self.expert is None:
            return frames, reconstruction, None, reconstruction
        video, speech = self.sync_embeddings(frames, inputs["audio"])
        sync = self.sync_loss(speech, video)
        return frames, reconstruction, sync, reconstruction + self.sync_weight * sync

    def train_step(self, data):
        import tensorflow as tf

        inputs, truth = data[0], data[1]
        with tf.GradientTape() as tape:
            frames, reconstruction, sync, loss = self._generate_and_score(inputs, truth, training=True)
            if self.discriminator is not None:
                fake = self.mouth_logits(frames, inputs["faces"])
                adversarial = fooled_loss(self.gan_loss, fake)
                loss = loss + self.adversarial_weight * adversarial
            scaled = self.g_optimizer.scale_loss(loss)  # mixed_float16's loss scale; else the loss
        grads = tape.gradient(scaled, self.generator.trainable_weights)
        self.g_optimizer.apply(grads, self.generator.trainable_weights)
        if self.discriminator is not None:
            with tf.GradientTape() as d_tape:
                d_loss = self.discriminator_loss(inputs, truth, ops.stop_gradient(frames))
                scaled = self.d_optimizer.scale_loss(d_loss)
            d_grads = d_tape.gradient(scaled, self.discriminator.trainable_weights)
            self.d_optimizer.apply(d_grads, self.discriminator.trainable_weights)
            self.track_losses(adversarial=adversarial, d_loss=d_loss)
        return self._log(frames, truth, reconstruction, sync, loss)

    def discriminator_loss(self, inputs, truth, frames, training=True):
        real = self.mouth_logits(truth, inputs["faces"], training)
        fake = self.mouth_logits(frames, inputs["faces"], training)
        return real_fake_loss(self.gan_loss, real, fake)

    def test_step(self, data):
        inputs, truth = data[0], data[1]
        frames, reconstruction, sync, loss = self._generate_and_score(inputs, truth, training=False)
        if self.discriminator is not None:  # the validation monitor stays the generator's loss without it
            fake = self.mouth_logits(frames, inputs["faces"], training=False)
            self.track_losses(
                adversarial=fooled_loss(self.gan_loss, fake),
                d_loss=self.discriminator_loss(inputs, truth, frames, training=False),
            )
        return self._log(frames, truth, reconstruction, sync, loss)

    def _log(self, frames, truth, reconstruction, sync, loss):
        self.track_losses(loss=loss, reconstruction=reconstruction)
        if sync is not None:
            self.track_losses(sync_distance=sync)
        self.trackers["psnr"].update_state(mean_psnr(truth, frames))
        return self.results()
