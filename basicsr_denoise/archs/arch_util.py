"""Helpers shared by the architectures: size padding and checkpoint loading."""

import re

import torch
import torch.nn.functional as F

from basicsr_denoise.utils.checkpoint import safe_load
from basicsr_denoise.utils.dist import bare
from basicsr_denoise.utils.errors import CheckpointError

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


# ----------------------------------------------------------------------------------------------
# Checkpoint loading
# ----------------------------------------------------------------------------------------------


#: Plain-data entries a self-describing checkpoint keeps beside ``params``: the architecture and the
#: defaults of the method that uses it (``fill`` for MPI, ``score`` for Noise2Score).
META_KEYS = ('network_g', 'fill', 'score')


def read_checkpoint(path, key='params'):
    """Read a checkpoint's state dict and its self-description, without executing code from the file.

    Args:
        path (str): The checkpoint.
        key (str): Entry holding the weights: ``'params'`` or ``'params_ema'`` (the other
            one is used when only it exists); a file holding a bare state dict also works.
            Default: ``'params'``.

    Returns:
        tuple[dict, dict]: The state dict (``module.`` prefixes stripped) and ``{'network_g', 'fill',
        'score'}``, those of them the file stores (empty for old-format and third-party files).

    Raises:
        CheckpointError: missing file, unreadable file, a file that is not a plain weights
            file (``torch.load(weights_only=True)`` refuses it), or no state dict inside.
    """
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: expected a dict of tensors, got {type(ckpt).__name__}')
    other = {'params': 'params_ema', 'params_ema': 'params'}.get(key)
    if key in ckpt and isinstance(ckpt[key], dict):
        sd = ckpt[key]
    elif other is not None and isinstance(ckpt.get(other), dict):
        sd = ckpt[other]
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt
    else:
        raise CheckpointError(f"{path}: no state dict under key '{key}' (top-level keys: "
                              f"{', '.join(map(str, list(ckpt)[:8])) or 'none'})")
    meta = {k: ckpt[k] for k in META_KEYS if isinstance(ckpt.get(k), dict)}
    return {(k[7:] if k.startswith('module.') else k): v for k, v in sd.items()}, meta


def read_state_dict(path, key='params'):
    """The state dict of :func:`read_checkpoint` alone."""
    return read_checkpoint(path, key)[0]


def normalize_network_opt(opt):
    """A ``network_g`` block with every constructor default filled in (nested blocks too), for comparisons.

    Tuples become lists (YAML has no tuples), so ``{type: SkipNet}`` and the same block written out in
    full compare equal.
    """
    import inspect

    from basicsr_denoise.utils.registry import ARCH_REGISTRY
    if isinstance(opt, dict):
        full = dict(opt)
        if isinstance(opt.get('type'), str) and opt['type'] in ARCH_REGISTRY:
            params = inspect.signature(ARCH_REGISTRY.get(opt['type']).__init__).parameters
            full = {n: p.default for n, p in params.items() if n != 'self' and p.default is not p.empty}
            full.update(opt)
        return {k: normalize_network_opt(v) for k, v in full.items()}
    if isinstance(opt, (list, tuple)):
        return [normalize_network_opt(v) for v in opt]
    return opt


def network_difference(a, b, prefix='network_g'):
    """The first dotted key where two ``network_g`` blocks differ (after :func:`normalize_network_opt`),
    as ``(key, value in a, value in b)``, or None when they describe the same network."""
    a, b = normalize_network_opt(a), normalize_network_opt(b)

    def walk(x, y, key):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in list(x) + [k for k in y if k not in x]:
                found = walk(x.get(k), y.get(k), f'{key}.{k}')
                if found:
                    return found
            return None
        return None if x == y else (key, x, y)

    return walk(a, b, prefix)


def check_network_matches(path, stored, given, source=None):
    """Raise a one-line CheckpointError when a checkpoint's stored ``network_g`` differs from the given one."""
    diff = network_difference(given, stored)
    if diff:
        key, mine, theirs = diff
        where = f' by {source}' if source else ''
        raise CheckpointError(f'{path} stores a different network_g than the one given{where}: {key} is '
                              f'{theirs!r} in the checkpoint, {mine!r} given (leave network_g out to use the '
                              "checkpoint's own)")


def _first_conv(sd):
    for k, v in sd.items():
        if k.endswith('weight') and v.dim() == 4:
            return k, v
    return None, None


def _input_hint(net, net_in, ckpt_in):
    base = f'first conv expects {net_in} input channels but the checkpoint has {ckpt_in}'
    in_ch = getattr(net, 'in_ch', None)
    mode = getattr(net, 'mask_mode', None)
    if in_ch is None or mode is None:
        return f'{base}: set num_in_ch {ckpt_in}'
    tries = []
    if ckpt_in == 2 * in_ch and mode != 'multchannel':
        tries.append('mask_mode multchannel')
    elif ckpt_in == in_ch + 1 and mode != 'singlechannel':
        tries.append('mask_mode singlechannel')
    else:
        if ckpt_in % 2 == 0:
            tries.append(f'in_ch {ckpt_in // 2} with mask_mode multchannel')
        if ckpt_in > 1:
            tries.append(f'in_ch {ckpt_in - 1} with mask_mode singlechannel')
    return f"{base}: try {' or '.join(tries)}"


