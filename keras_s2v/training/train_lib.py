"""Training: config -> model, data, MirroredStrategy, fit with checkpoints that survive a crash.

The workdir it writes, and how other commands read it, is ``keras_s2v.workdirs``.
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_s2v.configs.experiments import ExperimentConfig
from keras_s2v.workdirs import DATA_FILE, MODEL_FILE, MODEL_KINDS, check_workdir, load_trained_model, write_run_file

OPTIMIZERS = ("sgd", "adam")


def build_model(config: ExperimentConfig):
    """The Keras model an experiment trains."""
    from keras_s2v.models.deblur import DeblurCNN
    from keras_s2v.models.speech2vid import Speech2Vid
    from keras_s2v.models.syncnet import SyncNet

    m = config.model
    if m.kind == "speech2vid":
        model = Speech2Vid(m.num_identity_images, m.width, m.embedding_dim, m.skip_connections, m.separable,
                           m.upsampling, m.high_res_skips, m.masked_target, m.full_res_skip)  # fmt: skip
        if m.identity_weights:
            path = Path(m.identity_weights)
            if not path.exists():
                raise FileNotFoundError(f"{path}: identity encoder weights not found")
            model.identity_encoder.load_weights(str(path))
        return model
    if m.kind == "deblur":
        return DeblurCNN(m.deblur_depth, m.deblur_filters)
    if m.kind == "syncnet":
        return SyncNet(width=m.width, embedding_dim=m.embedding_dim, max_shift=m.sync_max_shift, crop=m.sync_crop,
                       dropout=m.sync_dropout, centered=m.sync_centered)  # fmt: skip
    if m.kind == "tgan":
        from keras_s2v.models.temporal_gan import TemporalGenerator

        return TemporalGenerator(m.audio_input, width=m.width, identity_dim=m.identity_dim, audio_dim=m.embedding_dim,
                                 context_dim=m.context_dim, noise_dim=m.noise_dim, noise_layers=m.noise_layers,
                                 plain_convs=m.plain_convs, noise_std=m.noise_std)  # fmt: skip
    if m.kind == "glance":
        from keras_s2v.models.glance import GlanceGenerator

        return GlanceGenerator(frames=m.window_frames, width=m.width, skips=m.glance_skips)
    if m.kind == "lipflow":
        from keras_s2v.models.lip_motion import LipFlowNet

        return LipFlowNet(width=m.width)
    if m.kind == "lipae":
        from keras_s2v.models.lip_motion import LipAutoencoder

        return LipAutoencoder(width=m.width)
    raise ValueError(f"unknown model kind {m.kind!r} ({', '.join(MODEL_KINDS)})")


def build_trainable(config: ExperimentConfig, pretrained: dict | None = None):
    """What ``fit`` runs: the model itself, or for a GAN the trainer around the generator and its discriminators.

    ``pretrained``: a glance model's trained helper workdirs, ``{"flow": path, "perceptual": path}``
    (``pretrained_workdirs``).
    """
    model = build_model(config)
    if config.model.init_from:
        from keras_s2v import pretrained as presets

        model.set_weights(load_trained_model(presets.resolve(config.model.init_from)).get_weights())
    if config.model.kind == "speech2vid" and config.train.sync_weight:
        from keras_s2v import pretrained as presets
        from keras_s2v.training.lipsync import LipSyncTrainer

        discriminator = None
        if config.train.mouth_adversarial_weight:
            from keras_s2v.data.face.align import lip_box
            from keras_s2v.models.discriminators import FrameDiscriminator
            from keras_s2v.models.speech2vid import IMAGE_SIZE

            discriminator = FrameDiscriminator(lip_box(IMAGE_SIZE)[2], config.model.width, "strided",
                                               name="mouth_discriminator")  # fmt: skip
        return LipSyncTrainer(model, load_trained_model(presets.resolve(config.model.sync_model)), discriminator)
    if config.model.kind == "glance":
        m, pretrained = config.model, pretrained or {}
        needs_flow = m.motion == "flow" and (m.correlation == "derivative" or "flow" in m.discriminator_streams)
        flow_net = load_trained_model(pretrained["flow"]) if needs_flow else None
        perceptual = load_trained_model(pretrained["perceptual"]).encoder if config.train.perceptual_weight else None
        return glance_trainer(config, model, flow_net, perceptual)
    if config.model.kind == "lipflow":
        from keras_s2v.training.glance import FlowTrainer

        return FlowTrainer(model)
    if config.model.kind != "tgan":
        return model
    from keras_s2v.models.discriminators import (
        FrameDiscriminator,
        SequenceDiscriminator,
    )
    from keras_s2v.training.gan import TemporalGANTrainer

    m = config.model
    frame = FrameDiscriminator(model.image_size, m.width, m.frame_discriminator)
    sequence = SequenceDiscriminator(m.audio_input, model.image_size, m.width, m.context_dim, m.sequence_pooling)
    return TemporalGANTrainer(model, frame, sequence, seed=config.train.seed)


def glance_trainer(config: ExperimentConfig, generator, flow_net, perceptual_encoder):
    """The glance generator's trainer: a fresh discriminator and phi_s, phi_v around the frozen helpers."""
    from keras_s2v.models.lip_motion import (
        AudioDerivativeEncoder,
        MotionEncoder,
        ThreeStreamDiscriminator,
    )
    from keras_s2v.training.glance import GlanceTrainer

    m, t = config.model, config.train
    motion_channels = 2 if m.motion == "flow" else 3
    discriminator = ThreeStreamDiscriminator(m.window_frames, width=m.width, motion_channels=motion_channels,
                                             streams=m.discriminator_streams)  # fmt: skip
    audio_encoder = motion_encoder = None
    if m.correlation != "none":
        channels = motion_channels if m.correlation == "derivative" else 3  # plain: the frames themselves
        audio_encoder = AudioDerivativeEncoder(m.window_frames, width=m.width, feature_dim=m.correlation_dim)
        motion_encoder = MotionEncoder(channels=channels, width=m.width, feature_dim=m.correlation_dim)
    return GlanceTrainer(generator, discriminator, flow_net, perceptual_encoder, audio_encoder, motion_encoder,
                         m.correlation, m.motion, seed=t.seed)  # fmt: skip


