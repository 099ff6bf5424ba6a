"""Random keep-masks for MPI's masked pre-training and zero-shot filling."""

import numbers

import torch

from basicsr_denoise.utils.errors import OptionError

MASK_MODES = ('multchannel', 'singlechannel')


def expand_mask(mask, channels):
    """Broadcast a ``(B, 1, H, W)`` mask to ``(B, channels, H, W)`` (a view, no copy).

    A mask that already has ``channels`` channels is returned unchanged.
    """
    if mask.shape[1] == channels:
        return mask
    if mask.shape[1] != 1:
        raise ValueError(f'expand_mask: cannot broadcast a {mask.shape[1]}-channel mask to {channels} channels')
    return mask.expand(-1, channels, -1, -1)


class MaskSampler:
    """Draws MPI keep-masks (1 = pixel kept, 0 = pixel hidden).

    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.
    Each call to :meth:`sample` draws the hidden percentage ``p`` uniformly from the
    integers ``[a, b]`` (one ``p`` for the whole batch), then hides every pixel (or
    every ``patch_size`` square) independently with probability ``p / 100``.
    ``multchannel`` draws an independent mask per colour channel; ``singlechannel``
    draws one mask shared by all channels. The sampler holds no random state: all
    randomness comes from the ``torch.Generator`` passed in, on that generator's device.

    Args:
        ratio (int | list[int]): Hidden percentage, or an inclusive integer range
            ``[a, b]`` with ``0 <= a <= b <= 100``. Default: ``(30, 30)``
            (the authors' synthetic-noise model; the real-noise one uses ``[80, 95]``).
        mode (str): ``'multchannel'`` or ``'singlechannel'``. Default: ``'multchannel'``.
        patch_size (int): Side of the hidden squares; 1 hides single pixels (the
            authors). Patches lie on a grid anchored at the top-left corner.
            Default: 1.
    """

    def __init__(self, ratio=(30, 30), mode='multchannel', patch_size=1):
        if isinstance(ratio, numbers.Number):
            ratio = (ratio, ratio)
        if not isinstance(ratio, (list, tuple)) or len(ratio) != 2:
            raise OptionError(f'ratio: expected a percentage or a [min, max] pair of percentages, got {ratio!r}')
        lo, hi = ratio
        for v in (lo, hi):
            if not isinstance(v, numbers.Number) or isinstance(v, bool) or float(v) != int(v):
                hint = ' (percentages, e.g. 30, not fractions like 0.3)' if isinstance(v, float) and 0 < v < 1 else ''
                raise OptionError(f'ratio: expected integer percentages, got {ratio!r}{hint}')
        lo, hi = int(lo), int(hi)
        if not 0 <= lo <= hi <= 100:
            raise OptionError(f'ratio: needs 0 <= min <= max <= 100, got {list(ratio)}')
        if mode not in MASK_MODES:
            raise OptionError(f"mode: unknown mask mode '{mode}' (known: {', '.join(MASK_MODES)})")
        if int(patch_size) != patch_size or patch_size < 1:
            raise OptionError(f'patch_size: must be a positive integer, got {patch_size!r}')
        self.ratio = (lo, hi)
        self.mode = mode
        self.patch_size = int(patch_size)

    def mask_channels(self, channels):
        """Channels of the masks drawn for ``channels``-channel images (``channels`` or 1)."""
        return channels if self.mode == 'multchannel' else 1

    def draw_ratio(self, generator):
        """Draw the hidden fraction ``p / 100`` (a float in [0, 1]) for one call."""
        lo, hi = self.ratio
        if lo == hi:
            return lo / 100.0
        dev = generator.device if generator is not None else 'cpu'
        return int(torch.randint(lo, hi + 1, (1, ), generator=generator, device=dev).item()) / 100.0

    def sample(self, shape, generator, device=None):
        """Draw one keep-mask for a batch.

        Args:
            shape (tuple[int]): Image batch shape ``(B, C, H, W)``.
            generator (torch.Generator | None): Source of randomness; the mask is drawn on its
                device. None draws from torch's global RNG on ``device`` (used in training,
                where the global RNG state is saved in the training states).
            device (torch.device | str | None): Move the mask there afterwards.
                Default: None (the generator's device).

        Returns:
            tuple[Tensor, float]: The keep mask, float32 (1 = kept), ``(B, C, H, W)`` for
            multchannel or ``(B, 1, H, W)`` for singlechannel, and the hidden fraction
            ``p`` used for it.
        """
        b, c, h, w = shape
        p = self.draw_ratio(generator)
        ch = self.mask_channels(c)
        ps = self.patch_size
        gh, gw = -(-h // ps), -(-w // ps)
        dev = generator.device if generator is not None else (device or 'cpu')
        u = torch.rand((b, ch, gh, gw), generator=generator, device=dev)
        mask = (u >= p).to(torch.float32)  # P(hidden) = P(u < p) = p
        if ps > 1:
            mask = mask[:, :, :, None, :, None].expand(b, ch, gh, ps, gw, ps).reshape(b, ch, gh * ps, gw * ps)
            mask = mask[:, :, :h, :w]
        if device is not None:
            mask = mask.to(device)
        return mask, p

    expand = staticmethod(expand_mask)

    def __repr__(self):
        return f'MaskSampler(ratio={list(self.ratio)}, mode={self.mode!r}, patch_size={self.patch_size})'


class ComplementaryMasks:
    """Keep-masks whose hidden sets tile the image: every pixel is hidden at least once per cycle.

    A cycle draws the hidden percentage ``p`` once (as :meth:`MaskSampler.draw_ratio`) and a random
    permutation of the ``N`` mask units (pixels, or ``patch_size`` squares) of every mask row (each batch
    item and, in ``multchannel`` mode, each colour channel); the ``j``-th mask of the cycle hides the units
    ranked ``[j*n, (j+1)*n)`` (mod ``N``), ``n = round(p * N)``. So every mask hides exactly ``n`` units,
    and every unit is hidden at least once in each cycle of ``ceil(N / n)`` (about ``ceil(1 / p)``)
    successive masks; a new cycle (new ``p``, new permutation) starts when one is complete or the
    shape changes. Unlike :class:`MaskSampler` it holds state: use one per image. All randomness comes
    from the generator passed to :meth:`sample`.

    Args:
        sampler (MaskSampler): Hidden ratio range (its lower end must be above 0), mode and patch size.
    """

    def __init__(self, sampler):
        if sampler.ratio[0] <= 0:
            raise OptionError(f'complementary: needs a hidden ratio above 0, got {list(sampler.ratio)}')
        self.sampler = sampler
        self.ratio, self.mode, self.patch_size = sampler.ratio, sampler.mode, sampler.patch_size
        self._key, self._rank, self._n, self._pos = None, None, 0, 0

    def mask_channels(self, channels):
        """Channels of the masks drawn for ``channels``-channel images (``channels`` or 1)."""
        return self.sampler.mask_channels(channels)

    def cycle_length(self):
        """Masks per cycle of the current cycle (``ceil(N / n)``); 0 before the first draw."""
        return -(-self._rank.shape[1] // self._n) if self._rank is not None else 0

    def sample(self, shape, generator, device=None):
        """Draw the next keep-mask of the cycle; arguments and return value as :meth:`MaskSampler.sample`."""
        b, c, h, w = shape
        ch, ps = self.mask_channels(c), self.patch_size
        gh, gw = -(-h // ps), -(-w // ps)
        units = gh * gw
        if self._key != (b, ch, gh, gw) or self._pos >= units:  # a new cycle
            p = self.sampler.draw_ratio(generator)
            dev = generator.device if generator is not None else (device or 'cpu')
            u = torch.rand((b * ch, units), generator=generator, device=dev)
            self._rank = u.argsort(1).argsort(1)  # a uniformly random rank of every unit, per mask row
            self._key, self._n, self._pos = (b, ch, gh, gw), max(1, round(p * units)), 0
        hidden = (self._rank - self._pos).remainder(units) < self._n
        self._pos += self._n
        mask = (~hidden).to(torch.float32).view(b, ch, gh, gw)
        if ps > 1:
            mask = mask[:, :, :, None, :, None].expand(b, ch, gh, ps, gw, ps).reshape(b, ch, gh * ps, gw * ps)
            mask = mask[:, :, :h, :w]
        if device is not None:
            mask = mask.to(device)
        return mask, self._n / units

    def __repr__(self):
        return f'ComplementaryMasks({self.sampler!r})'
