"""The Deep-Image-Prior ``skip`` encoder-decoder, the default network of MPI.

Ulyanov, Vedaldi and Lempitsky, "Deep Image Prior", CVPR 2018 (models/skip.py of
DmitryUlyanov/deep-image-prior), as used by Ma et al., "Masked Pre-training Enables
Universal Zero-shot Denoiser", NeurIPS 2024.

The module tree is built exactly like DIP's ``skip()`` builder so that state-dict
keys match the MPI authors' checkpoints natively (no key map):

* DIP's ``nn.Module.add`` names children ``str(len(self) + 1)``, so every
  ``nn.Sequential`` built with ``add`` starts at index **1**; there is no ``net.0``.
* ``Concat(dim, *modules)`` names its branches ``0`` (skip) and ``1`` (deeper).
* ``conv(..., pad='reflection')`` is ``nn.Sequential(ReflectionPad2d, Conv2d)``, so
  conv weights sit at ``<conv>.1.weight`` (a 1x1 conv gets a ``ReflectionPad2d(0)``).

One scale ``i`` (the authors' key pattern in brackets)::

    Concat(1,                                    [.1]
        skip:   conv1x1, BN, act                 [.1.0.{1,2,3}]
        deeper: conv3x3/2, BN, act,              [.1.1.{1,2,3}]
                conv3x3, BN, act,                [.1.1.{4,5,6}]
                <scale i+1 (a Sequential)>,      [.1.1.7]   (absent at the deepest scale)
                Upsample x2)                     [.1.1.8]   ([.1.1.7] at the deepest scale)
    BN(skip + up), conv3x3, BN, act,             [.2 .3 .4 .5]
    conv1x1, BN, act                             [.6 .7 .8]  (need1x1_up)

and the top level ends with ``conv1x1 -> num_out_ch`` [.9] and a sigmoid [.10].
"""

import torch
from torch import nn

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import ARCH_REGISTRY


class DIPSequential(nn.Sequential):
    """``nn.Sequential`` whose :meth:`add` names children from ``'1'`` like DIP's ``Module.add``."""

    def add(self, module):
        """Append ``module`` under the name ``str(len(self) + 1)`` (DIP's numbering)."""
        self.add_module(str(len(self) + 1), module)
        return self


class Concat(nn.Module):
    """Run every branch on the same input and concatenate the results along ``dim``.

    Deep Image Prior (models/common.py). When the branches disagree in spatial size
    (an input side that is not a multiple of the stride product), every output is
    centre-cropped to the smallest height and width before concatenation.

    Args:
        dim (int): Concatenation dimension (1 = channels).
        *modules (nn.Module): The branches, named ``'0'``, ``'1'``, ...
    """

    def __init__(self, dim, *modules):
        super().__init__()
        self.dim = dim
        for idx, module in enumerate(modules):
            self.add_module(str(idx), module)

    def forward(self, x):
        outs = [m(x) for m in self._modules.values()]
        h = min(o.shape[2] for o in outs)
        w = min(o.shape[3] for o in outs)
        cropped = []
        for o in outs:
            if o.shape[2] != h or o.shape[3] != w:
                dh, dw = (o.shape[2] - h) // 2, (o.shape[3] - w) // 2
                o = o[:, :, dh:dh + h, dw:dw + w]
            cropped.append(o)
        return torch.cat(cropped, dim=self.dim)


