"""Speech2Vid (kind ``speech2vid``): frames from identity faces and MFCC, with L1 (or the face reconstruction
loss); with ``train.sync_weight`` or ``train.mouth_adversarial_weight``, on windows of 5 frames against a frozen
sync expert, a mouth discriminator or both (``training.lipsync``)."""

from __future__ import annotations

from pathlib import Path

from keras_s2v.configs.experiments import ExperimentConfig
from keras_s2v.training.optimizers import loss_scaled, make_optimizer
from keras_s2v.training.tasks.base import (
    SYNC_WEIGHT_NEEDS,
    Task,
    compile_reconstruction,
    reconstruction_loss,
    register_task,
    splits,
)
from keras_s2v.workdirs import MODEL_FILE, load_trained_model


def windowed(config: ExperimentConfig) -> bool:
    """Whether the model trains inside a ``LipSyncTrainer`` on windows of 5 frames (a critic is on)."""
    return bool(config.train.sync_weight or config.train.mouth_adversarial_weight)


@register_task("speech2vid")
class Speech2VidTask(Task):
    def check_inputs(self, config: ExperimentConfig) -> None:
        from keras_s2v import pretrained as presets

        s = config.model.speech2vid
        if s.upsampling not in ("transpose", "resize"):
            raise ValueError(f"unknown model.speech2vid.upsampling {s.upsampling!r} (transpose, resize)")
        if s.identity_weights and not Path(s.identity_weights).exists():
            raise FileNotFoundError(f"{s.identity_weights}: identity encoder weights not found")
        if s.sync_model and not (Path(presets.resolve(s.sync_model)) / MODEL_FILE).exists():
            raise FileNotFoundError(
                f"{s.sync_model}: model.speech2vid.sync_model is neither a trained workdir nor a preset"
            )
        if config.train.sync_weight and (not s.sync_model or config.model.num_identity_images != 1):
            raise ValueError(SYNC_WEIGHT_NEEDS)

    def build_model(self, config: ExperimentConfig):
        from keras_s2v.models.speech2vid import Speech2Vid

        m, s = config.model, config.model.speech2vid
        model = Speech2Vid(
            m.num_identity_images,
            m.width,
            m.embedding_dim,
            s.skip_connections,
            s.separable,
            s.upsampling,
            s.high_res_skips,
            s.masked_target,
            s.full_res_skip,
        )
        if s.identity_weights:
            path = Path(s.identity_weights)
            if not path.exists():
                raise FileNotFoundError(f"{path}: identity encoder weights not found")
            model.identity_encoder.load_weights(str(path))
        return model

    def build_trainable(self, config: ExperimentConfig, model, pretrained: dict):
        """The model itself; with a critic a ``LipSyncTrainer`` around it, the sync expert and the discriminator."""
        if not windowed(config):
            return model
        from keras_s2v import pretrained as presets
        from keras_s2v.training.lipsync import LipSyncTrainer

        discriminator = None
        if config.train.mouth_adversarial_weight:
            from keras_s2v.data.face.align import lip_box
            from keras_s2v.models.discriminators import FrameDiscriminator
            from keras_s2v.models.speech2vid import IMAGE_SIZE

            discriminator = FrameDiscriminator(
                lip_box(IMAGE_SIZE)[2], config.model.width, "strided", name="mouth_discriminator"
            )
        sync_model = config.model.speech2vid.sync_model
        expert = load_trained_model(presets.resolve(sync_model)) if config.train.sync_weight else None
        return LipSyncTrainer(model, expert, discriminator)

    def datasets(self, config: ExperimentConfig, data_dir, global_batch: int, shard: tuple[int, int] | None = None):
        from keras_s2v.data import pipeline

        d = config.data
        train_split, validation_split = splits(config, shard)
        if windowed(config):  # windows of the sync expert's 5 frames, each with its own MFCC window
            from keras_s2v.training.lipsync import SYNC_WINDOW

            common = {"lengths": (SYNC_WINDOW,), "audio_input": "mfcc", "min_identity_gap": d.min_identity_gap}
            return (
                pipeline.sequence_dataset(data_dir, d.train_split, global_batch, **train_split, **common),
                pipeline.sequence_dataset(data_dir, d.validation_split, global_batch, **validation_split, **common),
            )
        common = {
            "num_identity_images": config.model.num_identity_images,
            "min_identity_gap": d.min_identity_gap,
            "masked_target": config.model.speech2vid.masked_target,
        }
        return (
            pipeline.speech2vid_dataset(data_dir, d.train_split, global_batch, **train_split, **common),
            pipeline.speech2vid_dataset(data_dir, d.validation_split, global_batch, **validation_split, **common),
        )

    def compile(self, model, config: ExperimentConfig) -> None:
        """``compile_reconstruction``; a ``LipSyncTrainer`` its loss, the sync weight and the mouth discriminator's
        optimizer."""
        t = config.train
        if not windowed(config):
            compile_reconstruction(model, config)
            return
        import keras

        d_optimizer = None
        if t.mouth_adversarial_weight:  # DCGAN's Adam for the discriminator
            d_optimizer = loss_scaled(keras.optimizers.Adam(t.learning_rate, beta_1=0.5), config)
        model.compile(
            make_optimizer(config),
            reconstruction_loss(config),
            sync_weight=t.sync_weight,
            d_optimizer=d_optimizer,
            adversarial_weight=t.mouth_adversarial_weight,
        )
