"""Reconstruction losses of the frame generators, as ``keras.losses.Loss`` so replicas scale them right."""

from __future__ import annotations

import keras

from keras_s2v.data.face.align import lip_box


@keras.saving.register_keras_serializable(package="keras_s2v")
class FaceReconstructionLoss(keras.losses.Loss):
    """L1 over the face + ``mouth_weight`` x L1 over the mouth box + ``ssim_weight`` x (1 - SSIM) of the mouth box.

    Plain L1 over the whole 112 x 112 face (the paper) spends most of its gradient on the
    cheeks and background the identity skips already give, and settles on an average, blurred
    mouth. Weighting the mouth box (``align.lip_box``: rows 45..100, columns 28..83 at 112)
    puts the model's capacity where the speech is, and SSIM rewards the mouth's edges and
    texture, which L1 alone trades for blur (Zhao et al., "Loss functions for image
    restoration with neural networks", 2017). With both weights 0 this is the paper's L1.
    """

    def __init__(self, mouth_weight: float = 0.0, ssim_weight: float = 0.0, image_size: int = 112,
                 name: str = "face_reconstruction", **kwargs):  # fmt: skip
        super().__init__(name=name, **kwargs)
        self.mouth_weight, self.ssim_weight, self.image_size = mouth_weight, ssim_weight, image_size

    def mouth(self, images):
        top, left, side = lip_box(self.image_size)
        return images[:, top : top + side, left : left + side, :]

    def call(self, y_true, y_pred):
        ops = keras.ops
        loss = ops.mean(ops.abs(y_true - y_pred), axis=(1, 2, 3))  # (B,)
        if self.mouth_weight:
            loss += self.mouth_weight * ops.mean(ops.abs(self.mouth(y_true) - self.mouth(y_pred)), axis=(1, 2, 3))
        if self.ssim_weight:
            import tensorflow as tf

            loss += self.ssim_weight * (1.0 - tf.image.ssim(self.mouth(y_true), self.mouth(y_pred), max_val=1.0))
        return loss

    def get_config(self):
        return {**super().get_config(), "mouth_weight": self.mouth_weight, "ssim_weight": self.ssim_weight,
                "image_size": self.image_size}  # fmt: skip
