"""Zero-shot iterative filling (MPI part 3): the ensemble filler used by every MPI entry point.

Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.
For one noisy image ``x``: copy the pre-trained weights, make a fresh Adam, and for
``t = 1..T`` draw a keep-mask ``M_t``, predict ``y_t = D(M_t * x, M_t)``, take one Adam
step on ``mean(((1 - M_t) * (y_t - x))^2)`` and update the ensemble
``ybar = beta * ybar + (1 - beta) * y_t`` at the pixels hidden in step ``t`` only
(``ybar`` starts as ``x``). The output is ``ybar``, never the raw network output.

Beyond the paper (all off by default, so the defaults are the authors' schedule): automatic bf16 and
channels-last where the hardware computes them natively, an lr ramp, complementary masks, steps by image
size, and one shared adapted network for images larger than a tile (:mod:`basicsr_denoise.mpi.large_image`).
The settings are one :class:`~basicsr_denoise.mpi.fill_config.FillConfig` (:mod:`basicsr_denoise.mpi.fill_config`).
"""

import contextlib
import copy
import math
import zlib

import torch
import torch.nn.functional as F

from basicsr_denoise.archs.arch_util import pad_to_multiple, tile_starts as tile_boxes
from basicsr_denoise.mpi.fill_config import FILL_SCHEMA, FillConfig
from basicsr_denoise.mpi.masking import ComplementaryMasks, MaskSampler
from basicsr_denoise.utils import hardware
from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.logger import progress

