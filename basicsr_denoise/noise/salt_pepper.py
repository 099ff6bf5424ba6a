"""Salt-and-pepper (impulse) noise."""

import torch

from basicsr_denoise.noise.base import NoiseModel
from basicsr_denoise.utils.registry import NOISE_REGISTRY


@NOISE_REGISTRY.register()
class SaltPepper(NoiseModel):
    """Salt-and-pepper noise: each element is replaced, with probability ``amount``, by 1 (salt, with
    probability ``salt_vs_pepper``) or 0 (pepper).

    As scikit-image's ``random_noise(mode='s&p')``. Mean ``(1-a) x + a s``, variance
    ``(1-a) x^2 + a s - mean^2`` for ``a = amount``, ``s = salt_vs_pepper``.

    Args:
        amount (float): Fraction of replaced elements, in (0, 1].
        salt_vs_pepper (float): Fraction of salt among the replaced elements, in [0, 1]. Default: 0.5.
        clip (bool): Clip ``y`` to [0, 1]. Default: False.
        quantize (bool): Quantise ``y`` to steps of 1/255. Default: False.

    Note:
        Elements (not pixels) are corrupted independently, so the colour channels of a pixel are
        hit independently, as in scikit-image. No Tweedie formula and no blind-search grid.
    """

    param_name = 'amount'
    limits = {'amount': {'maximum': 1.0}, 'salt_vs_pepper': {'strict': False, 'maximum': 1.0}}

    def __init__(self, amount, salt_vs_pepper=0.5, clip=False, quantize=False):
        super().__init__(clip, quantize, amount=amount, salt_vs_pepper=salt_vs_pepper)

    def _sample(self, x, generator):
        hit = self._rand(x, generator) < self.amount
        salt = self._rand(x, generator) < self.salt_vs_pepper
        return torch.where(hit, salt.to(x.dtype), x)
