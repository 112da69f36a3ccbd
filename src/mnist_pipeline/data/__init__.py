"""Layer 3, data side: MNIST from its source into tarballs, and tarballs into image folders.
Downloads and unpickles; never imports model code."""
