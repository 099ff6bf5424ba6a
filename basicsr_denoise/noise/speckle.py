"""Speckle (multiplicative Gaussian) noise."""

from basicsr_denoise.noise.base import NoiseModel
from basicsr_denoise.utils.registry import NOISE_REGISTRY


@NOISE_REGISTRY.register()
class Speckle(NoiseModel):
    """Speckle noise ``y = x + x * (sigma/255) * n``, ``n ~ N(0, I)`` (mean ``x``, std ``x * sigma/255``).

    The multiplicative Gaussian model of scikit-image's ``random_noise(mode='speckle')``, which
    the MPI paper uses for its speckle experiments, parametrised here by a standard deviation on
    the 0-255 scale (scikit-image takes the variance ``(sigma/255)^2``).

    Args:
        sigma (float): Standard deviation of the multiplicative factor on the 0-255 scale.
        clip (bool): Clip ``y`` to [0, 1]. Default: False.
        quantize (bool): Quantise ``y`` to steps of 1/255. Default: False.

    Note:
        No Tweedie formula (Noise2Score does not cover this family) and no blind-search grid.
    """

    param_name = 'sigma'
    limits = {'sigma': {}}

    def __init__(self, sigma, clip=False, quantize=False):
        super().__init__(clip, quantize, sigma=sigma)

    def _sample(self, x, generator):
        return x + x * (self.sigma / 255.0) * self._randn(x, generator)
