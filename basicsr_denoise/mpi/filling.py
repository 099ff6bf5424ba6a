"""Zero-shot iterative filling (MPI part 3): the ensemble filler used by every MPI entry point.

Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.
For one noisy image ``x``: copy the pre-trained weights, make a fresh Adam, and for
``t = 1..T`` draw a keep-mask ``M_t``, predict ``y_t = D(M_t * x, M_t)``, take one Adam
step on ``mean(((1 - M_t) * (y_t - x))^2)`` and update the ensemble
``ybar = beta * ybar + (1 - beta) * y_t`` at the pixels hidden in step ``t`` only
(``ybar`` starts as ``x``). The output is ``ybar``, never the raw network output.
"""

import contextlib
import copy
import zlib

import torch
import torch.nn.functional as F

from basicsr_denoise.archs.arch_util import pad_to_multiple, tile_starts as tile_boxes
from basicsr_denoise.mpi.masking import MaskSampler
from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.logger import progress

#: Keys of a ``fill`` option block (:func:`build_filler`; ``seed`` is the mask seed of :func:`image_seed`).
FILL_SCHEMA = {
    'iterations': int, 'lr': float, 'beta': float, 'mask_ratio': list, 'patch_size': int, 'shuffle': int,
    'bn_mode': str, 'tile_size': int, 'tile_overlap': int, 'pad_multiple': int, 'seed': int, 'autocast': str,
    'channels_last': bool, 'progress': bool
}
BN_MODES = ('train', 'eval')
FILL_AUTOCAST = (None, 'bf16', 'fp16')


def image_seed(seed, name):
    """Per-image mask seed: ``seed`` mixed with the CRC32 of the image name (independent of order and rank)."""
    return (int(seed) * 1000003 + zlib.crc32(name.encode())) % (2**63)


def ensemble_update(ybar, pred, keep_mask, beta):
    """``ybar <- beta * ybar + (1 - beta) * pred`` where ``keep_mask == 0`` (hidden); unchanged elsewhere.

    Args:
        ybar (Tensor): ``(B, C, H, W)`` running ensemble, updated in place.
        pred (Tensor): ``(B, C, H, W)`` prediction of this step (made before the step).
        keep_mask (Tensor): ``(B, C or 1, H, W)``, 1 = kept, 0 = hidden.
        beta (float): Ensemble weight of the past.

    Returns:
        Tensor: ``ybar`` (the same tensor).
    """
    weight = (1.0 - keep_mask) * (1.0 - beta)
    return ybar.lerp_(pred.to(ybar.dtype), weight.expand_as(ybar))


def masked_fill_loss(pred, target, keep_mask):
    """The authors' zero-shot loss: MSE between ``(1-M)*pred`` and ``(1-M)*target``, mean over all elements."""
    hidden = 1.0 - keep_mask
    return F.mse_loss(pred * hidden, target * hidden)


