"""Losses on the hidden pixels of a keep-mask (MPI masked pre-training and zero-shot filling)."""

import math

import torch
from torch import nn

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import LOSS_REGISTRY

_NORMALIZE = ('all', 'hidden')


def _hidden(pred, target, mask):
    """``((1 - M) * (pred - target), 1 - M broadcast to pred)``; M is the keep-mask (1 = kept)."""
    if pred.shape != target.shape:
        raise ValueError(f'pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}')
    hide = (1 - mask.to(pred.dtype)).expand_as(pred)
    return hide * (pred - target), hide


@LOSS_REGISTRY.register()
class MaskedPSNRLoss(nn.Module):
    """Negative PSNR on the hidden pixels, MPI's masked pre-training loss.

    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024. Per image
    ``10/ln(10) * log(mean(((1 - M) * (pred - target))^2) + eps)`` (the mean runs over all C*H*W
    elements, as the authors' code), averaged over the batch.

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        eps (float): Added to the per-image MSE inside the log. Default: 1e-8 (the authors').
    """

    def __init__(self, loss_weight=1.0, eps=1e-8):
        super().__init__()
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self, pred, target, mask):
        """Return the loss.

        Args:
            pred (Tensor): Network output, (B, C, H, W), float in [0, 1].
            target (Tensor): Clean image, (B, C, H, W), float in [0, 1].
            mask (Tensor): Keep-mask (1 = kept, 0 = hidden), (B, C, H, W) or (B, 1, H, W).
        """
        diff, _ = _hidden(pred, target, mask)
        mse = diff.pow(2).flatten(1).mean(1)
        return self.loss_weight * (10.0 / math.log(10.0) * torch.log(mse + self.eps)).mean()


class _MaskedPixelLoss(nn.Module):
    """Shared code of :class:`MaskedL1Loss` and :class:`MaskedMSELoss`."""

    def __init__(self, loss_weight=1.0, normalize='all'):
        super().__init__()
        if normalize not in _NORMALIZE:
            raise OptionError(f"{type(self).__name__}: normalize must be 'all' or 'hidden', got {normalize!r}")
        self.loss_weight = loss_weight
        self.normalize = normalize

    def _elementwise(self, diff):
        raise NotImplementedError

    def forward(self, pred, target, mask):
        """Return the loss on the hidden elements.

        Args:
            pred (Tensor): Network output, (B, C, H, W).
            target (Tensor): Target (the clean image in pre-training, the noisy image in zero-shot
                filling), (B, C, H, W).
            mask (Tensor): Keep-mask (1 = kept, 0 = hidden), (B, C, H, W) or (B, 1, H, W).
        """
        diff, hide = _hidden(pred, target, mask)
        total = self._elementwise(diff).sum()
        count = diff.numel() if self.normalize == 'all' else hide.sum().clamp_min(1.0)
        return self.loss_weight * total / count


@LOSS_REGISTRY.register()
class MaskedMSELoss(_MaskedPixelLoss):
    """MSE between ``(1 - M) * pred`` and ``(1 - M) * target``, MPI's zero-shot filling loss.

    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        normalize (str): ``'all'``: sum of squared hidden errors divided by the number of *all*
            elements, i.e. ``F.mse_loss((1-M)*pred, (1-M)*target)`` as the authors' zero-shot code;
            ``'hidden'``: divided by the number of hidden elements (a true mean over hidden pixels,
            independent of the mask ratio). Default: ``'all'``.

    Note:
        With ``'all'`` the loss scale (hence the effective learning rate) is proportional to the
        hidden fraction; the default keeps the authors' behaviour.
    """

    def _elementwise(self, diff):
        return diff.pow(2)


@LOSS_REGISTRY.register()
class MaskedL1Loss(_MaskedPixelLoss):
    """L1 loss between ``(1 - M) * pred`` and ``(1 - M) * target`` (an L1 variant of MPI's masked loss).

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        normalize (str): ``'all'`` (divide by the number of all elements, as :class:`MaskedMSELoss`)
            or ``'hidden'`` (divide by the number of hidden elements). Default: ``'all'``.
    """

    def _elementwise(self, diff):
        return diff.abs()
