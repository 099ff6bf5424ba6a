"""DnCNN, in the variant the MPI authors released as an alternative masked network."""

from torch import nn

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class DnCNN(nn.Module):
    """DnCNN: a plain stack of 3x3 conv + BN + ReLU layers.

    Zhang et al., "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image
    Denoising", TIP 2017 (the PyTorch layout of cszn/DnCNN, ``self.dncnn`` Sequential),
    as released by Ma et al., "Masked Pre-training Enables Universal Zero-shot
    Denoiser", NeurIPS 2024 (``imgnet_30_multchannel_dncnn.pth``).

    Layout (``dncnn.<index>``): conv(in -> F, bias) [0], ReLU [1]; then
    ``num_layers - 2`` times conv(F -> F, no bias), BN, ReLU [2..]; then conv(F -> out,
    no bias) [last]. 17 layers and 64 features give 0.56 M parameters.

    Args:
        num_in_ch (int): Input channels (``2C`` or ``C+1`` behind :class:`MaskedNet`). Default: 6.
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Features per layer. Default: 64.
        num_layers (int): Conv layers in total (>= 2). Default: 17.
        bn_eps (float): BatchNorm epsilon. Default: 1e-4 (cszn/DnCNN).
        bn_momentum (float): BatchNorm momentum (PyTorch convention). Default: 0.95 (cszn/DnCNN).
        out_act (str): ``'none'`` or ``'sigmoid'``. Default: ``'none'`` (the authors' checkpoint).
        residual (bool): Return ``x[:, :num_out_ch] - dncnn(x)`` (classic DnCNN noise
            prediction; needs ``num_in_ch >= num_out_ch``). Default: False.

    Note:
        The MPI masked network predicts the image itself (not a noise residual) with a
        linear output: the released checkpoint reconstructs hidden pixels (about 36 dB
        at 30 % hidden, BN in eval mode) with ``out_act='none', residual=False``
        (checked in tests/test_archs.py). The classic DnCNN is
        ``residual=True``. BN eps/momentum cannot be read from a checkpoint; the
        defaults are cszn/DnCNN's. MPI keeps BN in training mode, where momentum does
        not change the output and eps barely does.
    """

    def __init__(self, num_in_ch=6, num_out_ch=3, num_feat=64, num_layers=17, bn_eps=1e-4, bn_momentum=0.95,
                 out_act='none', residual=False):
        super().__init__()
        if num_layers < 2:
            raise OptionError(f'num_layers: DnCNN needs at least 2 layers, got {num_layers}')
        if out_act not in ('sigmoid', 'none'):
            raise OptionError(f"out_act: unknown output activation '{out_act}' (known: sigmoid, none)")
        if residual and num_in_ch < num_out_ch:
            raise OptionError('residual: needs num_in_ch >= num_out_ch')
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.residual = residual
        self.min_size = 1
        self.size_multiple = 1
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [
                nn.Conv2d(num_feat, num_feat, 3, padding=1, bias=False),
                nn.BatchNorm2d(num_feat, eps=bn_eps, momentum=bn_momentum),
                nn.ReLU(inplace=True)
            ]
        layers.append(nn.Conv2d(num_feat, num_out_ch, 3, padding=1, bias=False))
        self.dncnn = nn.Sequential(*layers)
        self.out_act = nn.Sigmoid() if out_act == 'sigmoid' else nn.Identity()

    def forward(self, x):
        """``(B, num_in_ch, H, W)`` -> ``(B, num_out_ch, H, W)``, RGB, float32, about [0, 1] (not clipped)."""
        out = self.dncnn(x)
        if self.residual:
            out = x[:, :self.num_out_ch] - out
        return self.out_act(out)
