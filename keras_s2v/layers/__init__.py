"""Building blocks shared by the models: small functions that add named layers."""

from keras_s2v.layers.blocks import conv_bn_relu, deconv_bn_relu, separable_conv_bn_relu

__all__ = ["conv_bn_relu", "deconv_bn_relu", "separable_conv_bn_relu"]
