"""What every trainer model shares: named loss trackers as its metrics, and the one model it ships."""

from __future__ import annotations

import keras


class Trainer(keras.Model):
    """A ``keras.Model`` that trains the model in attribute ``ships`` (saved alone as ``model.keras``).

    ``tracker_names``: one ``keras.metrics.Mean`` each, in ``self.trackers``; they are the model's
    ``metrics``, so Keras resets them every epoch and logs them under these names. ``ships`` names
    the attribute rather than holding the model, so its weights are tracked (and checkpointed) once.
    """

    def __init__(self, ships: str, tracker_names, **kwargs):
        super().__init__(**kwargs)
        self._ships = ships
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracker_names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def shipped(self):
        """What is saved as ``model.keras``: the generator (or the flow network) alone."""
        return getattr(self, self._ships)
