"""Deblurring CNN (VDSR-style), trained apart and applied to the generator's output.

Speech2Vid's L1-trained frames are soft; the paper sharpens them with a
separate residual CNN trained on faces blurred artificially.
"""

from __future__ import annotations

import keras

from keras_s2v.models.base import FunctionalModel
from keras_s2v.models.speech2vid import IMAGE_SIZE


@keras.saving.register_keras_serializable(package="keras_s2v")
class DeblurCNN(FunctionalModel):
    """(B, S, S, 3) blurred frame in [0, 1] -> sharpened frame: input + predicted residual."""

    CONFIG_KEYS = ("depth", "filters", "image_size")

    def __init__(
        self, depth: int = 10, filters: int = 64, image_size: int | None = IMAGE_SIZE, name: str = "deblur", **kwargs
    ):
        image = keras.Input((image_size, image_size, 3), name="image")
        x = image
        for i in range(depth - 1):
            # (B, S, S, filters)
            x = keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", kernel_initializer="he_normal", name=f"conv{i + 1}"
            )(x)
        residual = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="zeros", name=f"conv{depth}")(x)
        x = keras.layers.Add(name="add_residual")([image, residual])  # VDSR: learn only the missing detail
        outputs = keras.layers.ReLU(max_value=1.0, name="clip")(x)  # keep [0, 1]
        super().__init__(inputs=image, outputs=outputs, name=name, **kwargs)
        self.depth = depth
        self.filters = filters
        self.image_size = image_size