__all__ = ['FILL_SCHEMA', 'FillConfig', 'IterativeFiller', 'build_filler', 'ensemble_update', 'image_seed',
           'masked_fill_loss', 'pixel_shuffle_batch', 'pixel_unshuffle_batch', 'tile_boxes']


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
        config (FillConfig | None): The settings (:data:`~basicsr_denoise.mpi.fill_config.FIELDS`); its
            ``mask_ratio`` and ``patch_size`` are the sampler's. Default: None (the defaults).

    Every setting is also readable as an attribute (``filler.iterations``, ``filler.beta``...).

    A step ``t`` (0-based) uses the lr ``lr * min(1, (t + 1) / lr_warmup)`` (``lr`` without a ramp). With
    ``complementary`` the masks of an image come from :class:`~basicsr_denoise.mpi.masking.ComplementaryMasks`
    (exactly ``round(p * N)`` hidden units each, every pixel hidden at least once in each cycle of about
    ``ceil(1 / p)`` masks). ``by_area`` gives an image of at most ``A0`` pixels ``iterations`` steps, one of
    at least ``A1`` pixels ``by_area.iterations``, and sizes between a number interpolated linearly in
    ``log(area)`` (:meth:`for_area`): a larger image carries more evidence per step, so its network fits the
    noise later. An image larger than ``tile_size`` is filled tile by tile from fresh weights (``large_mode:
    tiles``, the authors; the overlaps are averaged) or by :func:`basicsr_denoise.mpi.large_image.fill_shared`
    (``large_mode: shared``).

    Note:
        The authors crop CBSD68 images to a multiple of 32 before filling; this filler
        reflect-pads instead and returns the full image. ``lr_warmup``, ``complementary``, ``by_area`` and
        ``large_mode: shared`` are not in the paper; their defaults are the authors' schedule.
    """

    def __init__(self, sampler, config=None):
        self.sampler, self.config = sampler, config if config is not None else FillConfig()
        if self.config.complementary:
            ComplementaryMasks(sampler)  # checks the ratio

    def __getattr__(self, name):
        if name == 'config':  # not set yet (copy, unpickling)
            raise AttributeError(name)
        try:
            return getattr(self.config, name)
        except AttributeError:
            raise AttributeError(f"'IterativeFiller' object has no attribute {name!r}") from None

    @property
    def show_progress(self):
        return self.config.progress

    # ------------------------------------------------------------------------------------ schedules
    def precision(self, device):
        """The ``(autocast, channels_last)`` used on ``device``: ``'auto'`` resolved by
        :func:`~basicsr_denoise.utils.hardware.fast_precision`; autocast is ``'bf16'``, ``'fp16'`` or None."""
        fast = (None, False)
        if self.autocast == 'auto' or self.channels_last == 'auto':
            fast = hardware.fast_precision(device)
        autocast = fast[0] if self.autocast == 'auto' else self.autocast
        channels_last = fast[1] if self.channels_last == 'auto' else bool(self.channels_last)
        return (None if autocast == 'fp32' else autocast), channels_last

    def lr_at(self, t):
        """The learning rate of step ``t`` (0-based)."""
        return self.lr * min(1.0, (t + 1) / self.lr_warmup) if self.lr_warmup else self.lr

    def steps_for_area(self, pixels):
        """The steps that ``by_area`` gives an image of ``pixels`` pixels (``iterations`` without it)."""
        if self.by_area is None:
            return self.iterations
        (a0, a1), frac = self.by_area['pixels'], 0.0
        if pixels >= a1:
            frac = 1.0
        elif pixels > a0:
            frac = math.log(pixels / a0) / math.log(a1 / a0)
        return round(self.iterations + frac * (self.by_area['iterations'] - self.iterations))

    def for_area(self, pixels):
        """This filler, or one with the ``iterations`` that ``by_area`` gives an image of ``pixels`` pixels."""
        steps = self.steps_for_area(pixels)
        if steps == self.iterations:
            return self
        return IterativeFiller(self.sampler, self.config.replace(iterations=steps))

    def mask_stream(self):
        """The mask source of one image: the sampler itself, or a fresh :class:`ComplementaryMasks`."""
        return ComplementaryMasks(self.sampler) if self.complementary else self.sampler

    def autocast_context(self, device):
        """The autocast context of a forward pass on ``device`` (a null context in float32)."""
        autocast = self.precision(device)[0]
        if autocast is None:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if autocast == 'bf16' else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)

    # ------------------------------------------------------------------------------------ one image
    def fresh_net(self, template, device):
        """A copy of ``template`` in ``bn_mode``, channels-last when asked, with its Adam and scaler."""
        autocast, channels_last = self.precision(device)
        net = copy.deepcopy(template)
        net.requires_grad_(True)  # a frozen template (e.g. an EMA copy) is still fine-tuned, every weight
        net.train(self.bn_mode == 'train')
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
        scaler = torch.amp.GradScaler(device.type) if autocast == 'fp16' else None
        return net, optimizer, scaler

    def bar(self, total, desc):
        """A progress bar over ``range(total)`` (off with ``progress: false``)."""
        return progress(range(total), desc=desc or 'filling', unit='it', disable=None if self.progress else True)

    def fill_once(self, template, x, generator, desc=None):
        """Fill a batch ``x`` (``(B, C, H, W)``, sizes fitting the network) from a fresh copy of ``template``.

        Returns:
            Tensor: ``(B, C, H, W)`` float32 ensemble ``ybar``.
        """
        net, optimizer, scaler = self.fresh_net(template, x.device)
        if self.precision(x.device)[1]:
            x = x.contiguous(memory_format=torch.channels_last)
        ybar = x.detach().clone()
        masks = self.mask_stream()
        bar = self.bar(self.iterations, desc)
        for t in bar:
            self.step(net, optimizer, x, ybar, generator, scaler, t=t, masks=masks)
        bar.close()
        return ybar.contiguous()

    @staticmethod
    def draw(masks, net, x, generator):
        """A keep-mask for ``x`` from ``masks``, widened to the network's mask channels."""
        keep = masks.sample(x.shape, generator, device=x.device)[0]
        mask_channels = getattr(net, 'mask_channels', keep.shape[1])
        if keep.shape[1] != mask_channels:  # a shared mask for a network with per-channel mask inputs
            keep = keep.expand(-1, mask_channels, -1, -1)
        return keep

    def step(self, net, optimizer, x, ybar, generator, scaler=None, t=0, masks=None):
        """Filling iteration ``t``: draw a mask, one Adam step at ``lr_at(t)`` on the hidden pixels, then
        update ``ybar`` in place (skipped when ``ybar`` is None).

        Args:
            masks (MaskSampler | ComplementaryMasks | None): The image's mask source. Default: None
                (:meth:`mask_stream`, fresh: right for independent masks only).
        """
        if self.lr_warmup:
            for group in optimizer.param_groups:
                group['lr'] = self.lr_at(t)
        keep = self.draw(masks if masks is not None else self.mask_stream(), net, x, generator)
        with self.autocast_context(x.device):
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
        if ybar is not None:
            with torch.no_grad():
                ensemble_update(ybar, pred.detach(), keep, self.beta)
        return loss

    def _fill_padded(self, template, x, generator, desc):
        """Pad to the network's multiple, fill with the steps of the image's size, crop back."""
        padded, (h, w) = pad_to_multiple(x, self.pad_multiple, min_size=getattr(template, 'min_size', 0))
        return self.for_area(h * w).fill_once(template, padded, generator, desc)[..., :h, :w]

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
                shared = MaskSampler(self.sampler.ratio, 'singlechannel', self.sampler.patch_size)
                gray = IterativeFiller(shared, self.config)
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
        elif self.large_mode == 'shared':
            from basicsr_denoise.mpi.large_image import fill_shared
            out = fill_shared(self, template, x, generator, desc)
        else:
            out = torch.zeros_like(x)
            weight = torch.zeros_like(x[:, :1])
            rows, cols = (tile_boxes(n, tile, self.tile_overlap) for n in (h, w))
            boxes = [(t, l) for t in rows for l in cols]
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
    """An :class:`IterativeFiller` from a ``fill`` option block and the network's mask mode.

    Args:
        fill_opt (dict | None): The block (:data:`~basicsr_denoise.mpi.fill_config.FIELDS`); a missing key
            or ``~`` takes the default.
        mask_mode (str): ``'multchannel'`` or ``'singlechannel'`` (the masked network's).
        source (str | None): Option file or checkpoint, for error messages. Default: None.

    Raises:
        OptionError: one line naming ``source`` and the ``fill.<key>`` that is wrong.
    """
    config = FillConfig.from_block(fill_opt, source)
    try:
        return IterativeFiller(MaskSampler(ratio=config.mask_ratio, mode=mask_mode, patch_size=config.patch_size),
                               config)
    except OptionError as exc:
        key = str(exc).replace('ratio:', 'mask_ratio:', 1) if str(exc).startswith('ratio:') else str(exc)
        raise OptionError(f"{source + ': ' if source else ''}fill.{key}") from None
