"""Losses, registered in ``LOSS_REGISTRY`` and built from ``train.*_opt`` blocks with :func:`build_loss`."""

from basicsr_denoise.losses.ardae_loss import ARDAELoss
from basicsr_denoise.losses.masked_loss import MaskedL1Loss, MaskedMSELoss, MaskedPSNRLoss
from basicsr_denoise.losses.pixel_loss import L1Loss, MSELoss, weight_reduce_loss
from basicsr_denoise.utils.registry import LOSS_REGISTRY

__all__ = ['L1Loss', 'MSELoss', 'MaskedPSNRLoss', 'MaskedL1Loss', 'MaskedMSELoss', 'ARDAELoss',
           'weight_reduce_loss', 'build_loss']


def build_loss(opt, key='train.pixel_opt', source=None, **extra):
    """Build a loss from its option block, e.g. ``{type: MaskedPSNRLoss, loss_weight: 1.0}``.

    Args:
        opt (dict): Option block with a ``type`` entry; other entries are constructor arguments.
        key (str): Where the block sits in the option file, for error messages. Default: ``'train.pixel_opt'``.
        source (str | None): The option file, for error messages. Default: None.
        **extra: Arguments supplied by the code (e.g. ``total_iter`` for :class:`ARDAELoss`).

    Returns:
        nn.Module: The loss.
    """
    return LOSS_REGISTRY.build(opt, key=key, source=source, **extra)
