"""basicsr_denoise: zero-shot and self-supervised image denoising (MPI, Noise2Score).

Importing the package is cheap and never imports optional plugins: every registry
discovers its modules lazily on first lookup (see :mod:`basicsr_denoise.utils.registry`).
"""

__version__ = '0.1.0'
