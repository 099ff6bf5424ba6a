"""Additive white Gaussian noise."""

from basicsr_denoise.noise.base import NoiseModel
from basicsr_denoise.utils.registry import NOISE_REGISTRY


@NOISE_REGISTRY.register()
class Gaussian(NoiseModel):
    """Additive white Gaussian noise ``y = x + (sigma/255) * n``, ``n ~ N(0, I)``.

    Tweedie's formula as in Noise2Score (Kim & Ye, "Noise2Score: Tweedie's Approach to
    Self-Supervised Image Denoising without Clean Images", NeurIPS 2021):
    ``xhat = y + (sigma/255)^2 * R(y)``, exact for the posterior mean ``E[x | y]`` when ``R`` is
    the score of the noisy marginal.

    Args:
        sigma (float): Standard deviation on the 0-255 scale (the std of ``y - x`` is ``sigma/255``).
        clip (bool): Clip ``y`` to [0, 1]. Default: False.
        quantize (bool): Quantise ``y`` to steps of 1/255. Default: False.

    Note:
        :meth:`tweedie` is linear and needs no guard: the output is finite for a finite score.
        :meth:`grid` is sigma = 5, 10, ..., 55 (11 levels, step 5); the paper gives only the range 5..55.
    """

    param_name = 'sigma'
    limits = {'sigma': {}}
    has_tweedie = True
    grid_levels = tuple(5.0 * i for i in range(1, 12))  # 5, 10, ..., 55

    def __init__(self, sigma, clip=False, quantize=False):
        super().__init__(clip, quantize, sigma=sigma)

    @property
    def std(self):
        """Standard deviation on the [0, 1] scale."""
        return self.sigma / 255.0

    def _sample(self, x, generator):
        return x + self.std * self._randn(x, generator)

    def tweedie(self, y, score):
        """``xhat = y + (sigma/255)^2 * score``; ``y``, ``score``: (B, C, H, W), float."""
        return y + (self.std ** 2) * score

    def ardae_scale(self):
        return 0.05, 0.001
