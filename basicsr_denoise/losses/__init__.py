"""Losses, registered in ``LOSS_REGISTRY`` and built from ``train.*_opt`` blocks with :func:`build_loss`.

The loss modules are imported lazily (by the registry on its first lookup, or here on first use of a
name), so one broken loss module never breaks the others.
"""

from basicsr_denoise.utils.registry import LOSS_REGISTRY, lazy_getattr

#: Public names and the module that defines each.
_LAZY = {'L1Loss': 'pixel_loss', 'MSELoss': 'pixel_loss', 'weight_reduce_loss': 'pixel_loss',
         'MaskedPSNRLoss': 'masked_loss', 'MaskedL1Loss': 'masked_loss', 'MaskedMSELoss': 'masked_loss',
         'ARDAELoss': 'ardae_loss'}
__all__ = sorted(_LAZY) + ['build_loss']
__getattr__ = lazy_getattr(__name__, _LAZY)


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
