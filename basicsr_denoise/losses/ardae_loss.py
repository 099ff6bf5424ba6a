"""AR-DAE score-matching loss with an annealed perturbation level (Noise2Score training)."""

import torch
from torch import nn

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class ARDAELoss(nn.Module):
    """Amortised residual denoising auto-encoder loss ``mean((sigma_a * R(y + sigma_a*u) + u)^2)``.

    Lim et al., "AR-DAE: Towards Unbiased Neural Entropy Gradient Estimation", ICML 2020, as used by
    Noise2Score (Kim & Ye, NeurIPS 2021). :meth:`perturb` draws ``u ~ N(0, I)`` and returns
    ``y_bar = y + sigma_a * u``; the network ``R`` sees ``y_bar`` only (not ``sigma_a``), and the minimiser
    of the loss is the score of the noisy marginal smoothed by ``N(0, sigma_a^2)``, which tends to the
    score itself as ``sigma_a -> 0``. No noise is injected at test time.

    ``sigma_a`` decreases linearly from ``sigma_max`` to ``sigma_min``:

    * ``anneal='global'`` (the intended schedule): over the whole run, ``iteration`` 1 ->
      ``sigma_max``, ``iteration = total_iter`` -> ``sigma_min``, constant outside;
    * ``anneal='per_epoch'`` (the authors' code, which indexes the schedule by a per-epoch sample
      counter): the same ramp over each epoch of ``iters_per_epoch`` iterations, restarting at
      ``sigma_max`` every epoch.

    Args:
        sigma_max (float): Initial perturbation std (on the network-input scale: [0, 1] images for
            Gaussian and Gamma noise, counts ``y/eta`` for Poisson, whose defaults are 1.0 -> 0.5;
            see ``NoiseModel.ardae_scale``). Default: 0.05.
        sigma_min (float): Final perturbation std, ``0 < sigma_min <= sigma_max``. Default: 0.001.
        total_iter (int | None): Number of training iterations; required for ``'global'``. Default: None.
        anneal (str): ``'global'`` or ``'per_epoch'``. Default: ``'global'``.
        iters_per_epoch (int | None): Iterations per epoch; required for ``'per_epoch'``. Default: None.
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        estimator (str): How ``u`` is drawn. ``'plain'`` (the paper): one draw per image.
            ``'antithetic'``: every image is perturbed twice, by ``+sigma_a*u`` and ``-sigma_a*u``, in
            one batch of ``2B``. Since ``-u`` has the law of ``u``, the expected loss and gradient are
            exactly the paper's (same minimiser, no bias), but the first-order term ``2*sigma_a*u.dR(y)``,
            whose variance grows as ``1/sigma_a^2`` relative to the signal, cancels between the pair: the
            pair's gradient is a central-difference Monte-Carlo SURE / sliced score-matching estimate.
            Costs one forward/backward of ``2B`` images per step. Default: ``'plain'``.

    Note:
        ``iteration`` is 1-based, like BasicSR's ``current_iter``. Our reading of the authors'
        per-epoch schedule reaches ``sigma_min`` at the last iteration of each epoch.
    """

    def __init__(self, sigma_max=0.05, sigma_min=0.001, total_iter=None, anneal='global', iters_per_epoch=None,
                 loss_weight=1.0, estimator='plain'):
        super().__init__()
        name = type(self).__name__
        if estimator not in ESTIMATORS:
            raise OptionError(f"{name}: estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        if not (isinstance(sigma_min, (int, float)) and isinstance(sigma_max, (int, float))
                and 0 < sigma_min <= sigma_max):
            raise OptionError(f'{name}: need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, '
                              f'sigma_max={sigma_max}')
        if anneal not in ('global', 'per_epoch'):
            raise OptionError(f"{name}: anneal must be 'global' or 'per_epoch', got {anneal!r}")
        length = total_iter if anneal == 'global' else iters_per_epoch
        length_key = 'total_iter' if anneal == 'global' else 'iters_per_epoch'
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise OptionError(f"{name}: {length_key} must be an integer >= 1 for anneal='{anneal}', got {length!r}")
        self.sigma_max = float(sigma_max)
        self.sigma_min = float(sigma_min)
        self.total_iter = total_iter
        self.anneal = anneal
        self.iters_per_epoch = iters_per_epoch
        self.loss_weight = loss_weight
        self.estimator = estimator
        self._length = length

    def sigma_a(self, iteration):
        """Perturbation std at the 1-based training ``iteration`` (float)."""
        step = max(int(iteration), 1) - 1
        if self.anneal == 'per_epoch':
            step %= self._length
        frac = min(step / max(self._length - 1, 1), 1.0)
        return self.sigma_max * (1.0 - frac) + self.sigma_min * frac

    def perturb(self, y, iteration, generator=None):
        """Perturb the network input.

        Args:
            y (Tensor): Network input (``NoiseModel.network_input`` of the noisy image), (B, C, H, W).
            iteration (int): 1-based training iteration.
            generator (torch.Generator | None): Generator on ``y.device`` for ``u``. Default: None.

        Returns:
            tuple: ``(y_bar, u, sigma_a)``: ``y_bar = y + sigma_a*u`` and ``u`` (both like ``y``; for
            ``estimator='antithetic'`` both are ``(2B, C, H, W)``, ``u = cat(u0, -u0)``), ``sigma_a`` (float).
        """
        sigma_a = self.sigma_a(iteration)
        u = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        if self.estimator == 'antithetic':
            y, u = torch.cat([y, y]), torch.cat([u, -u])
        return y + sigma_a * u, u, sigma_a

    def forward(self, score_pred, u, sigma_a):
        """Return ``loss_weight * mean((sigma_a * score_pred + u)^2)``.

        Args:
            score_pred (Tensor): ``R(y_bar)``, (B, C, H, W).
            u (Tensor): The standard normal draw of :meth:`perturb`, same shape.
            sigma_a (float): The perturbation std of :meth:`perturb`.
        """
        return self.loss_weight * (sigma_a * score_pred.float() + u).pow(2).mean()


#: The ``estimator`` choices of :class:`ARDAELoss`.
ESTIMATORS = ('plain', 'antithetic')
