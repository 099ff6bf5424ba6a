"""Helpers shared by the architectures: padding to a size the network accepts, and tiling."""

import torch
import torch.nn.functional as F

from basicsr_denoise.utils.dist import bare


# ----------------------------------------------------------------------------------------------
# Padding to a size the network accepts
# ----------------------------------------------------------------------------------------------


def _reflect_pad(x, right, bottom):
    """Reflection-pad the bottom/right of ``x`` by any amount (repeats the reflection as needed)."""
    while right > 0 or bottom > 0:
        h, w = x.shape[-2:]
        if (right and w < 2) or (bottom and h < 2):
            return F.pad(x, (0, right, 0, bottom), mode='replicate')  # a 1-pixel side cannot reflect
        step_r, step_b = min(right, w - 1), min(bottom, h - 1)
        x = F.pad(x, (0, step_r, 0, step_b), mode='reflect')
        right, bottom = right - step_r, bottom - step_b
    return x


def pad_to_multiple(x, multiple, min_size=0):
    """Reflection-pad the bottom and right of ``x`` so both sides fit a network.

    Args:
        x (Tensor): ``(B, C, H, W)`` (or ``(C, H, W)``), any dtype and range.
        multiple (int): Each padded side is a multiple of it (1 = no constraint).
        min_size (int): Each padded side is at least this. Default: 0.

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded tensor and the original ``(H, W)``,
        to pass to :func:`unpad`.
    """
    h, w = x.shape[-2:]
    multiple = max(int(multiple), 1)
    th = max(-(-h // multiple) * multiple, -(-int(min_size) // multiple) * multiple)
    tw = max(-(-w // multiple) * multiple, -(-int(min_size) // multiple) * multiple)
    if th == h and tw == w:
        return x, (h, w)
    squeeze = x.dim() == 3
    y = _reflect_pad(x[None] if squeeze else x, tw - w, th - h)
    return (y[0] if squeeze else y), (h, w)


def unpad(x, size):
    """Crop ``x`` back to the ``size = (H, W)`` returned by :func:`pad_to_multiple`."""
    return x[..., :size[0], :size[1]]


def padded_forward(net, x, multiple=None, min_size=None):
    """``net(x)`` for any ``(H, W)``: reflect-pad to ``multiple`` / ``min_size`` (default: the network's
    ``size_multiple`` / ``min_size`` attributes, else 1 / 0), run, and crop the output back to ``(H, W)``."""
    multiple = multiple if multiple is not None else getattr(bare(net), 'size_multiple', 1)
    min_size = min_size if min_size is not None else getattr(bare(net), 'min_size', 0)
    padded, size = pad_to_multiple(x, multiple, min_size=min_size)
    return unpad(net(padded), size)


#: Images above this many pixels are tiled by :func:`tiled_forward` when no tile size is given.
AUTO_TILE_PIXELS = 2_000_000
#: Default tile side and overlap of :func:`tiled_forward` (multiples of the U-Net's 32).
DEFAULT_TILE, DEFAULT_OVERLAP = 512, 64


def tile_starts(length, tile, overlap):
    """Start offsets of tiles of side ``tile`` covering ``length``, neighbours overlapping by ``>= overlap``."""
    if length <= tile:
        return [0]
    step = max(tile - overlap, 1)
    n = -(-(length - tile) // step) + 1
    return sorted({min(i * step, length - tile) for i in range(n)})


def _blend_weights(start, size, length, overlap, device):
    """1-D weights of one tile along one axis: 1 inside; on a side shared with a neighbour, 0 over the
    outer ``overlap // 4`` pixels (where padding shows) and a linear ramp over the rest of the overlap."""
    w = torch.ones(size, device=device)
    margin = overlap // 4
    ramp = torch.arange(1, overlap - 2 * margin + 1, device=device, dtype=torch.float32) / (overlap - 2 * margin + 1)
    edge = torch.cat([torch.zeros(margin, device=device), ramp])[:size]
    if start > 0:
        w[:edge.numel()] = torch.minimum(w[:edge.numel()], edge)
    if start + size < length:
        w[size - edge.numel():] = torch.minimum(w[size - edge.numel():], edge.flip(0))
    return w


def tiled_forward(net, x, tile=None, overlap=DEFAULT_OVERLAP, multiple=None, min_size=None):
    """``net(x)`` computed tile by tile, with blended overlaps, so memory does not grow with the image.

    Each tile goes through :func:`padded_forward`. Where two tiles overlap, each tile's outer
    ``overlap // 4`` pixels get weight 0 and the rest of the overlap a linear cross-fade, so no seam
    shows; for a network whose receptive-field radius is at most ``overlap // 4`` the result equals
    the untiled ``net(x)`` (up to float rounding).

    Args:
        net (nn.Module): Image-to-image network (output has ``x``'s height and width).
        x (Tensor): ``(B, C, H, W)``.
        tile (int | None): Tile side; 0 never tiles; None tiles with :data:`DEFAULT_TILE` when
            ``H*W`` exceeds :data:`AUTO_TILE_PIXELS`. Default: None.
        overlap (int): Overlap of neighbouring tiles, ``0 <= overlap < tile``. Default: 64.
        multiple, min_size: As in :func:`padded_forward`.
    """
    h, w = x.shape[-2:]
    if tile is None:
        tile = DEFAULT_TILE if h * w > AUTO_TILE_PIXELS else 0
    if not tile or (h <= tile and w <= tile):
        return padded_forward(net, x, multiple, min_size)
    if not 0 <= overlap < tile:
        raise ValueError(f'tile overlap must be in [0, tile={tile}), got {overlap}')
    out = weight = None
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            th, tw = min(tile, h - top), min(tile, w - left)
            y = padded_forward(net, x[..., top:top + th, left:left + tw], multiple, min_size)
            if out is None:
                out = torch.zeros(*y.shape[:-2], h, w, dtype=y.dtype, device=y.device)
                weight = torch.zeros(h, w, dtype=y.dtype, device=y.device)
            wt = torch.outer(_blend_weights(top, th, h, overlap, y.device),
                             _blend_weights(left, tw, w, overlap, y.device)).to(y.dtype)
            out[..., top:top + th, left:left + tw] += y * wt
            weight[top:top + th, left:left + tw] += wt
    return out / weight
