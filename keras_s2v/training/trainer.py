"""What every trainer model shares: named loss trackers as its metrics, the one model it ships, and its call."""

from __future__ import annotations

import keras

from keras_s2v.training.losses import unscaled


class Trainer(keras.Model):
    """A ``keras.Model`` that trains the model in attribute ``ships`` (saved alone as ``model.keras``).

    ``tracker_names``: one ``keras.metrics.Mean`` each, in ``self.trackers``; they are the model's
    ``metrics``, so Keras resets them every epoch and logs them under these names. ``ships`` names
    the attribute rather than holding the model, so its weights are tracked (and checkpointed) once.
    Calling the trainer calls what it ships, unless a subclass says otherwise.
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

    def call(self, inputs, training=False):
        return self.shipped(inputs, training=training)

    def track_losses(self, **losses):
        """Update the named trackers with per-replica scaled losses, logged at the global batch's scale."""
        for name, value in losses.items():
            self.trackers[name].update_state(unscaled(value))

    def results(self, *names):
        """The named trackers' values (all of them without names): what a train or test step returns."""
        return {name: self.trackers[name].result() for name in names or self.trackers}


def shipped_model(model):
    """The part of a trained model that is saved as ``model.keras`` (a trainer's ``shipped`` model: a generator)."""
    return getattr(model, "shipped", model)
