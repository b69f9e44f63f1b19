"""The sync expert (kind ``syncnet``): 5 lower faces against audio at offsets -K..K, the in-sync one nearest."""

from __future__ import annotations

from keras_s2v.configs.experiments import ExperimentConfig
from keras_s2v.training.optimizers import make_optimizer
from keras_s2v.training.tasks.base import Task, register_task


@register_task("syncnet")
class SyncNetTask(Task):
    image_grid = False  # embeddings, no frames to show

    def build_model(self, config: ExperimentConfig):
        from keras_s2v.models.syncnet import SyncNet

        m, s = config.model, config.model.syncnet
        return SyncNet(
            width=m.width,
            embedding_dim=m.embedding_dim,
            max_shift=s.max_shift,
            crop=s.crop,
            dropout=s.dropout,
            centered=s.centered,
        )

    def datasets(self, config: ExperimentConfig, data_dir, global_batch: int, shard: tuple[int, int] | None = None):
        from keras_s2v.data import pipeline

        d, seed = config.data, config.train.seed
        k, crop = config.model.syncnet.max_shift, config.model.syncnet.crop
        train = pipeline.syncnet_dataset(
            data_dir,
            d.train_split,
            global_batch,
            k,
            d.samples_per_segment,
            True,
            d.shuffle_buffer,
            d.augment,
            seed,
            crop,
            d.augment_geometry,
            d.cache,
            d.parallel_segments,
            shard,
        )
        val = pipeline.syncnet_dataset(
            data_dir,
            d.validation_split,
            global_batch,
            k,
            d.validation_samples_per_segment,
            False,
            seed=seed + 1,
            crop=crop,
        )
        return train, val

    def compile(self, model, config: ExperimentConfig) -> None:
        """The offset-contrastive loss, and how often the in-sync offset is the nearest."""
        from keras_s2v.training import metrics
        from keras_s2v.training.losses import OffsetContrastiveLoss

        model.compile(optimizer=make_optimizer(config), loss=OffsetContrastiveLoss(), metrics=[metrics.offset_accuracy])