PRETRAINED = {"flow": ("lipflow", "flow_model"), "perceptual": ("lipae", "perceptual_model")}


def pretraining_config(config: ExperimentConfig, kind: str) -> ExperimentConfig:
    """The config a glance experiment trains its flow network (``lipflow``) or autoencoder (``lipae``) with."""
    import copy

    pre = copy.deepcopy(config)
    pre.name = f"{config.name}/{kind}"
    pre.model.kind = kind
    pre.train.epochs = config.train.pretrain_epochs
    pre.train.optimizer, pre.train.learning_rate, pre.train.adam_beta_1, pre.train.weight_decay = "adam", 1e-3, 0.9, 0.0
    return pre


def pretrained_workdirs(config: ExperimentConfig, data_dir, workdir, log=print) -> dict:
    """A glance model's frozen helpers: the configured workdirs, or trained first into ``<workdir>/flow``,
    ``<workdir>/perceptual`` (resumed like any run when interrupted)."""
    found = {}
    for role, (kind, field) in PRETRAINED.items():
        given = getattr(config.model, field)
        if given:
            if not (Path(given) / MODEL_FILE).exists():
                raise FileNotFoundError(f"{given}: model.{field} has no trained {MODEL_FILE}")
            found[role] = Path(given)
            continue
        path = Path(workdir) / role
        if not (path / MODEL_FILE).exists() or not (path / "history.json").exists() or _unfinished(path, config):
            log(f"training the {role} network ({kind}) into {path}")
            train(pretraining_config(config, kind), data_dir, path)
        found[role] = path
    return found


def _unfinished(path: Path, config: ExperimentConfig) -> bool:
    records = json.loads((path / "history.json").read_text())
    return len(records) < config.train.pretrain_epochs


