"""The temporal GAN (kind ``tgan``, Vougioukas et al. 2018): a generator against frame and sequence
discriminators, one optimizer per player (``training.gan``)."""

from __future__ import annotations

from keras_s2v.configs.experiments import ExperimentConfig
from keras_s2v.training.optimizers import make_optimizer
from keras_s2v.training.tasks.base import Task, register_task, splits


@register_task("tgan")
class TemporalGANTask(Task):
    def check_inputs(self, config: ExperimentConfig) -> None:
        from keras_s2v.data import pipeline
        from keras_s2v.models.temporal_gan import window_shape

        super().check_inputs(config)
        window_shape(config.model.tgan.audio_input)
        pipeline.sequence_lengths(config.data.sequence_lengths)

    def build_model(self, config: ExperimentConfig):
        from keras_s2v.models.temporal_gan import TemporalGenerator

        m, g = config.model, config.model.tgan
        return TemporalGenerator(
            g.audio_input,
            width=m.width,
            identity_dim=g.identity_dim,
            audio_dim=m.embedding_dim,
            context_dim=g.context_dim,
            noise_dim=g.noise_dim,
            noise_layers=g.noise_layers,
            plain_convs=g.plain_convs,
            noise_std=g.noise_std,
        )

    def build_trainable(self, config: ExperimentConfig, model, pretrained: dict):
        from keras_s2v.models.discriminators import FrameDiscriminator, SequenceDiscriminator
        from keras_s2v.training.gan import TemporalGANTrainer

        width, g = config.model.width, config.model.tgan
        frame = FrameDiscriminator(model.image_size, width, g.frame_discriminator)
        sequence = SequenceDiscriminator(g.audio_input, model.image_size, width, g.context_dim, g.sequence_pooling)
        return TemporalGANTrainer(model, frame, sequence, seed=config.train.seed)

    def datasets(self, config: ExperimentConfig, data_dir, global_batch: int, shard: tuple[int, int] | None = None):
        from keras_s2v.data import pipeline
        from keras_s2v.models.temporal_gan import window_shape

        d = config.data
        window_shape(config.model.tgan.audio_input)  # an unknown audio_input fails here, not in tf.data
        lengths = pipeline.sequence_lengths(d.sequence_lengths)
        common = {
            "lengths": lengths,
            "audio_input": config.model.tgan.audio_input,
            "min_identity_gap": d.min_identity_gap,
        }
        train_split, validation_split = splits(config, shard)
        return (
            pipeline.sequence_dataset(data_dir, d.train_split, global_batch, **train_split, **common),
            pipeline.sequence_dataset(data_dir, d.validation_split, global_batch, **validation_split, **common),
        )

    def compile(self, model, config: ExperimentConfig) -> None:
        """One optimizer per player: the generator's, the frame and the sequence discriminator's."""
        t = config.train
        model.compile(
            make_optimizer(config),
            make_optimizer(config, t.d_frame_learning_rate),
            make_optimizer(config, t.d_sequence_learning_rate),
            l1_weight=t.l1_weight,
        )

    def callbacks(self, config: ExperimentConfig) -> list:
        """The generator's and frame discriminator's rates dropped from ``train.learning_rate_drop_epoch`` on."""
        t = config.train
        if t.learning_rate_drop_epoch <= 0:
            return []
        from keras_s2v.training.gan import LearningRateDrop

        rates = {"g_optimizer": t.learning_rate, "d_frame_optimizer": t.d_frame_learning_rate}
        return [LearningRateDrop(rates, t.learning_rate_drop_epoch, t.learning_rate_drop_factor)]
