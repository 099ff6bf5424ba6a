"""Multiplicative Gamma noise, with a seeded Gamma sampler."""

import math

import torch

from basicsr_denoise.noise.base import NoiseModel
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import NOISE_REGISTRY

# Smallest denominator allowed in the Gamma Tweedie step (the exact denominator is k*y*E[1/x|y] > 0).
_MIN_DENOMINATOR = 1e-6


def standard_gamma(k, shape, generator=None, device=None, dtype=torch.float32):
    """Draw ``Gamma(k, 1)`` samples using only ``generator`` (reproducible from its seed).

    Marsaglia & Tsang, "A Simple Method for Generating Gamma Variables", ACM TOMS 2000: vectorised
    rejection sampling with generator-driven normals and uniforms (acceptance >= 95 % per round for
    ``k >= 1``); for ``k < 1`` a ``Gamma(k + 1)`` draw is multiplied by ``U^(1/k)``.
    ``torch._standard_gamma`` cannot take a generator, hence this function.

    Args:
        k (float): Shape parameter, > 0.
        shape (tuple[int]): Output shape.
        generator (torch.Generator | None): Generator on ``device``. Default: None (global generator).
        device (torch.device | str | None): Device of the output. Default: None (CPU).
        dtype (torch.dtype): Output dtype. Default: torch.float32.

    Returns:
        Tensor: ``shape``, ``dtype``, on ``device``; mean ``k``, variance ``k``.
    """
    k = float(k)
    if not k > 0:
        raise OptionError(f'standard_gamma: k must be > 0, got {k:g}')
    device = torch.device('cpu') if device is None else torch.device(device)
    work = torch.float32 if device.type == 'mps' else torch.float64  # no float64 on MPS
    a = k + 1.0 if k < 1.0 else k
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    flat = torch.empty(math.prod(shape), device=device, dtype=work)
    todo = torch.arange(flat.numel(), device=device)
    for _ in range(1000):  # each round accepts >= 95 % of what is left
        if todo.numel() == 0:
            break
        z = torch.randn(todo.numel(), generator=generator, device=device, dtype=work)
        u = torch.rand(todo.numel(), generator=generator, device=device, dtype=work)
        v = (1.0 + c * z) ** 3
        positive = v > 0
        log_v = torch.log(torch.where(positive, v, torch.ones_like(v)))
        accept = positive & (torch.log(u) < 0.5 * z * z + d - d * v + d * log_v)
        flat[todo[accept]] = (d * v)[accept]
        todo = todo[~accept]
    else:  # pragma: no cover - probability below 0.05**1000
        raise RuntimeError('standard_gamma: rejection sampling did not finish')
    if k < 1.0:
        u = torch.rand(flat.numel(), generator=generator, device=device, dtype=work)
        flat = flat * u ** (1.0 / k)
    return flat.view(shape).to(dtype)


@NOISE_REGISTRY.register()
class Gamma(NoiseModel):
    """Multiplicative Gamma noise ``y = x * g``, ``g ~ Gamma(k, scale 1/k)`` (mean ``x``, variance ``x^2 / k``).

    Tweedie's step as in Noise2Score (Kim & Ye, NeurIPS 2021): ``xhat = k*y / ((k - 1) - y * R(y))``.
    With ``R`` the score of the noisy marginal this is *exact* for the posterior harmonic mean
    ``1 / E[1/x | y]`` (the Gamma likelihood is an exponential family in ``-k/x``), not for the
    posterior mean ``E[x | y]``; the two agree to ``O(1/k)``.

    Args:
        k (float): Shape of the Gamma distribution (larger = less noise), > 0.
        clip (bool): Clip ``y`` to [0, 1]. Default: False.
        quantize (bool): Quantise ``y`` to steps of 1/255. Default: False.

    Note:
        ``x`` is clamped to ``>= 0`` before sampling. The Gamma variates come from
        :func:`standard_gamma` (seeded by the generator), not from ``torch.distributions``.
        In :meth:`tweedie` the denominator is clamped to ``>= 1e-6`` (its exact value
        ``k * y * E[1/x | y]`` is positive for ``y > 0``) and ``y = 0`` maps to 0, so the output is
        finite for any score, infinite ones included (a NaN score stays NaN).
        :meth:`grid` is k = 40, 50, ..., 120 (9 levels, step 10); the paper gives only the range.
    """

    param_name = 'k'
    limits = {'k': {}}
    has_tweedie = True
    grid_levels = tuple(float(k) for k in range(40, 121, 10))

    def __init__(self, k, clip=False, quantize=False):
        super().__init__(clip, quantize, k=k)

    def _sample(self, x, generator):
        g = standard_gamma(self.k, tuple(x.shape), generator=generator, device=x.device, dtype=x.dtype) / self.k
        return x.clamp_min(0.0) * g

    def tweedie(self, y, score):
        """``xhat = k*y / ((k - 1) - y*score)``; ``y``, ``score``: (B, C, H, W), float."""
        prod = torch.where(y == 0, torch.zeros_like(y), y * score)  # y = 0 gives xhat = 0 even for an infinite score
        prod = torch.nan_to_num(prod, nan=float('nan'))  # +-inf -> +-max float, a NaN score stays NaN
        den = ((self.k - 1.0) - prod).clamp_min(_MIN_DENOMINATOR)
        return self.k * y / den

    def ardae_scale(self):
        return 0.05, 0.001
