"""Noise families: ``sample(x, generator)`` and, where it exists, Noise2Score's Tweedie step.

Every family is a :class:`NoiseModel` registered in ``NOISE_REGISTRY`` and built from an option
block such as ``{type: Gaussian, sigma: 25}`` with :func:`build_noise`. The family modules are
imported lazily (by the registry on its first lookup, or here on first use of a name), so one
broken family never breaks the others.
"""

from basicsr_denoise.utils.registry import NOISE_REGISTRY, lazy_getattr

#: Public names and the module that defines each.
_LAZY = {'NoiseModel': 'base', 'Gaussian': 'gaussian', 'Poisson': 'poisson', 'Gamma': 'gamma',
         'standard_gamma': 'gamma', 'Speckle': 'speckle', 'SaltPepper': 'salt_pepper',
         'SignalDependentGaussian': 'signal_dependent'}
__all__ = sorted(_LAZY) + ['build_noise']
__getattr__ = lazy_getattr(__name__, _LAZY)


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
    from basicsr_denoise.noise.base import NoiseModel
    if isinstance(opt, NoiseModel):
        return opt
    return NOISE_REGISTRY.build(opt, key=key, source=source)