def make_datasets(config: ExperimentConfig, data_dir, global_batch: int):
    """(train, validation) tf.data pipelines for the experiment's model kind."""
    from keras_s2v.data import pipeline

    d, seed = config.data, config.train.seed
    if config.model.kind in ("glance", "lipflow", "lipae"):
        common = {"frames": config.model.window_frames, "min_identity_gap": d.min_identity_gap}
        train = pipeline.glance_dataset(data_dir, d.train_split, global_batch, samples_per_segment=d.samples_per_segment,
                                        training=True, shuffle_buffer=d.shuffle_buffer, augment=d.augment, seed=seed,
                                        **common)  # fmt: skip
        val = pipeline.glance_dataset(data_dir, d.validation_split, global_batch,
                                      samples_per_segment=d.validation_samples_per_segment, training=False, **common)  # fmt: skip
        if config.model.kind != "glance":
            from keras_s2v.training.glance import clips_and_teacher_flows, fold_clips

            pairs = fold_clips if config.model.kind == "lipae" else clips_and_teacher_flows
            train, val = train.map(pairs), val.map(pairs)
        return train, val
    if config.model.kind == "deblur":
        train = pipeline.deblur_dataset(data_dir, d.train_split, global_batch, d.samples_per_segment, True,
                                        d.shuffle_buffer, d.blur_max_sigma, d.blur_max_motion, seed)  # fmt: skip
        val = pipeline.deblur_dataset(data_dir, d.validation_split, global_batch, d.validation_samples_per_segment,
                                      False, max_sigma=d.blur_max_sigma, max_motion=d.blur_max_motion, seed=seed + 1)  # fmt: skip
        return train, val
    if config.model.kind == "tgan":
        from keras_s2v.models.temporal_gan import window_shape

        window_shape(config.model.audio_input)  # an unknown audio_input fails here, not in tf.data
        lengths = pipeline.sequence_lengths(d.sequence_lengths)
        common = {"lengths": lengths, "audio_input": config.model.audio_input, "min_identity_gap": d.min_identity_gap}
        train = pipeline.sequence_dataset(data_dir, d.train_split, global_batch, samples_per_segment=d.samples_per_segment,
                                          training=True, shuffle_buffer=d.shuffle_buffer, augment=d.augment, seed=seed,
                                          **common)  # fmt: skip
        val = pipeline.sequence_dataset(data_dir, d.validation_split, global_batch,
                                        samples_per_segment=d.validation_samples_per_segment, training=False, **common)  # fmt: skip
        return train, val
    if config.model.kind == "syncnet":
        k = config.model.sync_max_shift
        crop = config.model.sync_crop
        train = pipeline.syncnet_dataset(data_dir, d.train_split, global_batch, k, d.samples_per_segment, True,
                                         d.shuffle_buffer, d.augment, seed, crop, d.augment_geometry)  # fmt: skip
        val = pipeline.syncnet_dataset(data_dir, d.validation_split, global_batch, k, d.validation_samples_per_segment,
                                       False, seed=seed + 1, crop=crop)  # fmt: skip
        return train, val
    if config.train.sync_weight:  # windows of the sync expert's 5 frames, each with its own MFCC window
        from keras_s2v.training.lipsync import SYNC_WINDOW

        common = {"lengths": (SYNC_WINDOW,), "audio_input": "mfcc", "min_identity_gap": d.min_identity_gap}
        train = pipeline.sequence_dataset(data_dir, d.train_split, global_batch, samples_per_segment=d.samples_per_segment,
                                          training=True, shuffle_buffer=d.shuffle_buffer, augment=d.augment, seed=seed,
                                          **common)  # fmt: skip
        val = pipeline.sequence_dataset(data_dir, d.validation_split, global_batch,
                                        samples_per_segment=d.validation_samples_per_segment, training=False, **common)  # fmt: skip
        return train, val
    common = {"num_identity_images": config.model.num_identity_images, "min_identity_gap": d.min_identity_gap,
              "masked_target": config.model.masked_target}  # fmt: skip
    train = pipeline.speech2vid_dataset(data_dir, d.train_split, global_batch, samples_per_segment=d.samples_per_segment,
                                        training=True, shuffle_buffer=d.shuffle_buffer, augment=d.augment,
                                        seed=seed, **common)  # fmt: skip
    val = pipeline.speech2vid_dataset(data_dir, d.validation_split, global_batch,
                                      samples_per_segment=d.validation_samples_per_segment, training=False, **common)  # fmt: skip
    return train, val


