"""Zero-shot iterative filling (MPI part 3): the ensemble filler used by every MPI entry point.

Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.
For one noisy image ``x``: copy the pre-trained weights, make a fresh Adam, and for
``t = 1..T`` draw a keep-mask ``M_t``, predict ``y_t = D(M_t * x, M_t)``, take one Adam
step on ``mean(((1 - M_t) * (y_t - x))^2)`` and update the ensemble
``ybar = beta * ybar + (1 - beta) * y_t`` at the pixels hidden in step ``t`` only
(``ybar`` starts as ``x``). The output is ``ybar``, never the raw network output.

Beyond the paper (all off by default, so the defaults are the authors' schedule): automatic bf16 and
channels-last where the hardware computes them natively, lr and beta schedules, several or complementary
masks per step, forward-only final passes, and one shared adapted network for images larger than a tile
(:class:`IterativeFiller`).
"""

import contextlib
import copy
import math
import numbers
import zlib

import torch
import torch.nn.functional as F

from basicsr_denoise.archs.arch_util import pad_to_multiple, tile_starts as tile_boxes
from basicsr_denoise.mpi.masking import ComplementaryMasks, MaskSampler
from basicsr_denoise.utils import hardware
from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.logger import progress

#: Keys of a ``fill`` option block (:func:`build_filler`; ``seed`` is the mask seed of :func:`image_seed`).
FILL_SCHEMA = {
    'iterations': int, 'lr': float, 'beta': float, 'mask_ratio': list, 'patch_size': int, 'shuffle': int,
    'bn_mode': str, 'tile_size': int, 'tile_overlap': int, 'pad_multiple': int, 'seed': int, 'autocast': str,
    'channels_last': (bool, str), 'progress': bool, 'lr_schedule': str, 'lr_min': float, 'lr_warmup': int,
    'beta_schedule': str, 'beta_end': float, 'masks_per_step': int, 'complementary': bool, 'final_passes': int,
    'large_mode': str, 'adapt_size': int, 'adapt_iterations': int, 'tile_passes': int, 'by_area': dict
}
BN_MODES = ('train', 'eval')
#: ``fill.autocast`` values; None and ``'fp32'`` both mean float32, ``'auto'`` asks :func:`fast_precision`.
FILL_AUTOCAST = (None, 'fp32', 'bf16', 'fp16', 'auto')
LR_SCHEDULES = ('constant', 'cosine')
BETA_SCHEDULES = ('constant', 'linear')
LARGE_MODES = ('tiles', 'shared')
#: Forward-only passes per tile of ``large_mode: shared`` when neither ``tile_passes`` nor ``final_passes`` is set.
SHARED_PASSES = 16


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


