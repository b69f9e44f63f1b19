"""Models: Speech2Vid (encoders, decoder) and the deblurring CNN."""