def _mismatch_hint(net, own, sd, missing, unexpected, shapes):
    """One hint sentence for the most likely cause of a key/shape mismatch."""
    own_keys, ck_keys = list(own), list(sd)
    if ck_keys and own_keys:
        ck_net = all(k.startswith('net.') for k in ck_keys)
        own_net = all(k.startswith('net.') for k in own_keys)
        if ck_net and not own_net:
            return "the checkpoint holds a masked wrapper (keys start with 'net.'): load it into MaskedNet"
        if own_net and not ck_net:
            return "the checkpoint holds a bare backbone (no 'net.' prefix): load it into the wrapper's .net"
    k_own, w_own = _first_conv(own)
    if k_own is not None and k_own in sd:
        w_ck = sd[k_own]
        if w_ck.dim() == 4 and w_ck.shape[1] != w_own.shape[1]:
            return _input_hint(net, w_own.shape[1], w_ck.shape[1])
    miss_set = set(missing)
    for u in unexpected:
        m = re.match(r'^(.*)\.(\d+)\.(weight|bias)$', u)
        if m:
            shifted = f'{m.group(1)}.{int(m.group(2)) + 1}.{m.group(3)}'
            if shifted in miss_set:
                return ("the network's convs sit one index later than the checkpoint's: "
                        "the checkpoint was built with pad 'zero'")
            shifted = f'{m.group(1)}.{int(m.group(2)) - 1}.{m.group(3)}'
            if shifted in miss_set:
                return "the checkpoint's convs sit one index later: it was built with pad 'reflection'"
    if missing and not unexpected:
        return 'the network is larger than the checkpoint (more layers, blocks or scales, or need1x1_up)'
    if unexpected and not missing:
        return 'the checkpoint is larger than the network (more layers, blocks or scales, or need1x1_up)'
    if missing and unexpected:
        return (f'the checkpoint keys look like {unexpected[0]} but the network expects {missing[0]}: '
                f'check the network type and its depth options')
    for k, s_own, s_ck in shapes:
        if len(s_own) == len(s_ck) and s_own[0] != s_ck[0]:
            return (f'the checkpoint has {s_ck[0]} channels at {k} where the network has {s_own[0]}: set the '
                    f'channel widths (num_channels_down/up/skip, num_feat) or num_out_ch to match')
    return 'check the network type and its options against the checkpoint'


def load_checkpoint(net, path, key='params', strict=True, state_dict=None, network_g=None, source=None):
    """Load a BasicSR-style checkpoint into ``net`` safely, with a helpful error on mismatch.

    The file is read with ``torch.load(map_location='cpu', weights_only=True)``, so a
    pickle that would run code is refused. ``{'params': ...}``, ``{'params_ema': ...}``
    and bare state dicts are accepted, and ``module.`` prefixes (DataParallel) stripped.

    Args:
        net (nn.Module): The network (a DataParallel/DDP wrapper is unwrapped).
        path (str): Checkpoint file.
        key (str): ``'params'`` or ``'params_ema'``. Default: ``'params'``.
        strict (bool): Require exactly the network's keys. Shapes must always match.
            Default: True.
        state_dict (dict | None): ``read_state_dict(path, key)`` when the caller has already read it
            (the file is then not read again; ``path`` still names it in errors). Default: None.
        network_g (dict | None): The option block ``net`` was built from. When the checkpoint stores
            its own ``network_g`` and ``strict`` is set, the two must describe the same network.
            Default: None (no check).
        source (str | None): The option file that gave ``network_g``, for errors. Default: None.

    Returns:
        The ``load_state_dict`` result (missing and unexpected keys; empty when strict).

    Raises:
        CheckpointError: one line naming the file, the first missing and first unexpected
            key, their counts, and a hint (e.g. ``first conv expects 6 input channels but
            the checkpoint has 4: try mask_mode singlechannel``).
    """
    net = bare(net)
    if state_dict is not None:
        sd, meta = state_dict, {}
    else:
        sd, meta = read_checkpoint(path, key=key)
    if network_g is not None and strict and 'network_g' in meta:
        check_network_matches(path, meta['network_g'], network_g, source)
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [(k, tuple(own[k].shape), tuple(sd[k].shape)) for k in own if k in sd and own[k].shape != sd[k].shape]
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing keys (first: {missing[0]})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected keys (first: {unexpected[0]})')
        if shapes:
            k, s_own, s_ck = shapes[0]
            parts.append(f'{len(shapes)} shape mismatches (first: {k} network {s_own} vs checkpoint {s_ck})')
        hint = _mismatch_hint(net, own, sd, missing, unexpected, shapes)
        raise CheckpointError(f'{path} does not fit {type(net).__name__}: {"; ".join(parts)}; hint: {hint}')
    return net.load_state_dict(sd, strict=strict)
