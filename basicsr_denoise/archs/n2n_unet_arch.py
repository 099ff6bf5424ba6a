"""The Noise2Noise U-Net, the score network of Noise2Score."""

import torch
from torch import nn

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class N2NUNet(nn.Module):
    """Noise2Noise U-Net: 5 max-pool levels of 48 channels, 96-channel decoder.

    Lehtinen et al., "Noise2Noise: Learning Image Restoration without Clean Data",
    ICML 2018 (network of its appendix; PyTorch layout of joeylitalien/noise2noise-pytorch
    ``UNet``), as used by Kim & Ye, "Noise2Score", NeurIPS 2021.

    Blocks (``_block<i>``): 1 = conv(in->48), conv(48->48), maxpool; 2 = conv(48->48),
    maxpool (pools 2-5); 3 = conv(48->48), transposed conv x2; 4 = conv(96->96) x2,
    transposed conv x2; 5 = conv(144->96), conv(96->96), transposed conv x2 (decoder
    levels 4-2); 6 = conv(96+in->64), conv(64->32), conv(32->out). Every conv but the
    last is followed by LeakyReLU(0.1); no normalisation; the output is linear.

    Size constraint: the encoder halves the size five times and the transposed convs
    double it exactly, so H and W must be multiples of ``size_multiple`` (32); pad other
    sizes with :func:`basicsr_denoise.archs.arch_util.pad_to_multiple` and crop back with
    ``unpad`` (the forward pass raises ``ValueError`` otherwise).

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        tied (bool): Reuse one encoder block (``_block2``) at pools 2-5 and one decoder
            block (``_block5``) at three decoder levels, as the authors' code does. With
            False every level has its own weights (``_block2.<0-3>``, ``_block5.<0-2>``).
            Default: True.
        init (str): ``'normal'`` (weights N(0, ``init_std``), biases 0; the Noise2Score
            authors), ``'kaiming'`` (He normal, biases 0; joeylitalien) or ``'default'``
            (PyTorch's). Default: ``'normal'``.
        init_std (float): Standard deviation of the ``'normal'`` init. Default: 0.02.
        negative_slope (float): LeakyReLU slope (0 gives ReLU). Default: 0.1.

    Note:
        joeylitalien's ``UNet`` uses ReLU inside and a LeakyReLU(0.1) on the output; this
        follows the Noise2Noise paper (LeakyReLU 0.1 everywhere, linear output), which is
        what Noise2Score's score network needs (a score takes both signs).
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, tied=True, init='normal', init_std=0.02, negative_slope=0.1):
        super().__init__()
        if init not in ('normal', 'kaiming', 'default'):
            raise OptionError(f"init: unknown init '{init}' (known: normal, kaiming, default)")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.tied = tied
        self.size_multiple = 32
        self.min_size = 32

        if negative_slope < 0:
            raise OptionError(f'negative_slope: must be >= 0, got {negative_slope}')

        def act():
            return nn.LeakyReLU(negative_slope, inplace=True) if negative_slope else nn.ReLU(inplace=True)

        def up(ch):
            return nn.ConvTranspose2d(ch, ch, 3, stride=2, padding=1, output_padding=1)

        def block2():
            return nn.Sequential(nn.Conv2d(48, 48, 3, padding=1), act(), nn.MaxPool2d(2))

        def block5():
            return nn.Sequential(
                nn.Conv2d(144, 96, 3, padding=1), act(), nn.Conv2d(96, 96, 3, padding=1), act(), up(96))

        self._block1 = nn.Sequential(
            nn.Conv2d(num_in_ch, 48, 3, padding=1), act(), nn.Conv2d(48, 48, 3, padding=1), act(), nn.MaxPool2d(2))
        self._block2 = block2() if tied else nn.ModuleList([block2() for _ in range(4)])
        self._block3 = nn.Sequential(nn.Conv2d(48, 48, 3, padding=1), act(), up(48))
        self._block4 = nn.Sequential(
            nn.Conv2d(96, 96, 3, padding=1), act(), nn.Conv2d(96, 96, 3, padding=1), act(), up(96))
        self._block5 = block5() if tied else nn.ModuleList([block5() for _ in range(3)])
        self._block6 = nn.Sequential(
            nn.Conv2d(96 + num_in_ch, 64, 3, padding=1), act(), nn.Conv2d(64, 32, 3, padding=1), act(),
            nn.Conv2d(32, num_out_ch, 3, padding=1))
        self._init_weights(init, init_std)

    def _init_weights(self, init, std):
        if init == 'default':
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                if init == 'normal':
                    nn.init.normal_(m.weight, 0.0, std)
                else:
                    nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def _enc(self, i):
        return self._block2 if self.tied else self._block2[i]

    def _dec(self, i):
        return self._block5 if self.tied else self._block5[i]

    def forward(self, x):
        """``(B, num_in_ch, H, W)`` -> ``(B, num_out_ch, H, W)``; H, W multiples of 32; linear output."""
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f'N2NUNet: input size {h}x{w} is not a multiple of 32 '
                             f'(pad it with arch_util.pad_to_multiple and crop back with unpad)')
        pool1 = self._block1(x)
        pool2 = self._enc(0)(pool1)
        pool3 = self._enc(1)(pool2)
        pool4 = self._enc(2)(pool3)
        pool5 = self._enc(3)(pool4)
        up5 = self._block3(pool5)
        up4 = self._block4(torch.cat((up5, pool4), dim=1))
        up3 = self._dec(0)(torch.cat((up4, pool3), dim=1))
        up2 = self._dec(1)(torch.cat((up3, pool2), dim=1))
        up1 = self._dec(2)(torch.cat((up2, pool1), dim=1))
        return self._block6(torch.cat((up1, x), dim=1))
