"""The Deep-Image-Prior ResNet, in the variant the MPI authors released."""

from torch import nn

from basicsr_denoise.archs.skip_arch import make_act, make_conv
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import ARCH_REGISTRY


class ResidualSequential(nn.Sequential):
    """``nn.Sequential`` whose output is added to its input (DIP models/resnet.py).

    DIP centre-crops the input when the sizes differ; the blocks here keep the size,
    so the crop never happens and is not reproduced.
    """

    def forward(self, x):
        return super().forward(x) + x


@ARCH_REGISTRY.register()
class DIPResNet(nn.Module):
    """Deep-Image-Prior ResNet: head conv, residual conv-BN-act-conv-BN blocks, tail.

    Ulyanov et al., "Deep Image Prior", CVPR 2018 (models/resnet.py), as released by
    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024
    (``imgnet_30_multchannel_resnet.pth``: 3 blocks of 64 channels, 0.27 M parameters).

    Layout (``model.<index>``): reflection-padded conv(in -> F, bias) [0], act [1];
    ``num_blocks`` residual blocks [2..] of conv3x3 (no bias, zero padding), BN, act,
    conv3x3 (no bias), BN; conv3x3 (F -> F, bias, zero padding) [n+2], BN [n+3];
    reflection-padded conv(F -> out, bias) [n+4]; sigmoid [n+5].

    Args:
        num_in_ch (int): Input channels (``2C`` or ``C+1`` behind :class:`MaskedNet`). Default: 6.
        num_out_ch (int): Output channels. Default: 3.
        num_blocks (int): Residual blocks. Default: 3.
        num_feat (int): Channels. Default: 64.
        need_residual (bool): Residual connections in the blocks. Default: True.
        act_fun (str): Activation, as in :class:`SkipNet`. Default: ``'LeakyReLU'`` (0.2).
        need_sigmoid (bool): Sigmoid on the output. Default: True.
        pad (str): Padding of the head and tail convs, ``'reflection'`` or ``'zero'``; the
            authors' checkpoint needs ``'reflection'``. Default: ``'reflection'``.

    Note:
        DIP's ResNet appends the sigmoid whatever its ``need_sigmoid`` says; here
        ``need_sigmoid=False`` really removes it (the default keeps DIP's behaviour).
    """

    def __init__(self, num_in_ch=6, num_out_ch=3, num_blocks=3, num_feat=64, need_residual=True,
                 act_fun='LeakyReLU', need_sigmoid=True, pad='reflection'):
        super().__init__()
        if num_blocks < 0:
            raise OptionError(f'num_blocks: must be >= 0, got {num_blocks}')
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.min_size = 2  # reflection padding of 1 needs sides >= 2
        self.size_multiple = 1
        block_cls = ResidualSequential if need_residual else nn.Sequential
        layers = [make_conv(num_in_ch, num_feat, 3, bias=True, pad=pad), make_act(act_fun)]
        for _ in range(num_blocks):
            layers.append(
                block_cls(
                    nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(num_feat, affine=True),
                    make_act(act_fun),
                    nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(num_feat, affine=True),
                ))
        layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.BatchNorm2d(num_feat, affine=True)]
        layers.append(make_conv(num_feat, num_out_ch, 3, bias=True, pad=pad))
        if need_sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        """``(B, num_in_ch, H, W)`` -> ``(B, num_out_ch, H, W)``; in [0, 1] with the sigmoid."""
        return self.model(x)