def make_optimizer(config: ExperimentConfig, learning_rate: float | None = None):
    import keras

    t = config.train
    rate = t.learning_rate if learning_rate is None else learning_rate
    if t.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, max(1, t.epochs * t.steps_per_epoch), alpha=0.05)
    elif t.lr_schedule != "constant":
        raise ValueError(f"unknown lr_schedule {t.lr_schedule!r} (constant, cosine)")
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=t.momentum)
    if t.optimizer == "adam":
        return keras.optimizers.Adam(rate, beta_1=t.adam_beta_1, weight_decay=t.weight_decay or None)
    raise ValueError(f"unknown optimizer {t.optimizer!r} ({', '.join(OPTIMIZERS)})")


def compile_model(model, config: ExperimentConfig) -> None:
    """L1 as a keras.losses.Loss (scaled right across replicas), PSNR and SSIM as metrics.

    The sync expert: the offset-contrastive loss, and how often the in-sync offset is the nearest.
    A temporal GAN: one optimizer per player (``training.gan``).
    """
    import keras

    from keras_s2v.training import metrics

    if config.model.kind == "tgan":
        t = config.train
        model.compile(make_optimizer(config), make_optimizer(config, t.d_frame_learning_rate),
                      make_optimizer(config, t.d_sequence_learning_rate), l1_weight=t.l1_weight)  # fmt: skip
        return

    if config.model.kind == "glance":
        t = config.train
        model.compile(make_optimizer(config), make_optimizer(config), correlation_weight=t.correlation_weight,
                      pixel_weight=t.pixel_weight, perceptual_weight=t.perceptual_weight,
                      adversarial_weight=t.adversarial_weight, mismatch_weight=t.mismatch_weight,
                      generated_weight=t.generated_weight)  # fmt: skip
        return
    if config.model.kind == "lipflow":
        model.compile(optimizer=make_optimizer(config))
        return
    if config.model.kind == "syncnet":
        from keras_s2v.training.losses import OffsetContrastiveLoss

        model.compile(optimizer=make_optimizer(config), loss=OffsetContrastiveLoss(),
                      metrics=[metrics.offset_accuracy])  # fmt: skip
        return
    t = config.train
    if t.mouth_weight or t.ssim_weight or t.sync_weight:
        from keras_s2v.training.losses import FaceReconstructionLoss

        loss = FaceReconstructionLoss(t.mouth_weight, t.ssim_weight)
    else:
        loss = keras.losses.MeanAbsoluteError(name="l1")
    if config.train.sync_weight:  # a LipSyncTrainer (build_trainable)
        d_optimizer = None
        if t.mouth_adversarial_weight:  # DCGAN's Adam for the discriminator
            d_optimizer = keras.optimizers.Adam(t.learning_rate, beta_1=0.5)
        model.compile(make_optimizer(config), loss, sync_weight=t.sync_weight, d_optimizer=d_optimizer,
                      adversarial_weight=t.mouth_adversarial_weight)  # fmt: skip
        return
    model.compile(optimizer=make_optimizer(config), loss=loss, metrics=[metrics.psnr, metrics.ssim])


def check_inputs(config: ExperimentConfig, data_dir) -> dict:
    """What ``train`` reads, checked before it writes anything -> the ``data.json`` record.

    The shard folders (``pipeline.data_dirs``: comma-separated allowed) are
    prepared and hold both splits; the model kind, optimizer and audio input
    are known; files and workdirs the config names exist. Cheap: no model is
    built, no shard is read.
    """
    from keras_s2v.data import pipeline, prepared

    folders = [str(Path(d).resolve()) for d in pipeline.data_dirs(data_dir)]
    if not folders:
        raise ValueError(f"{data_dir!r}: no shard folder given")
    record = {"data_dir": ",".join(folders), "data_parameters": prepared.data_parameters(folders)}
    for split in dict.fromkeys((config.data.train_split, config.data.validation_split)):
        pipeline.shard_files(data_dir, split)
    m = config.model
    if m.kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {m.kind!r} ({', '.join(MODEL_KINDS)})")
    if config.train.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.train.optimizer!r} ({', '.join(OPTIMIZERS)})")
    if config.train.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown lr_schedule {config.train.lr_schedule!r} (constant, cosine)")
    if config.model.upsampling not in ("transpose", "resize"):
        raise ValueError(f"unknown model.upsampling {config.model.upsampling!r} (transpose, resize)")
    if m.kind == "speech2vid" and m.identity_weights and not Path(m.identity_weights).exists():
        raise FileNotFoundError(f"{m.identity_weights}: identity encoder weights not found")
    from keras_s2v import pretrained as presets

    for field in ("init_from", "sync_model"):
        given = getattr(m, field)
        if given and not (Path(presets.resolve(given)) / MODEL_FILE).exists():
            raise FileNotFoundError(f"{given}: model.{field} is neither a trained workdir nor a preset")
    if config.train.sync_weight and (m.kind != "speech2vid" or not m.sync_model or m.num_identity_images != 1):
        raise ValueError("train.sync_weight needs a one-image Speech2Vid and model.sync_model (a trained sync expert)")
    if config.train.mouth_adversarial_weight and not config.train.sync_weight:
        raise ValueError("train.mouth_adversarial_weight trains with the sync expert: set train.sync_weight too")
    if m.kind == "tgan":
        from keras_s2v.models.temporal_gan import window_shape

        window_shape(m.audio_input)
        pipeline.sequence_lengths(config.data.sequence_lengths)
    if m.kind == "glance":
        for _kind, field in PRETRAINED.values():
            given = getattr(m, field)
            if given and not (Path(given) / MODEL_FILE).exists():
                raise FileNotFoundError(f"{given}: model.{field} has no trained {MODEL_FILE}")
    return record


