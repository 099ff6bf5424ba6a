"""The MPI masked-input wrapper: ``D(x, M) = backbone(cat(x * M, M))``."""

import torch
from torch import nn

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import ARCH_REGISTRY

MASK_MODES = ('multchannel', 'singlechannel')


@ARCH_REGISTRY.register()
class MaskedNet(nn.Module):
    """Masked network of MPI: the backbone sees the kept pixels and the keep mask.

    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024
    (the authors' ``Fill_network``). The backbone is built from the registry with
    ``num_in_ch = 2 * in_ch`` (multchannel: one mask per colour channel) or
    ``in_ch + 1`` (singlechannel: one mask shared by all channels) and
    ``num_out_ch = in_ch``. It is stored as ``self.net``, so the state-dict keys are
    ``net.<backbone keys>``, exactly the authors' keys: their checkpoints load with
    ``strict=True`` into ``MaskedNet(backbone={'type': 'SkipNet'}, mask_mode=...)``
    (``DnCNN`` and ``DIPResNet`` for the other two released files).

    Example YAML::

        network_g:
          type: MaskedNet
          in_ch: 3
          mask_mode: multchannel     # singlechannel for imgnet_80_95_singlechannel_skip.pth
          backbone: {type: SkipNet}

    Args:
        backbone (dict): Option block of the backbone (``type`` plus its keyword
            arguments, without ``num_in_ch``/``num_out_ch``, which are derived here).
        in_ch (int): Image channels C (3 for RGB, 1 for gray). Default: 3.
        mask_mode (str): ``'multchannel'`` or ``'singlechannel'``. Default: ``'multchannel'``.

    Attributes:
        mask_channels (int): Channels of the mask the wrapper expects (C or 1).
        min_size (int): Smallest accepted image side (from the backbone; 33 for SkipNet).
        size_multiple (int): Sides that are multiples of it need no internal cropping
            (32 for the 5-scale SkipNet; 1 when the backbone has no constraint).
    """

    def __init__(self, backbone, in_ch=3, mask_mode='multchannel'):
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise OptionError(f"mask_mode: unknown mode '{mask_mode}' (known: {', '.join(MASK_MODES)})")
        if not isinstance(backbone, dict):
            raise OptionError('backbone: needs an option block with a type, e.g. {type: SkipNet}')
        self.in_ch = int(in_ch)
        self.mask_mode = mask_mode
        self.mask_channels = self.in_ch if mask_mode == 'multchannel' else 1
        derived = {'num_in_ch': self.in_ch + self.mask_channels, 'num_out_ch': self.in_ch}
        opt = dict(backbone)
        for k, v in derived.items():
            if k in opt:
                if opt[k] != v:
                    raise OptionError(f'backbone.{k}: is {opt[k]} but in_ch {in_ch} with mask_mode {mask_mode} '
                                      f'needs {v} (leave it out; MaskedNet derives it)')
                del opt[k]
        self.net = ARCH_REGISTRY.build(opt, key='network_g.backbone', **derived)
        self.min_size = int(getattr(self.net, 'min_size', 1))
        self.size_multiple = int(getattr(self.net, 'size_multiple', 1))

    def forward(self, x, mask):
        """Predict the image from its kept pixels.

        Args:
            x (Tensor): ``(B, C, H, W)``, RGB (or gray), float32 in [0, 1].
            mask (Tensor): Keep mask (1 = kept, 0 = hidden), float, ``(B, C, H, W)`` for
                multchannel or ``(B, 1, H, W)`` for singlechannel; a batch dimension of 1
                is broadcast.

        Returns:
            Tensor: ``(B, C, H, W)`` prediction (in [0, 1] for sigmoid backbones). Only its
            hidden pixels are meaningful for MPI's loss and ensemble.
        """
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f'MaskedNet: expected x of shape (B, {self.in_ch}, H, W), got {tuple(x.shape)}')
        if mask.dim() != 4 or mask.shape[1] != self.mask_channels or mask.shape[-2:] != x.shape[-2:]:
            raise ValueError(f'MaskedNet ({self.mask_mode}): expected a mask of shape '
                             f'(B, {self.mask_channels}, {x.shape[2]}, {x.shape[3]}), got {tuple(mask.shape)}')
        mask = mask.to(x.dtype)
        if mask.shape[0] != x.shape[0]:
            mask = mask.expand(x.shape[0], -1, -1, -1)
        return self.net(torch.cat([x * mask, mask], dim=1))
