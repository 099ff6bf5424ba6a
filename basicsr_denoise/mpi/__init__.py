"""MPI building blocks (Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024).

* :class:`~basicsr_denoise.mpi.masking.MaskSampler`: random keep-masks (hidden-ratio
  range, multchannel/singlechannel, optional patches), drawn from an explicit generator.
* :class:`~basicsr_denoise.mpi.masking.ComplementaryMasks`: masks whose hidden sets cover every
  pixel once per cycle (the ``fill.complementary`` option).
* The masked network itself is :class:`basicsr_denoise.archs.masked_arch.MaskedNet`.
"""

from basicsr_denoise.mpi.masking import MASK_MODES, ComplementaryMasks, MaskSampler, expand_mask

__all__ = ['MASK_MODES', 'ComplementaryMasks', 'MaskSampler', 'expand_mask']
