"""Signal-dependent (heteroscedastic, Poisson-Gaussian) Gaussian noise."""

from basicsr_denoise.noise.base import NoiseModel
from basicsr_denoise.utils.registry import NOISE_REGISTRY


@NOISE_REGISTRY.register()
class SignalDependentGaussian(NoiseModel):
    """Heteroscedastic Gaussian noise ``y = x + sqrt(sigma_s^2 * x + sigma_r^2) * n``, ``n ~ N(0, I)``.

    The Gaussian approximation of Poisson-Gaussian sensor noise (Foi et al., "Practical
    Poissonian-Gaussian Noise Modeling and Fitting for Single-Image Raw-Data", TIP 2008):
    shot-noise strength ``sigma_s`` and read-noise std ``sigma_r``, both on the [0, 1] scale
    (unlike :class:`Gaussian`, whose sigma is on the 0-255 scale). Mean ``x``, variance
    ``sigma_s^2 * x + sigma_r^2``.

    Args:
        sigma_s (float): Signal-dependent (shot) noise parameter, > 0 (the level, :attr:`param`).
        sigma_r (float): Signal-independent (read) noise std, >= 0. Default: 0.
        clip (bool): Clip ``y`` to [0, 1]. Default: False.
        quantize (bool): Quantise ``y`` to steps of 1/255. Default: False.

    Note:
        ``x`` is clamped to ``>= 0`` inside the square root only. Use :class:`Gaussian` for
        ``sigma_s = 0``. No Tweedie formula and no blind-search grid.
    """

    param_name = 'sigma_s'
    limits = {'sigma_s': {}, 'sigma_r': {'strict': False}}

    def __init__(self, sigma_s, sigma_r=0.0, clip=False, quantize=False):
        super().__init__(clip, quantize, sigma_s=sigma_s, sigma_r=sigma_r)

    def _sample(self, x, generator):
        std = (self.sigma_s ** 2 * x.clamp_min(0.0) + self.sigma_r ** 2).sqrt()
        return x + std * self._randn(x, generator)
