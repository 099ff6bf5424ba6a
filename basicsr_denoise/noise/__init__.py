"""Noise families: ``sample(x, generator)`` and, where it exists, Noise2Score's Tweedie step.

Every family is a :class:`NoiseModel` registered in ``NOISE_REGISTRY`` and built from an option
block such as ``{type: Gaussian, sigma: 25}`` with :func:`build_noise`.
"""

from basicsr_denoise.noise.base import NoiseModel
from basicsr_denoise.noise.gamma import Gamma, standard_gamma
from basicsr_denoise.noise.gaussian import Gaussian
from basicsr_denoise.noise.poisson import Poisson
from basicsr_denoise.noise.salt_pepper import SaltPepper
from basicsr_denoise.noise.signal_dependent import SignalDependentGaussian
from basicsr_denoise.noise.speckle import Speckle
from basicsr_denoise.utils.registry import NOISE_REGISTRY

__all__ = ['NoiseModel', 'Gaussian', 'Poisson', 'Gamma', 'Speckle', 'SaltPepper', 'SignalDependentGaussian',
           'standard_gamma', 'build_noise']


def build_noise(opt, key='noise', source=None):
    """Build a noise model from its option block.

    Args:
        opt (dict | NoiseModel): ``{type: <registered name>, <level>: ..., clip: ..., quantize: ...}``;
            a :class:`NoiseModel` is returned as it is.
        key (str): Where the block sits in the option file, for error messages. Default: ``'noise'``.
        source (str | None): The option file, for error messages. Default: None.

    Returns:
        NoiseModel: The noise model.
    """
    if isinstance(opt, NoiseModel):
        return opt
    return NOISE_REGISTRY.build(opt, key=key, source=source)
