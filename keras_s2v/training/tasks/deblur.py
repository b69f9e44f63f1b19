"""The deblurring CNN (kind ``deblur``): artificially blurred aligned faces back to sharp ones, with L1."""

from __future__ import annotations

from keras_s2v.configs.experiments import ExperimentConfig
from keras_s2v.training.tasks.base import Task, compile_reconstruction, register_task


@register_task("deblur")
class DeblurTask(Task):
    def build_model(self, config: ExperimentConfig):
        from keras_s2v.models.deblur import DeblurCNN

        return DeblurCNN(config.model.deblur.depth, config.model.deblur.filters)

    def datasets(self, config: ExperimentConfig, data_dir, global_batch: int, shard: tuple[int, int] | None = None):
        from keras_s2v.data import pipeline

        d, seed = config.data, config.train.seed
        train = pipeline.deblur_dataset(
            data_dir,
            d.train_split,
            global_batch,
            d.samples_per_segment,
            True,
            d.shuffle_buffer,
            d.blur_max_sigma,
            d.blur_max_motion,
            seed,
            d.cache,
            d.parallel_segments,
            shard,
        )
        val = pipeline.deblur_dataset(
            data_dir,
            d.validation_split,
            global_batch,
            d.validation_samples_per_segment,
            False,
            max_sigma=d.blur_max_sigma,
            max_motion=d.blur_max_motion,
            seed=seed + 1,
        )
        return train, val

    def compile(self, model, config: ExperimentConfig) -> None:
        compile_reconstruction(model, config)
