"""Utilities: registries, options, distributed helpers, logging, image I/O, checkpoints.

Kept import-light: import the sub-modules you need (``basicsr_denoise.utils.img_util`` ...).
"""
