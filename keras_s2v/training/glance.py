"""Lips-at-a-glance training (Chen et al. 2018): trainers with one tape per player (losses: ``training.losses``).

Before the generator trains, two helpers are trained and frozen:

* ``FlowTrainer``: the lip flow network, self-supervised on consecutive lip
  frames (photometric Charbonnier loss of the warped second frame against
  the first + first-order smoothness). The paper fine-tunes a pretrained
  FlowNet, which cannot be downloaded here; this small network is
  differentiable, so the correlation loss and the discriminator's flow stream
  pass gradients through it to the generated frames.
* the perceptual autoencoder (``LipAutoencoder``), trained to reconstruct lip
  frames with L1; its encoder is the perceptual loss's phi.

``GlanceTrainer.train_step``:

1. generator player (generator + phi_s + phi_v, one tape):
   ``L = w_corr l_corr + w_pix l_pix + w_perc l_perc + w_adv l_gen``, with
   l_corr the audio-visual derivative correlation of the generated clip (the
   real clip's correlation also trains phi_s and phi_v; it has no gradient
   into the generator);
2. discriminator (one tape): real pairs scored real; generated pairs
   (weight lambda_u) and real video with another sample's audio (the batch
   rolled by one; weight lambda_p) scored fake.

Every loss is a ``keras.losses.Loss`` called inside the replica, so under
``MirroredStrategy`` it is scaled by 1 / replicas and the summed gradients
are those of the global batch.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_s2v.data import audio as audio_lib
from keras_s2v.layers.sequence import fold_time
from keras_s2v.training.losses import (
    CorrelationLoss,
    FlowSmoothness,
    PerceptualLoss,
    PhotometricLoss,
    adversarial_loss,
    fooled_loss,
)
from keras_s2v.training.metrics import mean_psnr
from keras_s2v.training.trainer import Trainer

CORRELATIONS = ("derivative", "plain", "none")
MOTIONS = ("flow", "difference")


FLOW_SCALES = (1, 2, 4)  # photometric loss on the pair and its 2x, 4x average-pooled copies


def warped_pair(first, second, flow, scale: int = 1):
    """(first, second warped onto it by the flow) at 1 / ``scale`` resolution.

    The coarse copies see a motion of several pixels as one: the bilinear
    warp's gradient reaches only one pixel, so at full size alone a flow
    network barely leaves zero on lips moving 2-4 px a frame.
    """
    from keras_s2v.models.lip_motion import warp

    if scale > 1:
        first, second, flow = (ops.average_pool(x, scale, scale) for x in (first, second, flow))
        flow = flow / scale
    return first, warp(second, flow)


def frame_pairs(clips):
    """(B, T, H, W, C) -> (first, second) (B (T-1), H, W, C): every pair of consecutive frames."""
    return fold_time(clips[:, :-1]), fold_time(clips[:, 1:])


def farneback_flows(first, second):
    """(N, H, W, 3) frame pairs in [0, 1] -> (N, H, W, 2) float32 flows, ``first[y, x] ~ second[y + dy, x + dx]``.

    OpenCV's Farneback (2003) dense flow on the grey frames: the classical
    teacher the flow network starts from (``FlowTrainer``).
    """
    import cv2

    def grey(frame):
        return cv2.cvtColor((np.clip(frame, 0.0, 1.0) * 255.0).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)

    flows = [
        cv2.calcOpticalFlowFarneback(grey(a), grey(b), None, 0.5, 3, 9, 3, 5, 1.1, 0)
        for a, b in zip(np.asarray(first), np.asarray(second))
    ]
    return np.stack(flows).astype(np.float32) if flows else np.zeros((0, *np.shape(first)[1:3], 2), np.float32)


def clips_and_teacher_flows(inputs, clips):
    """Flow pretraining pairs: lip clips (B, T, 64, 64, 3) and the Farneback flow of every consecutive pair
    (B, T-1, 64, 64, 2), computed in the input pipeline."""
    import tensorflow as tf

    first, second = frame_pairs(clips)
    flows = tf.numpy_function(farneback_flows, [first, second], tf.float32, stateful=False)
    flows = tf.reshape(flows, tf.concat([tf.shape(clips)[:1], [-1], tf.shape(clips)[2:4], [2]], 0))
    return clips, tf.ensure_shape(flows, [None, clips.shape[1] - 1, *clips.shape[2:4], 2])


class FlowTrainer(Trainer):
    """Trains a ``LipFlowNet`` on lip clips; ``shipped`` is the flow network.

    Data: ``(clips (B, T, 64, 64, 3), teacher flows (B, T-1, 64, 64, 2))``
    (``pipeline.glance_dataset`` through ``clips_and_teacher_flows``).
    ``loss`` = photometric (``FLOW_SCALES``) + ``smoothness_weight`` x
    smoothness + ``teacher_weight`` x L1 to the Farneback flow. Photometric and
    smoothness alone left the network at zero flow after 150 steps on lips
    that move 2-4 px a frame (the warp's gradient reaches one pixel); the
    classical teacher starts it where a CPU budget can finish it, and the
    photometric term then refines what Farneback gets wrong. No labels either way.
    """

    def __init__(self, flow_net, smoothness_weight: float = 0.05, teacher_weight: float = 1.0, **kwargs):
        names = ("loss", "photometric", "smoothness", "teacher", "zero_flow_photometric")
        super().__init__("flow_net", names, name="flow_trainer", **kwargs)
        self.flow_net = flow_net
        self.smoothness_weight, self.teacher_weight = smoothness_weight, teacher_weight
        self.photometric = PhotometricLoss()
        self.smoothness = FlowSmoothness()
        self.teacher = keras.losses.MeanSquaredError(name="teacher")

    def call(self, clips, training=False):
        first, second = frame_pairs(clips)
        return self.flow_net({"first": first, "second": second}, training=training)

    def _flow_losses(self, clips, teacher, training):
        first, second = frame_pairs(clips)
        flow = self.flow_net({"first": first, "second": second}, training=training)
        terms = {
            "photometric": sum(self.photometric(*warped_pair(first, second, flow, s)) for s in FLOW_SCALES)
            / len(FLOW_SCALES),
            "smoothness": self.smoothness(flow, flow),
            "teacher": self.teacher(fold_time(teacher), flow),
        }
        loss = (
            terms["photometric"] + self.smoothness_weight * terms["smoothness"] + self.teacher_weight * terms["teacher"]
        )
        terms["zero_flow_photometric"] = self.photometric(first, second)  # what the flow must beat
        return loss, terms

    def train_step(self, data):
        import tensorflow as tf

        clips, teacher, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss, terms = self._flow_losses(clips, teacher, True)
            scaled = self.optimizer.scale_loss(loss)  # mixed_float16's loss scale; else the loss
        grads = tape.gradient(scaled, self.flow_net.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.flow_net.trainable_weights))
        return self._track(loss, terms)

    def test_step(self, data):
        clips, teacher, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(*self._flow_losses(clips, teacher, False))

    def _track(self, loss, terms):
        self.track_losses(loss=loss, **terms)
        return self.results()


def frame_audio(log_mel, frames: int):
    """(B, 4 T, 128) log-mel -> (B, T, 128): each video frame's 4 spectral rows averaged."""
    return ops.mean(ops.reshape(log_mel, (-1, frames, audio_lib.HOPS_PER_FRAME, audio_lib.LOG_MEL_BANDS)), axis=2)


class GlanceTrainer(Trainer):
    """Trains a ``GlanceGenerator`` against a ``ThreeStreamDiscriminator``.

    ``flow_net`` (frozen) gives the motion of real and generated clips
    (``motion="difference"``: frame differences instead, the paper's
    ablation); ``perceptual_encoder`` (frozen) the perceptual features;
    ``audio_encoder`` (phi_s) and ``motion_encoder`` (phi_v) the correlation
    features, trained with the generator. ``correlation``: ``derivative``
    (audio features' temporal derivative against the motion), ``plain``
    (audio features against the frames themselves) or ``none``.

    Data: ``({"lips": (B, 64, 64, 3), "log_mel": (B, 4 T, 128)}, clips (B, T, 64, 64, 3))``.
    Logs ``loss`` (L1, the validation monitor), ``g_loss``, each generator term,
    ``d_loss`` and how often the discriminator scores the real pair above the
    generated one (``d_real_wins``) and above the mismatched one (``d_mismatch_wins``).
    """

    def __init__(
        self,
        generator,
        discriminator,
        flow_net=None,
        perceptual_encoder=None,
        audio_encoder=None,
        motion_encoder=None,
        correlation: str = "derivative",
        motion: str = "flow",
        seed: int = 0,
        **kwargs,
    ):
        names = (
            "loss",
            "g_loss",
            "correlation",
            "correlation_real",
            "pixel",
            "perceptual",
            "adversarial",
            "d_loss",
            "d_real_wins",
            "d_mismatch_wins",
            "psnr",
        )
        super().__init__("generator", names, name="glance_trainer", **kwargs)
        if correlation not in CORRELATIONS:
            raise ValueError(f"unknown correlation {correlation!r} ({', '.join(CORRELATIONS)})")
        if motion not in MOTIONS:
            raise ValueError(f"unknown motion {motion!r} ({', '.join(MOTIONS)})")
        if motion == "flow" and flow_net is None and (correlation == "derivative" or _uses_motion(discriminator)):
            raise ValueError("motion 'flow' needs a trained flow network")
        self.generator = generator
        self.discriminator = discriminator
        self.flow_net, self.perceptual_encoder = flow_net, perceptual_encoder
        self.audio_encoder, self.motion_encoder = audio_encoder, motion_encoder
        self.correlation, self.motion = correlation, motion
        for frozen in (flow_net, perceptual_encoder):
            if frozen is not None:
                frozen.trainable = False

    def compile(
        self,
        g_optimizer,
        d_optimizer,
        correlation_weight: float = 1.0,
        pixel_weight: float = 0.5,
        perceptual_weight: float = 1.0,
        adversarial_weight: float = 1.0,
        mismatch_weight: float = 0.5,
        generated_weight: float = 0.5,
        **kwargs,
    ):
        super().compile(**kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.weights_ = {
            "correlation": correlation_weight if self.correlation != "none" else 0.0,
            "pixel": pixel_weight,
            "perceptual": perceptual_weight,
            "adversarial": adversarial_weight,
        }
        if self.weights_["perceptual"] and self.perceptual_encoder is None:
            raise ValueError("a perceptual loss weight without a trained perceptual autoencoder")
        self.mismatch_weight, self.generated_weight = mismatch_weight, generated_weight
        # Built here, under the caller's strategy scope (see training.gan).
        g_optimizer.build(self.generator_player_weights)
        d_optimizer.build(self.discriminator.trainable_variables)
        self.pixel_loss = keras.losses.MeanAbsoluteError(name="pixel")
        self.perceptual_loss = PerceptualLoss(self.perceptual_encoder) if self.perceptual_encoder is not None else None
        self.correlation_loss = CorrelationLoss()
        self.adversarial_loss = adversarial_loss()

    @property
    def generator_player_weights(self):
        extra = [m for m in (self.audio_encoder, self.motion_encoder) if m is not None and self.correlation != "none"]
        return [w for model in (self.generator, *extra) for w in model.trainable_weights]

    # --- motion and correlation -----------------------------------------------------------------

    def clip_motion(self, clips):
        """(B, T, 64, 64, 3) -> (B, T-1, 64, 64, M): flow (M = 2) or frame differences (M = 3)."""
        from keras_s2v.models.lip_motion import clip_motion

        return clip_motion(self.flow_net, clips, self.motion)

    def correlation_of(self, clips, motion, log_mel):
        """(B,) 1 - cos of phi_s(audio change) and phi_v(motion); ``plain``: audio against the frames."""
        audio = frame_audio(log_mel, log_mel.shape[1] // audio_lib.HOPS_PER_FRAME)  # (B, T, 128)
        if self.correlation == "derivative":
            audio, visual = (audio[:, 1:] - audio[:, :-1], motion)  # (B, T-1, 128), (B, T-1, 64, 64, M)
        else:
            audio, visual = audio[:, 1:], clips[:, 1:]
        return self.correlation_loss(
            self.audio_encoder(audio, training=True), self.motion_encoder(visual, training=True)
        )

    def _discriminate(self, clips, motion, log_mel, training=True):
        inputs = {"frames": ops.convert_to_tensor(clips), "log_mel": ops.convert_to_tensor(log_mel)}
        if _uses_motion(self.discriminator):
            inputs["motion"] = ops.convert_to_tensor(motion)
        return self.discriminator(inputs, training=training)

    # --- steps ----------------------------------------------------------------------------------

    def train_step(self, data):
        import tensorflow as tf

        inputs, real, _ = keras.utils.unpack_x_y_sample_weight(data)
        log_mel = inputs["log_mel"]
        mismatched = ops.roll(log_mel, 1, axis=0)  # another sample's audio (the batch holds other windows)
        needs_motion = self.correlation == "derivative" or _uses_motion(self.discriminator)
        real_motion = self.clip_motion(real) if needs_motion else None
        w = self.weights_
        zero = ops.zeros(())
        with tf.GradientTape() as tape:
            fake = self.generator(inputs, training=True)
            fake_motion = self.clip_motion(fake) if needs_motion else None
            terms = {
                "pixel": self.pixel_loss(real, fake),
                "perceptual": zero,
                "correlation": zero,
                "correlation_real": zero,
                "adversarial": zero,
            }
            if w["perceptual"]:
                terms["perceptual"] = self.perceptual_loss(real, fake)
            if w["correlation"]:
                terms["correlation"] = self.correlation_of(fake, fake_motion, log_mel)
                terms["correlation_real"] = self.correlation_of(real, real_motion, log_mel)  # trains phi only
            if w["adversarial"]:
                logits = self._discriminate(fake, fake_motion, log_mel)
                terms["adversarial"] = fooled_loss(self.adversarial_loss, logits)
            g_loss = sum(w[k] * terms[k] for k in w)
            tape_loss = self.g_optimizer.scale_loss(g_loss + w["correlation"] * terms["correlation_real"])
        player = self.generator_player_weights
        g_grads = tape.gradient(tape_loss, player)
        if w["adversarial"]:
            self._discriminator_step(
                real,
                real_motion,
                ops.stop_gradient(fake),
                None if fake_motion is None else ops.stop_gradient(fake_motion),
                log_mel,
                mismatched,
            )
        self.g_optimizer.apply_gradients(zip(g_grads, player))
        self.track_losses(loss=terms["pixel"], g_loss=g_loss, **terms)
        self.trackers["psnr"].update_state(mean_psnr(real, fake))
        return self.results()

    def discriminator_losses(self, real, real_motion, fake, fake_motion, log_mel, mismatched):
        """(d_loss, logits of the three pair kinds): real, generated and mismatched (real video, other audio)."""
        bce = self.adversarial_loss
        logits = {
            "real": self._discriminate(real, real_motion, log_mel),
            "generated": self._discriminate(fake, fake_motion, log_mel),
            "mismatched": self._discriminate(real, real_motion, mismatched),
        }
        d_loss = (
            bce(ops.ones_like(logits["real"]), logits["real"])
            + self.generated_weight * bce(ops.zeros_like(logits["generated"]), logits["generated"])
            + self.mismatch_weight * bce(ops.zeros_like(logits["mismatched"]), logits["mismatched"])
        )
        return d_loss, logits

    def _discriminator_step(self, real, real_motion, fake, fake_motion, log_mel, mismatched):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            d_loss, logits = self.discriminator_losses(real, real_motion, fake, fake_motion, log_mel, mismatched)
            scaled = self.d_optimizer.scale_loss(d_loss)
        grads = tape.gradient(scaled, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        self.track_losses(d_loss=d_loss)
        self.trackers["d_real_wins"].update_state(ops.cast(logits["real"] > logits["generated"], "float32"))
        self.trackers["d_mismatch_wins"].update_state(ops.cast(logits["real"] > logits["mismatched"], "float32"))

    def test_step(self, data):
        inputs, real, _ = keras.utils.unpack_x_y_sample_weight(data)
        fake = self.generator(inputs, training=False)
        self.track_losses(loss=self.pixel_loss(real, fake))
        self.trackers["psnr"].update_state(mean_psnr(real, fake))
        return self.results("loss", "psnr")


def _uses_motion(discriminator) -> bool:
    return "motion" in discriminator.input


def fold_clips(inputs, clips):
    """Autoencoder pretraining pairs: every frame of the clips, (B T, 64, 64, 3) -> itself."""
    frames = fold_time(clips)
    return frames, frames