def make_act(act_fun):
    """DIP's ``act()``: ``'LeakyReLU'`` (slope 0.2), ``'ReLU'``, ``'ELU'``, ``'Swish'`` or ``'none'``.

    Note: DIP builds its activations in place; these are not (same numbers, autograd-safe).
    """
    if act_fun == 'LeakyReLU':
        return nn.LeakyReLU(0.2)
    if act_fun == 'ReLU':
        return nn.ReLU()
    if act_fun == 'ELU':
        return nn.ELU()
    if act_fun == 'Swish':
        return nn.SiLU()
    if act_fun == 'none':
        return nn.Sequential()
    raise OptionError(f"act_fun: unknown activation '{act_fun}' (known: LeakyReLU, ReLU, ELU, Swish, none)")


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that keeps its input's dtype under autocast, and is the identity for zero padding.

    Autocast runs ``reflection_pad2d`` in float32: in a bf16 network every padded convolution then
    cast its whole input to float32 and back (and again in the backward pass), a quarter of a CPU fill
    step spent copying. Padding only moves values, so padding the bf16 tensor itself gives the same
    numbers. No parameters: checkpoints are unchanged.
    """

    def forward(self, x):
        if not any(self.padding):
            return x
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x)


def _channels_last_grad(grad):
    return grad.contiguous(memory_format=torch.channels_last)


class Upsample(nn.Upsample):
    """``nn.Upsample`` whose backward pass stays channels-last.

    The gradient reaching a channels-last upsampling is a channel slice of :class:`Concat`'s gradient,
    contiguous in no layout, and the CPU kernel then transposes it to NCHW (a quarter of a second per
    step at the top scale of a 768x512 photo). A hook makes it channels-last first, a cheap copy, and the
    kernel's channels-last path gives the same values. No parameters: checkpoints are unchanged.
    """

    def forward(self, x):
        y = super().forward(x)
        if y.requires_grad and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
                and not x.is_contiguous():
            y.register_hook(_channels_last_grad)
        return y


def with_torch_modules(net):
    """``net`` (changed in place) with torch's own ``nn.ReflectionPad2d`` and ``nn.Upsample`` in place of
    :class:`ReflectionPad2d` and :class:`Upsample`: the same function and weights, torch's speed (for the
    benchmarks and tests that compare the two)."""
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, ReflectionPad2d):
                setattr(module, name, nn.ReflectionPad2d(child.padding))
            elif isinstance(child, Upsample):
                setattr(module, name, nn.Upsample(scale_factor=child.scale_factor, mode=child.mode,
                                                  align_corners=child.align_corners))
    return net


def make_conv(in_f, out_f, kernel_size, stride=1, bias=True, pad='zero', downsample_mode='stride'):
    """DIP's ``conv()``: ``nn.Sequential([padder], Conv2d, [downsampler])``.

    Args:
        in_f (int): Input channels.
        out_f (int): Output channels.
        kernel_size (int): Square kernel size.
        stride (int): 1 or 2. Default: 1.
        bias (bool): Conv bias. Default: True.
        pad (str): ``'reflection'`` (a ``ReflectionPad2d`` module in front of the conv,
            so the conv is child ``1``) or ``'zero'`` (conv padding; the conv is child ``0``).
            Default: ``'zero'``.
        downsample_mode (str): How a stride-2 conv downsamples: ``'stride'``, ``'avg'`` or
            ``'max'`` (a stride-1 conv followed by 2x2 pooling). Default: ``'stride'``.
    """
    downsampler = None
    if stride != 1 and downsample_mode != 'stride':
        if downsample_mode == 'avg':
            downsampler = nn.AvgPool2d(stride, stride)
        elif downsample_mode == 'max':
            downsampler = nn.MaxPool2d(stride, stride)
        else:
            raise OptionError(f"downsample_mode: unsupported '{downsample_mode}' (known: stride, avg, max)")
        stride = 1
    padder = None
    to_pad = (kernel_size - 1) // 2
    if pad == 'reflection':
        padder = ReflectionPad2d(to_pad)
        to_pad = 0
    elif pad != 'zero':
        raise OptionError(f"pad: unknown padding '{pad}' (known: reflection, zero)")
    convolver = nn.Conv2d(in_f, out_f, kernel_size, stride, padding=to_pad, bias=bias)
    return nn.Sequential(*[m for m in (padder, convolver, downsampler) if m is not None])


def _per_scale(value, n, name):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise OptionError(f'{name}: needs {n} entries (one per scale), got {len(value)}')
        return list(value)
    return [value] * n


@ARCH_REGISTRY.register()
class SkipNet(DIPSequential):
    """Deep-Image-Prior ``skip`` encoder-decoder (MPI's default masked network).

    Deep Image Prior (Ulyanov et al., CVPR 2018), configured as in MPI (Ma et al.,
    NeurIPS 2024): 5 scales of 64 channels in the down, up and skip paths, reflection
    padding, stride-2 downsampling, nearest upsampling, LeakyReLU(0.2), a final 1x1
    conv and a sigmoid; about 0.75 M parameters. The module itself is the DIP
    ``nn.Sequential`` (children ``'1'``..``'10'``), so ``state_dict()`` keys equal the
    MPI authors' keys after their ``net.`` prefix.

    Size constraints: every scale halves with ``ceil`` (stride-2 conv, reflection pad),
    and the upsampled deeper branch is cropped to the skip branch by :class:`Concat`,
    so any input size gives an output of the same size. Inputs whose sides are
    multiples of ``size_multiple`` (``2 ** n_scales``, 32 by default) need no
    cropping; for other sizes the extra upsampled row/column at the bottom/right is
    dropped (no misalignment). The deepest feature map must be at least 2x2 for its
    reflection padding, so both sides must be ``>= min_size`` (``2 ** n_scales + 1``,
    33 by default); use :func:`basicsr_denoise.archs.arch_util.pad_to_multiple` for
    smaller images.

    Args:
        num_in_ch (int): Input channels (``2C`` for multchannel masks, ``C+1`` for
            singlechannel ones; :class:`MaskedNet` sets it). Default: 6.
        num_out_ch (int): Output channels. Default: 3.
        num_channels_down (list[int] | None): Channels of the down path per scale.
            Default: None (``[64] * 5``).
        num_channels_up (list[int] | None): Channels of the up path per scale.
            Default: None (``[64] * 5``).
        num_channels_skip (list[int] | None): Channels of the skip path per scale
            (0 disables that skip). Default: None (``[64] * 5``).
        filter_size_down (int | list[int]): Kernel of the down convs. Default: 3.
        filter_size_up (int | list[int]): Kernel of the merge convs. Default: 3.
        filter_skip_size (int): Kernel of the skip convs. Default: 1.
        need_sigmoid (bool): Sigmoid on the output. Default: True.
        need_bias (bool): Conv biases. Default: True.
        pad (str): ``'reflection'`` or ``'zero'``. The authors' checkpoints need
            ``'reflection'`` (it adds the padding module that shifts the conv index). Default: ``'reflection'``.
        upsample_mode (str | list[str]): ``'nearest'`` or ``'bilinear'``. Default: ``'nearest'``.
        downsample_mode (str | list[str]): ``'stride'``, ``'avg'`` or ``'max'``. Default: ``'stride'``.
        act_fun (str): ``'LeakyReLU'`` (0.2), ``'ReLU'``, ``'ELU'``, ``'Swish'`` or ``'none'``.
            Default: ``'LeakyReLU'``.
        need1x1_up (bool): The 1x1 conv, BN, act after each merge. Default: True.

    Note:
        DIP's default channel lists are ``[16, 32, 64, 128, 128]`` / skip ``[4] * 5`` and
        its default padding is ``'zero'``; the defaults here are MPI's.
    """

    def __init__(self,
                 num_in_ch=6,
                 num_out_ch=3,
                 num_channels_down=None,
                 num_channels_up=None,
                 num_channels_skip=None,
                 filter_size_down=3,
                 filter_size_up=3,
                 filter_skip_size=1,
                 need_sigmoid=True,
                 need_bias=True,
                 pad='reflection',
                 upsample_mode='nearest',
                 downsample_mode='stride',
                 act_fun='LeakyReLU',
                 need1x1_up=True):
        super().__init__()
        down = list(num_channels_down) if num_channels_down is not None else [64] * 5
        n = len(down)
        if n < 1:
            raise OptionError('num_channels_down: needs at least one scale')
        up = _per_scale(num_channels_up if num_channels_up is not None else [64] * n, n, 'num_channels_up')
        skip = _per_scale(num_channels_skip if num_channels_skip is not None else [64] * n, n, 'num_channels_skip')
        upsample_mode = _per_scale(upsample_mode, n, 'upsample_mode')
        downsample_mode = _per_scale(downsample_mode, n, 'downsample_mode')
        filter_size_down = _per_scale(filter_size_down, n, 'filter_size_down')
        filter_size_up = _per_scale(filter_size_up, n, 'filter_size_up')
        for mode in upsample_mode:
            if mode not in ('nearest', 'bilinear'):
                raise OptionError(f"upsample_mode: unknown mode '{mode}' (known: nearest, bilinear)")

        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.n_scales = n
        self.size_multiple = 2**n
        self.min_size = 2**n + 1

        model_tmp = self
        input_depth = num_in_ch
        for i in range(n):
            deeper = DIPSequential()
            skip_branch = DIPSequential()
            if skip[i] != 0:
                model_tmp.add(Concat(1, skip_branch, deeper))
            else:
                model_tmp.add(deeper)
            model_tmp.add(nn.BatchNorm2d(skip[i] + (up[i + 1] if i < n - 1 else down[i])))

            if skip[i] != 0:
                skip_branch.add(make_conv(input_depth, skip[i], filter_skip_size, bias=need_bias, pad=pad))
                skip_branch.add(nn.BatchNorm2d(skip[i]))
                skip_branch.add(make_act(act_fun))

            deeper.add(make_conv(input_depth, down[i], filter_size_down[i], 2, bias=need_bias, pad=pad,
                                 downsample_mode=downsample_mode[i]))
            deeper.add(nn.BatchNorm2d(down[i]))
            deeper.add(make_act(act_fun))
            deeper.add(make_conv(down[i], down[i], filter_size_down[i], bias=need_bias, pad=pad))
            deeper.add(nn.BatchNorm2d(down[i]))
            deeper.add(make_act(act_fun))

            deeper_main = DIPSequential()
            if i == n - 1:
                k = down[i]
            else:
                deeper.add(deeper_main)
                k = up[i + 1]
            if upsample_mode[i] == 'bilinear':
                deeper.add(Upsample(scale_factor=2, mode='bilinear', align_corners=False))
            else:
                deeper.add(Upsample(scale_factor=2, mode='nearest'))

            model_tmp.add(make_conv(skip[i] + k, up[i], filter_size_up[i], 1, bias=need_bias, pad=pad))
            model_tmp.add(nn.BatchNorm2d(up[i]))
            model_tmp.add(make_act(act_fun))
            if need1x1_up:
                model_tmp.add(make_conv(up[i], up[i], 1, bias=need_bias, pad=pad))
                model_tmp.add(nn.BatchNorm2d(up[i]))
                model_tmp.add(make_act(act_fun))

            input_depth = down[i]
            model_tmp = deeper_main

        self.add(make_conv(up[0], num_out_ch, 1, bias=need_bias, pad=pad))
        if need_sigmoid:
            self.add(nn.Sigmoid())

    def forward(self, x):
        """Map ``(B, num_in_ch, H, W)`` (H, W >= ``min_size``) to ``(B, num_out_ch, H, W)``, in [0, 1] with the
        sigmoid."""
        if x.shape[-2] < self.min_size or x.shape[-1] < self.min_size:
            raise ValueError(f'SkipNet: input {tuple(x.shape[-2:])} is smaller than min_size {self.min_size} '
                             f'(pad it, e.g. with arch_util.pad_to_multiple)')
        return super().forward(x)
