"""Lips at a glance (kind ``glance``, Chen et al. 2018) and its two frozen helpers, each a kind of its own:
the lip flow network (``lipflow``) and the perceptual loss's autoencoder (``lipae``), trained first into
``<workdir>/flow`` and ``<workdir>/perceptual`` unless ``model.glance.flow_model`` /
``model.glance.perceptual_model`` name trained workdirs (``training.glance``)."""

from __future__ import annotations

import copy
from pathlib import Path

from keras_s2v.configs.experiments import ExperimentConfig
from keras_s2v.training.optimizers import make_optimizer
from keras_s2v.training.tasks.base import Task, compile_reconstruction, register_task, splits
from keras_s2v.workdirs import MODEL_FILE, load_trained_model

# A glance model's helpers: role -> (their model kind, the model.glance field that may name a trained one).
PRETRAINED = {"flow": ("lipflow", "flow_model"), "perceptual": ("lipae", "perceptual_model")}


def pretraining_config(config: ExperimentConfig, kind: str) -> ExperimentConfig:
    """The config a glance experiment trains its flow network (``lipflow``) or autoencoder (``lipae``) with."""
    pre = copy.deepcopy(config)
    pre.name = f"{config.name}/{kind}"
    pre.model.kind = kind
    pre.train.epochs = config.train.pretrain_epochs
    pre.train.optimizer, pre.train.learning_rate, pre.train.adam_beta_1, pre.train.weight_decay = "adam", 1e-3, 0.9, 0.0
    return pre


def glance_trainer(config: ExperimentConfig, generator, flow_net, perceptual_encoder):
    """The glance generator's trainer: a fresh discriminator and phi_s, phi_v around the frozen helpers."""
    from keras_s2v.models.lip_motion import AudioDerivativeEncoder, MotionEncoder, ThreeStreamDiscriminator
    from keras_s2v.training.glance import GlanceTrainer

    width, g, t = config.model.width, config.model.glance, config.train
    motion_channels = 2 if g.motion == "flow" else 3
    discriminator = ThreeStreamDiscriminator(
        g.window_frames, width=width, motion_channels=motion_channels, streams=g.discriminator_streams
    )
    audio_encoder = motion_encoder = None
    if g.correlation != "none":
        channels = motion_channels if g.correlation == "derivative" else 3  # plain: the frames themselves
        audio_encoder = AudioDerivativeEncoder(g.window_frames, width=width, feature_dim=g.correlation_dim)
        motion_encoder = MotionEncoder(channels=channels, width=width, feature_dim=g.correlation_dim)
    return GlanceTrainer(
        generator,
        discriminator,
        flow_net,
        perceptual_encoder,
        audio_encoder,
        motion_encoder,
        g.correlation,
        g.motion,
        seed=t.seed,
    )


class _LipClips(Task):
    """The three kinds' data: lip clips of ``model.glance.window_frames`` with their log-mel
    (``pipeline.glance_dataset``), mapped by ``pairs`` into a helper's (input, target) pairs."""

    def pairs(self):
        """A function ``(inputs, clips) -> (x, y)`` mapped over the examples, or None: the clips as they come."""
        return None

    def datasets(self, config: ExperimentConfig, data_dir, global_batch: int, shard: tuple[int, int] | None = None):
        from keras_s2v.data import pipeline

        d = config.data
        common = {"frames": config.model.glance.window_frames, "min_identity_gap": d.min_identity_gap}
        train_split, validation_split = splits(config, shard)
        train = pipeline.glance_dataset(data_dir, d.train_split, global_batch, **train_split, **common)
        val = pipeline.glance_dataset(data_dir, d.validation_split, global_batch, **validation_split, **common)
        pairs = self.pairs()
        if pairs is not None:
            train, val = train.map(pairs), val.map(pairs)
        return train, val


@register_task("glance")
class GlanceTask(_LipClips):
    def check_inputs(self, config: ExperimentConfig) -> None:
        super().check_inputs(config)
        for _kind, field in PRETRAINED.values():
            given = getattr(config.model.glance, field)
            if given and not (Path(given) / MODEL_FILE).exists():
                raise FileNotFoundError(f"{given}: model.glance.{field} has no trained {MODEL_FILE}")

    def pretrained_helpers(self, config: ExperimentConfig) -> dict:
        return {
            role: (f"glance.{field}", pretraining_config(config, kind)) for role, (kind, field) in PRETRAINED.items()
        }

    def build_model(self, config: ExperimentConfig):
        from keras_s2v.models.glance import GlanceGenerator

        g = config.model.glance
        return GlanceGenerator(frames=g.window_frames, width=config.model.width, skips=g.skips)

    def build_trainable(self, config: ExperimentConfig, model, pretrained: dict):
        g = config.model.glance
        needs_flow = g.motion == "flow" and (g.correlation == "derivative" or "flow" in g.discriminator_streams)
        flow_net = load_trained_model(pretrained["flow"]) if needs_flow else None
        perceptual = load_trained_model(pretrained["perceptual"]).encoder if config.train.perceptual_weight else None
        return glance_trainer(config, model, flow_net, perceptual)

    def compile(self, model, config: ExperimentConfig) -> None:
        """The generator's and the discriminator's optimizers, and the weights of the paper's loss terms."""
        t = config.train
        model.compile(
            make_optimizer(config),
            make_optimizer(config),
            correlation_weight=t.correlation_weight,
            pixel_weight=t.pixel_weight,
            perceptual_weight=t.perceptual_weight,
            adversarial_weight=t.adversarial_weight,
            mismatch_weight=t.mismatch_weight,
            generated_weight=t.generated_weight,
        )


@register_task("lipflow")
class LipFlowTask(_LipClips):
    image_grid = False  # flows, not frames

    def pairs(self):
        from keras_s2v.training.glance import clips_and_teacher_flows

        return clips_and_teacher_flows

    def build_model(self, config: ExperimentConfig):
        from keras_s2v.models.lip_motion import LipFlowNet

        return LipFlowNet(width=config.model.width)

    def build_trainable(self, config: ExperimentConfig, model, pretrained: dict):
        from keras_s2v.training.glance import FlowTrainer

        return FlowTrainer(model)

    def compile(self, model, config: ExperimentConfig) -> None:
        model.compile(optimizer=make_optimizer(config))


@register_task("lipae")
class LipAutoencoderTask(_LipClips):
    def pairs(self):
        from keras_s2v.training.glance import fold_clips

        return fold_clips

    def build_model(self, config: ExperimentConfig):
        from keras_s2v.models.lip_motion import LipAutoencoder

        return LipAutoencoder(width=config.model.width)

    def compile(self, model, config: ExperimentConfig) -> None:
        compile_reconstruction(model, config)