def pixel_unshuffle_batch(x, s):
    """``(1, C, H, W)`` -> ``(s*s, C, H/s, W/s)``: the ``s^2`` sub-images stacked in the batch (H, W divisible by s)."""
    if s == 1:
        return x
    b, c, h, w = x.shape
    y = F.pixel_unshuffle(x, s)  # (B, C*s*s, H/s, W/s), channel index = c*s*s + k
    return y.view(b, c, s * s, h // s, w // s).transpose(1, 2).reshape(b * s * s, c, h // s, w // s)


def pixel_shuffle_batch(y, s):
    """Inverse of :func:`pixel_unshuffle_batch`."""
    if s == 1:
        return y
    bs, c, h, w = y.shape
    b = bs // (s * s)
    y = y.view(b, s * s, c, h, w).transpose(1, 2).reshape(b, c * s * s, h, w)
    return F.pixel_shuffle(y, s)


class IterativeFiller:
    """Denoise one image by MPI's iterative filling with a masked network.

    Args:
        sampler (MaskSampler): Draws keep-masks (hidden ratio range, mask mode, patch size).
        iterations (int): Steps ``T``. Default: 200.
        lr (float): Adam learning rate. Default: 2e-3.
        beta (float): Ensemble weight. Default: 0.9.
        shuffle (int): Pixel-unshuffle factor ``s`` (2 for SIDD). Default: 1.
        bn_mode (str): ``'train'`` keeps BatchNorm in training mode (the authors; it uses
            the statistics of the image being denoised) or ``'eval'`` (running statistics).
            Default: ``'train'``.
        tile_size (int | None): Tile images larger than this (after unshuffling); each tile is
            filled with fresh weights and the overlaps are averaged. Default: None (no tiling).
        tile_overlap (int): Overlap of neighbouring tiles. Default: 64.
        pad_multiple (int): Reflect-pad each (sub-)image to a multiple of this (the skip
            network downsamples 5 times). Default: 32.
        autocast (str | None): ``'bf16'`` or ``'fp16'`` mixed precision for forward and loss.
            Default: None (float32).
        channels_last (bool): Use the channels-last memory format. Default: False.
        show_progress (bool): A progress bar over the iterations. Default: True.

    Note:
        The authors crop CBSD68 images to a multiple of 32 before filling; this filler
        reflect-pads instead and returns the full image.
    """

    def __init__(self, sampler, iterations=200, lr=2e-3, beta=0.9, shuffle=1, bn_mode='train', tile_size=None,
                 tile_overlap=64, pad_multiple=32, autocast=None, channels_last=False, show_progress=True):
        if bn_mode not in BN_MODES:
            raise OptionError(f"bn_mode: must be 'train' or 'eval', got {bn_mode!r}")
        if autocast not in FILL_AUTOCAST:
            raise OptionError(f'autocast: must be bf16, fp16 or ~ (float32), got {autocast!r}')
        self.sampler = sampler
        self.iterations, self.shuffle = int(iterations), int(shuffle)
        self.lr, self.beta, self.bn_mode, self.autocast = lr, beta, bn_mode, autocast
        self.tile_size, self.tile_overlap, self.pad_multiple = tile_size, tile_overlap, pad_multiple
        self.channels_last, self.show_progress = channels_last, show_progress

    def _autocast(self, device):
        if self.autocast is None:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.autocast == 'bf16' else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)

    def fill_once(self, template, x, generator, desc=None):
        """Fill a batch ``x`` (``(B, C, H, W)``, sizes fitting the network) from a fresh copy of ``template``.

        Returns:
            Tensor: ``(B, C, H, W)`` float32 ensemble ``ybar``.
        """
        net = copy.deepcopy(template)
        net.train(self.bn_mode == 'train')
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
        ybar = x.detach().clone()
        scaler = torch.amp.GradScaler(x.device.type) if self.autocast == 'fp16' else None
        bar = progress(range(self.iterations), desc=desc or 'filling', unit='it', disable=None if self.show_progress
                       else True)
        for _ in bar:
            self.step(net, optimizer, x, ybar, generator, scaler)
        bar.close()
        return ybar.contiguous()

    def step(self, net, optimizer, x, ybar, generator, scaler=None):
        """One filling iteration: draw a mask, one Adam step on the hidden pixels, update ``ybar`` in place."""
        keep, _ = self.sampler.sample(x.shape, generator, device=x.device)
        mask_channels = getattr(net, 'mask_channels', keep.shape[1])
        if keep.shape[1] != mask_channels:  # a shared mask for a network with per-channel mask inputs
            keep = keep.expand(-1, mask_channels, -1, -1)
        with self._autocast(x.device):
            pred = net(x, keep)
            loss = masked_fill_loss(pred.float(), x, keep)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            ensemble_update(ybar, pred.detach(), keep, self.beta)
        return loss

    def _fill_padded(self, template, x, generator, desc):
        """Pad to the network's multiple, fill, crop back."""
        padded, (h, w) = pad_to_multiple(x, self.pad_multiple, min_size=getattr(template, 'min_size', 0))
        return self.fill_once(template, padded, generator, desc)[..., :h, :w]

    def __call__(self, template, noisy, generator, desc=None):
        """Denoise ``noisy``.

        Args:
            template (nn.Module): The masked network with pre-trained weights (left untouched).
            noisy (Tensor): ``(1, C, H, W)``, float32, noisy values (unclipped, roughly [0, 1]).
            generator (torch.Generator): Seeded generator on the device of ``noisy``.
            desc (str | None): Label of the progress bar.

        Returns:
            Tensor: ``(1, C, H, W)`` float32 denoised image (the ensemble, unclipped).
        """
        in_ch = getattr(template, 'in_ch', noisy.shape[1])
        if noisy.shape[1] != in_ch:
            if noisy.shape[1] == 1:  # a colour network on a gray image: fill the replicated image, average back
                # one mask shared by the copies: per-channel masks would show each hidden pixel's noisy
                # value in the other copies, and the network would learn to copy it (no denoising)
                gray = copy.copy(self)
                gray.sampler = MaskSampler(self.sampler.ratio, 'singlechannel', self.sampler.patch_size)
                return gray(template, noisy.repeat(1, in_ch, 1, 1), generator, desc).mean(1, keepdim=True)
            raise DataError(f'{desc or "image"}: has {noisy.shape[1]} channels but the network takes {in_ch} '
                            f'(use weights for {noisy.shape[1]}-channel images)')
        s = self.shuffle
        h0, w0 = noisy.shape[-2:]
        x = noisy
        if s > 1:  # reflect-pad to a multiple of s, stack the s^2 sub-images in the batch
            x, _ = pad_to_multiple(x, s)
            x = pixel_unshuffle_batch(x, s)
        h, w = x.shape[-2:]
        tile = self.tile_size
        if not tile or (h <= tile and w <= tile):
            out = self._fill_padded(template, x, generator, desc)
        else:
            out = torch.zeros_like(x)
            weight = torch.zeros_like(x[:, :1])
            boxes = [(t, l) for t in tile_boxes(h, tile, self.tile_overlap) for l in tile_boxes(w, tile, self.tile_overlap)]
            for i, (t, l) in enumerate(boxes):
                crop = x[..., t:t + tile, l:l + tile]
                label = f'{desc or "filling"} tile {i + 1}/{len(boxes)}'
                out[..., t:t + tile, l:l + tile] += self._fill_padded(template, crop, generator, label)
                weight[..., t:t + tile, l:l + tile] += 1
            out = out / weight
        if s > 1:
            out = pixel_shuffle_batch(out, s)
        return out[..., :h0, :w0]


