"""``large_mode: shared``: MPI on an image larger than one tile, at forward-pass cost per tile.

Filling every tile from fresh weights (the authors) costs tiles x ``T`` training steps. Here one copy of the
weights is adapted on random ``adapt_size`` crops of the whole image for ``adapt_iterations`` steps (positions
from the image's generator, no ensemble), keeping snapshots of it over its last steps (:func:`snapshot_steps`).
Then every tile gets ``tile_passes`` forward-only passes of complementary masks, each pass with the next
snapshot, raised if needed until every pixel has been hidden once; a tile's estimate is, at each pixel, the
mean of the predictions made while it was hidden, and the overlaps are averaged. The cost is the adaptation
plus tiles x passes forward passes, and the memory is one tile.
"""

import copy

import torch

from basicsr_denoise.archs.arch_util import pad_to_multiple, tile_starts
from basicsr_denoise.mpi.masking import ComplementaryMasks

#: Forward-only passes per tile when ``tile_passes`` is not set.
SHARED_PASSES = 16


def shared_plan(filler):
    """``(adaptation steps, crop side, passes per tile)`` of ``filler`` (an ``IterativeFiller``)."""
    return (filler.adapt_iterations or filler.iterations, filler.adapt_size or filler.tile_size,
            filler.tile_passes or SHARED_PASSES)


def ensemble_memory(filler, steps):
    """The steps the authors' running ensemble remembers at the end of ``steps`` steps: ``1 / (p (1 - beta))``
    (at most ``steps``), ``p`` the mean hidden ratio; a pixel is updated with weight ``1 - beta`` at each step
    that hides it."""
    p = max(sum(filler.sampler.ratio) / 200.0, 1e-3)
    return min(steps, max(1, round(1.0 / (p * max(1.0 - filler.beta, 1e-3)))))


def snapshot_steps(filler, passes, steps):
    """The adaptation steps (of ``steps``) after which a copy of the weights is kept: ``passes`` steps (at most
    ``steps``) evenly spread over the last :func:`ensemble_memory` steps, so the forward-only passes average
    predictions of as many states of the network as the running ensemble would, not of its last state only."""
    window = ensemble_memory(filler, steps)
    count = min(passes, window)
    last = steps - 1
    return sorted({last - round(i * window / count) for i in range(count)})


@torch.no_grad()
def hidden_mean(filler, nets, x, generator, passes):
    """Forward-only estimate of ``x`` (``(B, C, H, W)``, sizes fitting the network): at each pixel, the mean of
    the predictions made while it was hidden, over ``passes`` passes of complementary masks (more passes if
    needed, until every pixel has been hidden once). Pass ``i`` uses ``nets[i % len(nets)]``.

    Returns:
        Tensor: ``(B, C, H, W)`` float32.
    """
    masks = ComplementaryMasks(filler.sampler)
    total = torch.zeros_like(x, dtype=torch.float32, memory_format=torch.contiguous_format)
    count = torch.zeros_like(total[:, :filler.sampler.mask_channels(x.shape[1])])
    done = 0
    while done < passes or not bool((count > 0).all()):
        keep = filler.draw(masks, nets[0], x, generator)
        with filler.autocast_context(x.device):
            pred = nets[done % len(nets)](x, keep).float()
        hidden = 1.0 - keep[:, :count.shape[1]]
        total += pred * hidden
        count += hidden
        done += 1
    return total / count


def fill_shared(filler, template, x, generator, desc=None):
    """Denoise ``x`` (``(B, C, H, W)``, larger than ``filler.tile_size``) as the module doc says.

    Args:
        filler (IterativeFiller): Its settings (lr, warmup, masks, precision, tiles, passes).
        template (nn.Module): The masked network with pre-trained weights (left untouched).
        generator (torch.Generator): Seeded generator on the device of ``x``.

    Returns:
        Tensor: ``(B, C, H, W)`` float32.
    """
    steps, side, passes = shared_plan(filler)
    tile, device = filler.tile_size, x.device
    h, w = x.shape[-2:]
    th, tw = min(h, side), min(w, side)
    min_size = getattr(template, 'min_size', 0)
    net, optimizer, scaler = filler.fresh_net(template, device)
    channels_last = filler.precision(device)[1]
    masks = filler.mask_stream()
    gen_device = generator.device if generator is not None else device
    keep_at, snapshots = set(snapshot_steps(filler, passes, steps)), []
    bar = filler.bar(steps, f'{desc or "filling"} adapting')
    for t in bar:  # adapt one copy on random crops of the whole image
        top = int(torch.randint(0, h - th + 1, (1, ), generator=generator, device=gen_device).item())
        left = int(torch.randint(0, w - tw + 1, (1, ), generator=generator, device=gen_device).item())
        crop, _ = pad_to_multiple(x[..., top:top + th, left:left + tw], filler.pad_multiple, min_size=min_size)
        if channels_last:
            crop = crop.contiguous(memory_format=torch.channels_last)
        filler.step(net, optimizer, crop, None, generator, scaler, t=t, masks=masks)
        if t in keep_at:
            snapshots.append(copy.deepcopy(net))
    bar.close()
    del optimizer
    out = torch.zeros_like(x)
    weight = torch.zeros_like(x[:, :1])
    overlap = filler.tile_overlap
    boxes = [(t, l) for t in tile_starts(h, tile, overlap) for l in tile_starts(w, tile, overlap)]
    bar = filler.bar(len(boxes), f'{desc or "filling"} tiles')
    for i in bar:  # fill every tile with the adapted copy, forward only
        t, l = boxes[i]
        crop, (ch, cw) = pad_to_multiple(x[..., t:t + tile, l:l + tile], filler.pad_multiple, min_size=min_size)
        if channels_last:
            crop = crop.contiguous(memory_format=torch.channels_last)
        out[..., t:t + tile, l:l + tile] += hidden_mean(filler, snapshots, crop, generator, passes)[..., :ch, :cw]
        weight[..., t:t + tile, l:l + tile] += 1
    bar.close()
    return out / weight