def train(config: ExperimentConfig, data_dir, workdir, strategy=None, extra_callbacks=()) -> dict:
    """Train an experiment; re-running the same call resumes from the last finished epoch.

    Returns the history (per-epoch metrics, this invocation's epochs only)
    and where the model was saved. A glance model first trains the frozen
    helpers it is not given (``pretrained_workdirs``).
    """
    import keras
    import tensorflow as tf

    from keras_s2v.training.callbacks import EpochCheckpoints, HistoryFile, ImageGrid, SaveBest
    from keras_s2v.training.trainer import shipped_model

    workdir = Path(workdir)
    record = check_inputs(config, data_dir)  # first: a mistyped --data must not leave a config that locks the workdir
    check_workdir(workdir, config)
    write_run_file(workdir / DATA_FILE, json.dumps(record, indent=1) + "\n")
    pretrained = pretrained_workdirs(config, data_dir, workdir) if config.model.kind == "glance" else None
    keras.utils.set_random_seed(config.train.seed)
    strategy = strategy or tf.distribute.MirroredStrategy()
    global_batch = config.data.batch_size * strategy.num_replicas_in_sync
    train_ds, val_ds = make_datasets(config, data_dir, global_batch)
    val_ds = val_ds.take(config.train.validation_steps).cache()
    with strategy.scope():
        model = build_trainable(config, pretrained)
        compile_model(model, config)

    callbacks = [
        EpochCheckpoints(workdir / "checkpoints", legacy_backup=workdir / "backup"),
        SaveBest(workdir / MODEL_FILE, shipped_model, monitor="val_loss"),
        keras.callbacks.TensorBoard(str(workdir / "logs"), write_graph=False),
        HistoryFile(workdir / "history.json"),
        *extra_callbacks,
    ]
    if config.train.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.train.early_stopping_patience))
    if config.model.kind == "tgan" and config.train.learning_rate_drop_epoch > 0:
        from keras_s2v.training.gan import LearningRateDrop

        t = config.train
        rates = {"g_optimizer": t.learning_rate, "d_frame_optimizer": t.d_frame_learning_rate}
        callbacks.append(LearningRateDrop(rates, t.learning_rate_drop_epoch, t.learning_rate_drop_factor))
    if config.model.kind not in ("syncnet", "lipflow"):  # generators: identity | generated | truth each epoch
        grid_batch = next(iter(val_ds.unbatch().batch(config.train.image_grid_size)))
        callbacks.append(ImageGrid(grid_batch, workdir / "logs" / "images", workdir / "samples"))
    history = model.fit(
        train_ds,
        epochs=config.train.epochs,
        steps_per_epoch=config.train.steps_per_epoch,
        validation_data=val_ds,
        callbacks=callbacks,
        verbose=2,
    )
    records = json.loads((workdir / "history.json").read_text()) if (workdir / "history.json").exists() else []
    return {"history": history.history, "epochs": records, "model": str(workdir / MODEL_FILE),
            "replicas": strategy.num_replicas_in_sync}  # fmt: skip

