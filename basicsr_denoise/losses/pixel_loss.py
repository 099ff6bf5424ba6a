"""Pixel losses with BasicSR's signature: ``loss_weight``, ``reduction`` and an optional element weight."""

from torch import nn
from torch.nn import functional as F

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import LOSS_REGISTRY

_REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(cls_name, reduction):
    """Raise an :class:`OptionError` unless ``reduction`` is ``'none'``, ``'mean'`` or ``'sum'``."""
    if reduction not in _REDUCTIONS:
        raise OptionError(f"{cls_name}: reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")


def weight_reduce_loss(loss, weight=None, reduction='mean'):
    """Weight an element-wise loss and reduce it (BasicSR's ``weight_reduce_loss``).

    Args:
        loss (Tensor): Element-wise loss, (B, C, H, W).
        weight (Tensor | None): Element weight, (B, C, H, W) or (B, 1, H, W). Default: None.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. With a weight, ``'mean'`` divides by the
            sum of the weights (counted over the channels of ``loss``). Default: ``'mean'``.

    Note:
        Unlike BasicSR, a weight that sums to zero gives a loss of 0 instead of NaN.
    """
    if weight is not None:
        if weight.dim() != loss.dim() or weight.size(1) not in (1, loss.size(1)):
            raise ValueError(f'weight of shape {tuple(weight.shape)} does not fit a loss of shape {tuple(loss.shape)}')
        loss = loss * weight
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if weight is None:
        return loss.mean()
    total = weight.sum() if weight.size(1) > 1 else weight.sum() * loss.size(1)
    return loss.sum() / total.clamp_min(1e-12)


class _PixelLoss(nn.Module):
    """Shared code of :class:`L1Loss` and :class:`MSELoss`."""

    _fn = None

    def __init__(self, loss_weight=1.0, reduction='mean'):
        super().__init__()
        check_reduction(type(self).__name__, reduction)
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self, pred, target, weight=None, **kwargs):
        """Return the weighted, reduced loss.

        Args:
            pred (Tensor): Prediction, (B, C, H, W).
            target (Tensor): Target, (B, C, H, W).
            weight (Tensor | None): Element weight, (B, C, H, W) or (B, 1, H, W). Default: None.
        """
        return self.loss_weight * weight_reduce_loss(type(self)._fn(pred, target, reduction='none'), weight,
                                                     self.reduction)


@LOSS_REGISTRY.register()
class L1Loss(_PixelLoss):
    """L1 (mean absolute error) loss, BasicSR's ``L1Loss``.

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Default: ``'mean'``.
    """

    _fn = staticmethod(F.l1_loss)


@LOSS_REGISTRY.register()
class MSELoss(_PixelLoss):
    """MSE (L2) loss, BasicSR's ``MSELoss``; arguments as :class:`L1Loss` (``loss_weight``, ``reduction``)."""

    _fn = staticmethod(F.mse_loss)