def _by_area(block, iterations, final_passes):
    """A checked ``by_area`` block with its defaults filled in (None stays None)."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise OptionError(f'by_area: must be a mapping {{pixels: [A0, A1], iterations: T, final_passes: P}}, '
                          f'got {block!r}')
    unknown = sorted(set(block) - {'pixels', 'iterations', 'final_passes'})
    if unknown:
        raise OptionError(f'by_area.{unknown[0]}: unknown key (known: pixels, iterations, final_passes)')
    pixels = block.get('pixels')
    if not (isinstance(pixels, (list, tuple)) and len(pixels) == 2
            and all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in pixels)
            and 0 < pixels[0] < pixels[1]):
        raise OptionError(f'by_area.pixels: must be two increasing pixel counts [A0, A1], got {pixels!r}')
    return {'pixels': (int(pixels[0]), int(pixels[1])),
            'iterations': _int_at_least('by_area.iterations', block.get('iterations', iterations), 1),
            'final_passes': _int_at_least('by_area.final_passes', block.get('final_passes', final_passes), 0)}


def _int_at_least(key, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise OptionError(f'{key}: must be an integer >= {low}, got {value!r}')
    return int(value)


def _fraction(key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise OptionError(f'{key}: must be a number in [0, 1], got {value!r}')
    return float(value)


def _choice(key, value, known):
    if value not in known:
        raise OptionError(f"{key}: must be one of {', '.join(map(str, known))}, got {value!r}")
    return value


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
        tile_size (int | None): Tile images larger than this (after unshuffling); see ``large_mode``.
            Default: None (no tiling).
        tile_overlap (int): Overlap of neighbouring tiles. Default: 64.
        pad_multiple (int): Reflect-pad each (sub-)image to a multiple of this (the skip
            network downsamples 5 times). Default: 32.
        autocast (str | None): ``'bf16'`` or ``'fp16'`` mixed precision for forward and loss;
            None or ``'fp32'``: float32; ``'auto'``: bf16 where the device computes it natively
            (:func:`basicsr_denoise.utils.hardware.fast_precision`, resolved at fill time), else float32.
            Default: None (float32).
        channels_last (bool | str): Use the channels-last memory format; ``'auto'``: where
            :func:`~basicsr_denoise.utils.hardware.fast_precision` says so. Default: False.
        show_progress (bool): A progress bar over the iterations. Default: True.
        lr_schedule (str): ``'constant'`` (the authors) or ``'cosine'``: step ``t`` of ``T`` uses
            ``lr_min + (lr - lr_min) * (1 + cos(pi * t / (T - 1))) / 2``, from ``lr`` at the first
            step to ``lr_min`` at the last. Default: ``'constant'``.
        lr_min (float): Last learning rate of the cosine schedule. Default: 0.
        lr_warmup (int): Ramp the learning rate up over the first ``W`` steps: step ``t`` uses
            ``min(1, (t + 1) / W)`` times the schedule's rate (Adam's first steps move every weight by
            about ``lr``, however small its gradient). 0: no ramp (the authors). Default: 0.
        beta_schedule (str): ``'constant'`` (the authors) or ``'linear'``: step ``t`` uses
            ``beta + (beta_end - beta) * t / (T - 1)``; forward-only passes use ``beta_end``.
            Default: ``'constant'``.
        beta_end (float | None): Last beta of the linear schedule (required by it). Default: None.
        masks_per_step (int): ``K`` masks of the same image stacked in the batch of one step: the loss
            is their mean, and the ensemble takes the ``K`` predictions one after the other. 1 is
            the authors' step. Default: 1.
        complementary (bool): Draw the masks of an image from
            :class:`~basicsr_denoise.mpi.masking.ComplementaryMasks` (exactly ``round(p * N)`` hidden
            units each, every pixel hidden at least once in each cycle of about ``ceil(1 / p)``
            masks) instead of independent Bernoulli masks. Default: False.
        final_passes (int): After the ``T`` steps, this many forward-only passes (no gradient,
            BatchNorm in ``bn_mode``, ``K`` fresh masks each) update the ensemble at their hidden
            pixels with the same beta rule. With ``large_mode: shared``, the passes per tile.
            Default: 0.
        large_mode (str): How an image larger than ``tile_size`` is filled. ``'tiles'`` (the
            authors): each tile is filled from fresh weights for ``T`` steps and the overlaps are
            averaged, so the cost is tiles x ``T`` training steps. ``'shared'``: one copy of the
            weights is adapted for ``T`` steps on random ``adapt_size`` crops of the whole image
            (positions from the generator; no ensemble), keeping snapshots of it over the last steps
            (:meth:`snapshot_steps`), then every tile gets ``tile_passes`` (else ``final_passes``, else
            :data:`SHARED_PASSES`) forward-only passes of complementary masks, each pass with the next snapshot, raised
            if needed until every pixel has been hidden once; a tile's estimate is, at each pixel, the
            mean of the predictions made while it was hidden, and the overlaps are averaged. The
            cost is ``T`` training steps plus tiles x passes forward passes, and memory is one tile.
            Default: ``'tiles'``.
        adapt_size (int | None): Side of the random crops that ``large_mode: shared`` adapts on. A training
            step costs about 3x a forward pass and holds all activations, so crops smaller than the tile
            make the adaptation cheaper and its memory smaller. Default: None (``tile_size``).
        adapt_iterations (int | None): Steps of the ``large_mode: shared`` adaptation, ``T`` there (its
            schedules and snapshots follow it). A whole image gets ``T`` steps that each see all of it;
            the shared path's crops see a fraction, so more of them are needed. Default: None (``iterations``).
        tile_passes (int | None): Forward-only passes per tile of ``large_mode: shared``; unlike
            ``final_passes`` it leaves images within one tile alone. Default: None (see ``large_mode``).
        by_area (dict | None): Steps and forward-only passes by image size, ``{pixels: [A0, A1], iterations: T1,
            final_passes: P1}``: an image (or tile) of at most ``A0`` pixels gets ``iterations`` and ``final_passes``,
            one of at least ``A1`` pixels ``T1`` and ``P1``, and sizes between get values interpolated linearly in
            ``log(area)``, rounded (:meth:`for_area`). A larger image carries more evidence per step, so its
            network fits the noise later: it gains from steps and passes that a small crop loses to. Not used by
            the adaptation of ``large_mode: shared``, which has its own steps. Default: None (the same for all).

    Note:
        The authors crop CBSD68 images to a multiple of 32 before filling; this filler
        reflect-pads instead and returns the full image. The options ``lr_schedule``,
        ``beta_schedule``, ``masks_per_step``, ``complementary``, ``final_passes``, ``by_area`` and ``large_mode:
        shared`` are not in the paper; their defaults are the authors' schedule.
    """

    def __init__(self, sampler, iterations=200, lr=2e-3, beta=0.9, shuffle=1, bn_mode='train', tile_size=None,
                 tile_overlap=64, pad_multiple=32, autocast=None, channels_last=False, show_progress=True,
                 lr_schedule='constant', lr_min=0.0, lr_warmup=0, beta_schedule='constant', beta_end=None,
                 masks_per_step=1, complementary=False, final_passes=0, large_mode='tiles', adapt_size=None,
                 adapt_iterations=None, tile_passes=None, by_area=None):
        if bn_mode not in BN_MODES:
            raise OptionError(f"bn_mode: must be 'train' or 'eval', got {bn_mode!r}")
        if autocast not in FILL_AUTOCAST:
            raise OptionError(f'autocast: must be auto, bf16, fp16, fp32 or ~ (float32), got {autocast!r}')
        channels_last = False if channels_last is None else channels_last
        if not (isinstance(channels_last, bool) or channels_last == 'auto'):
            raise OptionError(f'channels_last: must be true, false or auto, got {channels_last!r}')
        self.lr_schedule = _choice('lr_schedule', lr_schedule, LR_SCHEDULES)
        self.beta_schedule = _choice('beta_schedule', beta_schedule, BETA_SCHEDULES)
        self.large_mode = _choice('large_mode', large_mode, LARGE_MODES)
        if isinstance(lr_min, bool) or not isinstance(lr_min, numbers.Real) or lr_min < 0:
            raise OptionError(f'lr_min: must be a number >= 0, got {lr_min!r}')
        if beta_schedule == 'linear' and beta_end is None:
            raise OptionError('beta_end: required by beta_schedule linear (the last beta, e.g. 0.99)')
        self.beta_end = None if beta_end is None else _fraction('beta_end', beta_end)
        self.masks_per_step = _int_at_least('masks_per_step', masks_per_step, 1)
        self.lr_warmup = _int_at_least('lr_warmup', lr_warmup, 0)
        self.final_passes = _int_at_least('final_passes', final_passes, 0)
        self.adapt_size = None if adapt_size is None else _int_at_least('adapt_size', adapt_size, 1)
        self.adapt_iterations = (None if adapt_iterations is None
                                 else _int_at_least('adapt_iterations', adapt_iterations, 1))
        self.tile_passes = None if tile_passes is None else _int_at_least('tile_passes', tile_passes, 1)
        self.by_area = _by_area(by_area, iterations, self.final_passes)
        if not isinstance(complementary, bool):
            raise OptionError(f'complementary: must be true or false, got {complementary!r}')
        if complementary:
            ComplementaryMasks(sampler)  # checks the ratio
        self.sampler, self.complementary = sampler, complementary
        self.iterations, self.shuffle = int(iterations), int(shuffle)
        self.lr, self.lr_min, self.beta, self.bn_mode = lr, float(lr_min), beta, bn_mode
        self.autocast = None if autocast == 'fp32' else autocast
        self.tile_size, self.tile_overlap, self.pad_multiple = tile_size, tile_overlap, pad_multiple
        self.channels_last, self.show_progress = channels_last, show_progress

    # ------------------------------------------------------------------------------------ schedules
    def precision(self, device):
        """The ``(autocast, channels_last)`` used on ``device``: ``'auto'`` resolved by
        :func:`~basicsr_denoise.utils.hardware.fast_precision`; autocast is ``'bf16'``, ``'fp16'`` or None."""
        fast = (None, False)
        if self.autocast == 'auto' or self.channels_last == 'auto':
            fast = hardware.fast_precision(device)
        autocast = fast[0] if self.autocast == 'auto' else self.autocast
        channels_last = fast[1] if self.channels_last == 'auto' else bool(self.channels_last)
        return autocast, channels_last

    def _progress(self, t):
        """Fraction of the schedule done at step ``t``: ``t / (T - 1)``, 0 for ``T = 1``, 1 from step ``T`` on."""
        if t >= self.iterations:
            return 1.0
        return t / (self.iterations - 1) if self.iterations > 1 else 0.0

    def lr_at(self, t):
        """The learning rate of step ``t`` (0-based)."""
        lr = self.lr
        if self.lr_schedule != 'constant':
            lr = self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * self._progress(t)))
        return lr * min(1.0, (t + 1) / self.lr_warmup) if self.lr_warmup else lr

    def beta_at(self, t):
        """The ensemble weight of step ``t`` (0-based; ``t >= T``: the forward-only passes)."""
        if self.beta_schedule == 'constant':
            return self.beta
        return self.beta + (self.beta_end - self.beta) * self._progress(t)

    def for_area(self, pixels):
        """This filler, or a copy with the ``iterations`` and ``final_passes`` that ``by_area`` gives an image of
        ``pixels`` pixels."""
        if self.by_area is None:
            return self
        (a0, a1), frac = self.by_area['pixels'], 0.0
        if pixels >= a1:
            frac = 1.0
        elif pixels > a0:
            frac = math.log(pixels / a0) / math.log(a1 / a0)
        steps = round(self.iterations + frac * (self.by_area['iterations'] - self.iterations))
        passes = round(self.final_passes + frac * (self.by_area['final_passes'] - self.final_passes))
        if (steps, passes) == (self.iterations, self.final_passes):
            return self
        return self._replace(iterations=steps, final_passes=passes)

    def _replace(self, **changes):
        """A shallow copy of this filler with ``changes`` to its attributes (a variant for one image)."""
        variant = copy.copy(self)
        variant.__dict__.update(changes)
        return variant

    def mask_stream(self):
        """The mask source of one image: the sampler itself, or a fresh :class:`ComplementaryMasks`."""
        return ComplementaryMasks(self.sampler) if self.complementary else self.sampler

    def _autocast(self, device):
        autocast = self.precision(device)[0]
        if autocast is None:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if autocast == 'bf16' else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)

    # ------------------------------------------------------------------------------------ one image
    def _fresh_net(self, template, device):
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

    def _bar(self, total, desc):
        return progress(range(total), desc=desc or 'filling', unit='it', disable=None if self.show_progress else True)

    def fill_once(self, template, x, generator, desc=None, after_step=None):
        """Fill a batch ``x`` (``(B, C, H, W)``, sizes fitting the network) from a fresh copy of ``template``.

        Args:
            after_step (callable | None): Called as ``after_step(t, net, x, ybar, masks)`` after training step ``t``
                (``x`` in the fill's memory format, ``ybar`` the running ensemble; e.g. to read the ensemble along
                the way, ``tools/fill_curve.py``). Default: None.

        Returns:
            Tensor: ``(B, C, H, W)`` float32 ensemble ``ybar``.
        """
        net, optimizer, scaler = self._fresh_net(template, x.device)
        if self.precision(x.device)[1]:
            x = x.contiguous(memory_format=torch.channels_last)
        ybar = x.detach().clone()
        masks = self.mask_stream()
        bar = self._bar(self.iterations + self.final_passes, desc)
        for t in bar:
            if t < self.iterations:
                self.step(net, optimizer, x, ybar, generator, scaler, t=t, masks=masks)
                if after_step is not None:
                    after_step(t, net, x, ybar, masks)
            else:
                self.forward_pass(net, x, ybar, generator, t=t, masks=masks)
        bar.close()
        return ybar.contiguous()

    def _draw(self, masks, net, x, generator):
        """``K`` keep-masks for ``x`` (``(K*B, C or 1, H, W)``, mask ``k`` at rows ``k*B..``), widened to
        the network's mask channels, and ``x`` stacked ``K`` times to match."""
        k = self.masks_per_step
        keep = masks.sample(x.shape, generator, device=x.device)[0]
        if k > 1:
            keep = torch.cat([keep] + [masks.sample(x.shape, generator, device=x.device)[0] for _ in range(k - 1)])
            x = torch.cat([x] * k)  # keeps x's memory format (repeat would not)
        mask_channels = getattr(net, 'mask_channels', keep.shape[1])
        if keep.shape[1] != mask_channels:  # a shared mask for a network with per-channel mask inputs
            keep = keep.expand(-1, mask_channels, -1, -1)
        return keep, x

    def _update(self, ybar, pred, keep, beta):
        """Ensemble update with each of the ``K`` predictions of a step, in order."""
        b = ybar.shape[0]
        for k in range(pred.shape[0] // b):
            ensemble_update(ybar, pred[k * b:(k + 1) * b], keep[k * b:(k + 1) * b], beta)

    def step(self, net, optimizer, x, ybar, generator, scaler=None, t=0, masks=None, before_backward=None):
        """Filling iteration ``t``: draw ``K`` masks, one Adam step at ``lr_at(t)`` on the hidden pixels,
        then update ``ybar`` in place with ``beta_at(t)`` (skipped when ``ybar`` is None).

        Args:
            masks (MaskSampler | ComplementaryMasks | None): The image's mask source. Default: None
                (:meth:`mask_stream`, fresh: right for independent masks only).
            before_backward (callable | None): Called as ``before_backward(pred, xk, keep)`` with the step's
                prediction (its graph still alive), input and masks, before the step's own backward pass.
        """
        if self.lr_schedule != 'constant' or self.lr_warmup:
            for group in optimizer.param_groups:
                group['lr'] = self.lr_at(t)
        keep, xk = self._draw(masks if masks is not None else self.mask_stream(), net, x, generator)
        with self._autocast(x.device):
            pred = net(xk, keep)
            loss = masked_fill_loss(pred.float(), xk, keep)
        optimizer.zero_grad(set_to_none=True)
        if before_backward is not None:
            before_backward(pred, xk, keep)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if ybar is not None:
            with torch.no_grad():
                self._update(ybar, pred.detach(), keep, self.beta_at(t))
        return loss

    @torch.no_grad()
    def forward_pass(self, net, x, ybar, generator, t=None, masks=None):
        """A forward-only pass (no gradient, BatchNorm as it is): ``K`` fresh masks, ``ybar`` updated in place
        with ``beta_at(t)`` (default ``t = T``: the schedule's last beta)."""
        keep, xk = self._draw(masks if masks is not None else self.mask_stream(), net, x, generator)
        with self._autocast(x.device):
            pred = net(xk, keep)
        self._update(ybar, pred.float(), keep, self.beta_at(self.iterations if t is None else t))

    @torch.no_grad()
    def hidden_mean(self, net, x, generator, passes):
        """Forward-only estimate of ``x`` (``(B, C, H, W)``, sizes fitting the network): at each pixel, the mean
        of the predictions made while it was hidden, over ``passes`` passes of ``K`` complementary masks
        (more passes if needed, until every pixel has been hidden once).

        Args:
            net (nn.Module | list): The network, or several (snapshots): pass ``i`` uses ``net[i % len(net)]``.

        Returns:
            Tensor: ``(B, C, H, W)`` float32.
        """
        nets = net if isinstance(net, (list, tuple)) else [net]
        masks = ComplementaryMasks(self.sampler)
        total = torch.zeros_like(x, dtype=torch.float32, memory_format=torch.contiguous_format)
        count = torch.zeros_like(total[:, :self.sampler.mask_channels(x.shape[1])])
        done = 0
        while done < passes or not bool((count > 0).all()):
            keep, xk = self._draw(masks, nets[0], x, generator)
            with self._autocast(x.device):
                pred = nets[done % len(nets)](xk, keep).float()
            b = x.shape[0]
            for k in range(self.masks_per_step):
                hidden = 1.0 - keep[k * b:(k + 1) * b, :count.shape[1]]
                total += pred[k * b:(k + 1) * b] * hidden
                count += hidden
            done += 1
        return total / count

    def ensemble_memory(self):
        """The steps the running ensemble remembers at the end: ``1 / (p (1 - beta))`` (at most ``T``), ``p`` the mean
        hidden ratio; a pixel is updated with weight ``1 - beta`` at each step that hides it."""
        p = max(sum(self.sampler.ratio) / 200.0, 1e-3)
        return min(self.iterations, max(1, round(1.0 / (p * max(1.0 - self.beta_at(self.iterations - 1), 1e-3)))))

    def snapshot_steps(self, passes):
        """The adaptation steps after which ``large_mode: shared`` keeps a copy of the weights: ``passes`` steps
        (at most ``T``) evenly spread over the last :meth:`ensemble_memory` steps, the memory of the authors'
        running ensemble; so the forward-only passes average predictions of as many states of the network as the
        running ensemble would, not of its last state only."""
        window = self.ensemble_memory()
        count = min(passes, window)
        last = self.iterations - 1
        return sorted({last - round(i * window / count) for i in range(count)})

    def shared_plan(self):
        """``(adaptation steps, crop side, passes per tile)`` of ``large_mode: shared``."""
        return (self.adapt_iterations or self.iterations, self.adapt_size or self.tile_size,
                self.tile_passes or self.final_passes or SHARED_PASSES)

    def _fill_shared(self, template, x, generator, desc):
        """``large_mode: shared`` for ``x`` (``(B, C, H, W)``, larger than ``tile_size``): see the class doc."""
        steps, side, passes = self.shared_plan()
        if steps != self.iterations:  # T is the adaptation's steps from here on
            adapting = self._replace(iterations=steps, adapt_iterations=None)
            return adapting._fill_shared(template, x, generator, desc)
        tile, device = self.tile_size, x.device
        h, w = x.shape[-2:]
        th, tw = min(h, side), min(w, side)
        min_size = getattr(template, 'min_size', 0)
        net, optimizer, scaler = self._fresh_net(template, device)
        channels_last = self.precision(device)[1]
        masks = self.mask_stream()
        gen_device = generator.device if generator is not None else device
        keep_at, snapshots = set(self.snapshot_steps(passes)), []
        bar = self._bar(self.iterations, f'{desc or "filling"} adapting')
        for t in bar:  # adapt one copy on random crops of the whole image
            top = int(torch.randint(0, h - th + 1, (1, ), generator=generator, device=gen_device).item())
            left = int(torch.randint(0, w - tw + 1, (1, ), generator=generator, device=gen_device).item())
            crop, _ = pad_to_multiple(x[..., top:top + th, left:left + tw], self.pad_multiple, min_size=min_size)
            if channels_last:
                crop = crop.contiguous(memory_format=torch.channels_last)
            self.step(net, optimizer, crop, None, generator, scaler, t=t, masks=masks)
            if t in keep_at:
                snapshots.append(copy.deepcopy(net))
        bar.close()
        del optimizer
        out = torch.zeros_like(x)
        weight = torch.zeros_like(x[:, :1])
        boxes = [(t, l) for t in tile_boxes(h, tile, self.tile_overlap) for l in tile_boxes(w, tile, self.tile_overlap)]
        bar = self._bar(len(boxes), f'{desc or "filling"} tiles')
        for i in bar:  # fill every tile with the adapted copy, forward only
            t, l = boxes[i]
            crop, (ch, cw) = pad_to_multiple(x[..., t:t + tile, l:l + tile], self.pad_multiple, min_size=min_size)
            if channels_last:
                crop = crop.contiguous(memory_format=torch.channels_last)
            out[..., t:t + tile, l:l + tile] += self.hidden_mean(snapshots, crop, generator, passes)[..., :ch, :cw]
            weight[..., t:t + tile, l:l + tile] += 1
        bar.close()
        return out / weight

    def _fill_padded(self, template, x, generator, desc):
        """Pad to the network's multiple, fill with the steps and passes of the image's size, crop back."""
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
                gray = self._replace(sampler=MaskSampler(self.sampler.ratio, 'singlechannel', self.sampler.patch_size))
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
            out = self._fill_shared(template, x, generator, desc)
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


def _or(value, default):
    """``value``, or ``default`` when it is None (a ``~`` in YAML leaves an option at its default)."""
    return default if value is None else value


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
                               channels_last=_or(f.get('channels_last'), False), show_progress=f.get('progress', True),
                               lr_schedule=_or(f.get('lr_schedule'), 'constant'), lr_min=_or(f.get('lr_min'), 0.0),
                               lr_warmup=_or(f.get('lr_warmup'), 0),
                               beta_schedule=_or(f.get('beta_schedule'), 'constant'), beta_end=f.get('beta_end'),
                               masks_per_step=_or(f.get('masks_per_step'), 1),
                               complementary=_or(f.get('complementary'), False),
                               final_passes=_or(f.get('final_passes'), 0), large_mode=_or(f.get('large_mode'), 'tiles'),
                               adapt_size=f.get('adapt_size'), adapt_iterations=f.get('adapt_iterations'),
                               tile_passes=f.get('tile_passes'), by_area=f.get('by_area'))
    except OptionError as exc:
        key = str(exc).replace('ratio:', 'mask_ratio:', 1) if str(exc).startswith('ratio:') else str(exc)
        raise OptionError(f"{source + ': ' if source else ''}fill.{key}") from None
