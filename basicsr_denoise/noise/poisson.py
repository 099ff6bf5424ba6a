"""Poisson (shot) noise."""

import torch

from basicsr_denoise.noise.base import NoiseModel
from basicsr_denoise.utils.registry import NOISE_REGISTRY

# Largest score fed to exp() in the Tweedie step: exp(20) = 4.9e8 is far above any ratio
# xhat / (y + eta/2) of images in [0, 1], and keeps the output finite in float32.
_MAX_LOG_RATIO = 20.0


@NOISE_REGISTRY.register()
class Poisson(NoiseModel):
    """Poisson noise ``y = eta * Poisson(x / eta)`` (mean ``x``, variance ``eta * x``).

    Noise2Score (Kim & Ye, NeurIPS 2021) notation. The MPI code base writes the same noise as
    ``Poisson(lambda * x) / lambda``, i.e. ``lambda = 1 / eta``; this class takes ``eta`` only.

    The score network sees ``z = y / eta`` (integer counts) and Tweedie's step is the paper's
    ``xhat = (y + eta/2) * exp(R(y / eta))``.

    Which formula is exact: with ``z = y/eta``, ``lam = x/eta`` and ``p`` the marginal pmf of ``z``,

    * Robbins' identity ``E[x | y] = eta * (z + 1) * p(z + 1) / p(z) = (y + eta) * p(z+1)/p(z)``
      is the exact posterior mean (available as :meth:`tweedie_exact`, given the log pmf ratio);
    * the exponential-family Tweedie identity is exact for the log: extending ``p`` to real ``z``
      through ``Gamma(z + 1)``, ``E[log lam | z] = (log p)'(z) + digamma(z + 1)``. With
      ``digamma(z + 1) ~= log(z + 1/2)`` (error below ``1 / (24 (z + 1/2)^2)``) this becomes the
      paper's form, so :meth:`tweedie` estimates the posterior *geometric* mean
      ``exp(E[log x | y])``, which is below the posterior mean by Jensen's inequality (the gap
      vanishes when the posterior is narrow, i.e. for small ``eta``).

    Args:
        eta (float): Noise level on the [0, 1] scale (``lambda = 1/eta`` photons per unit intensity).
        clip (bool): Clip ``y`` to [0, 1]. Default: False.
        quantize (bool): Quantise ``y`` to steps of 1/255. Default: False.

    Note:
        ``x`` is clamped to ``>= 0`` before sampling (a Poisson rate cannot be negative).
        :meth:`grid` is eta = 0.005, 0.010, ..., 0.100 (20 levels, step 0.005); the paper gives only the range.
        In :meth:`tweedie` the score is clamped to ``<= 20`` so ``exp`` cannot overflow: the output is
        finite for any score, infinite ones included (a NaN score stays NaN).
    """

    param_name = 'eta'
    limits = {'eta': {}}
    has_tweedie = True
    grid_levels = tuple(round(0.005 * i, 6) for i in range(1, 21))

    def __init__(self, eta, clip=False, quantize=False):
        super().__init__(clip, quantize, eta=eta)

    def _sample(self, x, generator):
        rate = x.clamp_min(0.0) / self.eta
        return self.eta * torch.poisson(rate, generator=generator)

    def network_input(self, y):
        """Counts ``z = y / eta`` (what the score network sees)."""
        return y / self.eta

    def tweedie(self, y, score):
        """Paper's form ``xhat = (y + eta/2) * exp(score)``; ``score = R(y / eta)``, (B, C, H, W)."""
        return (y + 0.5 * self.eta) * torch.exp(score.clamp(max=_MAX_LOG_RATIO))

    def tweedie_exact(self, y, log_pmf_ratio):
        """Robbins' exact posterior mean ``E[x | y] = (y + eta) * exp(log p(z + 1) - log p(z))``, ``z = y/eta``.

        Args:
            y (Tensor): Noisy image (multiples of ``eta``).
            log_pmf_ratio (Tensor): ``log p(z + 1) - log p(z)`` of the marginal pmf of the counts.
        """
        return (y + self.eta) * torch.exp(log_pmf_ratio.clamp(max=_MAX_LOG_RATIO))

    def ardae_scale(self):
        return 1.0, 0.5