def build_filler(fill_opt, mask_mode, source=None):
    """An :class:`IterativeFiller` from a ``fill`` option block (:data:`FILL_SCHEMA`) and the network's mask mode.

    Args:
        fill_opt (dict | None): The block; missing keys take :class:`IterativeFiller`'s defaults
            (``mask_ratio`` [30, 30], ``patch_size`` 1, ``progress`` True).
        mask_mode (str): ``'multchannel'`` or ``'singlechannel'`` (the masked network's).
        source (str | None): Option file or checkpoint, for error messages. Default: None.

    Raises:
        OptionError: one line naming ``source`` and the ``fill.<key>`` that is wrong.
    """
    f = dict(fill_opt or {})
    ratio = f.get('mask_ratio', [30, 30])
    ratio = (ratio, ratio) if isinstance(ratio, (int, float)) else tuple(ratio)
    try:
        sampler = MaskSampler(ratio=ratio, mode=mask_mode, patch_size=f.get('patch_size', 1))
        return IterativeFiller(sampler, iterations=f.get('iterations', 200), lr=f.get('lr', 2e-3),
                               beta=f.get('beta', 0.9), shuffle=f.get('shuffle', 1), bn_mode=f.get('bn_mode', 'train'),
                               tile_size=f.get('tile_size'), tile_overlap=f.get('tile_overlap', 64),
                               pad_multiple=f.get('pad_multiple', 32), autocast=f.get('autocast'),
                               channels_last=f.get('channels_last', False), show_progress=f.get('progress', True))
    except OptionError as exc:
        key = str(exc).replace('ratio:', 'mask_ratio:', 1) if str(exc).startswith('ratio:') else str(exc)
        raise OptionError(f"{source + ': ' if source else ''}fill.{key}") from None
