"""Functional-subclass models whose constructor arguments round-trip through ``get_config``."""

from __future__ import annotations

import keras


class FunctionalModel(keras.Model):
    """keras-hub style: the graph is built in ``__init__`` from the constructor arguments.

    Subclasses call ``super().__init__(inputs=..., outputs=..., name=...)`` and
    list their constructor arguments in ``CONFIG_KEYS``; ``get_config`` returns
    them and ``from_config`` rebuilds the model from them.
    """

    CONFIG_KEYS: tuple[str, ...] = ()

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config.update({key: getattr(self, key) for key in self.CONFIG_KEYS})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
