"""Checkpoint I/O, in one place: safe reading, self-describing checkpoints, loading weights into a network
(with one-line mismatch errors), building a network from a checkpoint, and exporting the files we ship."""

import os
import pickle
import re

import torch

from basicsr_denoise.archs import build_network
from basicsr_denoise.utils.atomic import atomic_save
from basicsr_denoise.utils.dist import bare
from basicsr_denoise.utils.errors import CheckpointError, OptionError
from basicsr_denoise.weights import resolve_weights, sha256_of, zoo_network_g


def safe_load(path, map_location='cpu'):
    """Load a checkpoint or training state without executing any code it carries.

    Uses ``torch.load(weights_only=True)``: only tensors, numbers, strings and plain
    containers are unpickled, so a downloaded ``.pth`` with a malicious
    ``__reduce__`` is refused instead of run.

    Args:
        path (str): The ``.pth`` / ``.state`` file.
        map_location: As in :func:`torch.load`. Default: ``'cpu'``.

    Raises:
        CheckpointError: if the file is missing, truncated, or not a plain weights file.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickling_reason(exc)
        risk = '; a full unpickle could run code from it' if 'global' in reason.lower() else ''
        raise CheckpointError(f'refusing to load {path}: it is not a plain weights file ({reason}){risk}') from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f'cannot read checkpoint {path}: {_first_line(exc)}') from None


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unpickling_reason(exc):
    """The specific reason inside torch's long weights-only error (e.g. ``Unsupported global: ...``)."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(exc))
    m = re.search(r'WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)', text, flags=re.S)
    reason = ' '.join((m.group(1) if m else _first_line(exc)).split())
    reason = reason.split('. Please use')[0].rstrip('.')
    return f'torch.load weights_only=True: {reason}'


def plain_data(value, key='checkpoint'):
    """``value`` as plain YAML-like data (dicts, lists, str, numbers, bools, None), which
    ``torch.load(weights_only=True)`` reads back; anything else is a one-line CheckpointError."""
    if isinstance(value, dict):
        return {str(k): plain_data(v, f'{key}.{k}') for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v, key) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise CheckpointError(f'{key}: {type(value).__name__} is not plain data (dicts, lists, strings, numbers)')


def export_checkpoint(src, dst, network_g=None, fill=None, score=None, param_key=None):
    """Write the self-describing checkpoint that the package ships, from a training checkpoint.

    The result is ``{'params': state_dict, 'network_g': {...}, 'fill': {...}}`` (MPI) or
    ``{'params': ..., 'network_g': ..., 'score': {...}}`` (Noise2Score): the architecture and the
    method's defaults stored as plain data beside the weights, so ``torch.load(weights_only=True)``
    still reads it and inference needs no option file. The network is built from ``network_g`` and
    the weights loaded into it strictly before anything is written.

    Example (a new Noise2Score checkpoint; then update the registry with ``tools/ship_checkpoint.py``,
    which calls this function)::

        export_checkpoint('experiments/N2S_gauss25_color/models/net_g_2000.pth',
                          'experiments/pretrained_models/N2S_gauss25_color_ours.pth',
                          network_g={'type': 'N2NUNet', 'num_in_ch': 3, 'num_out_ch': 3, 'tied': True},
                          score={'noise': {'type': 'Gaussian', 'sigma': 25}, 'clip_output': True})

    Args:
        src (str): A training checkpoint ``{'params': ..., 'params_ema': ...}`` (``experiments/<name>/
            models/net_g_<iter>.pth``), a bare state dict, or a self-describing file.
        dst (str): Output file (written atomically; its folder is created).
        network_g (dict | None): The ``network_g`` block of the training options. Default: None (the
            one ``src`` stores; an error when it stores none).
        fill (dict | None): MPI ``fill`` defaults (:data:`~basicsr_denoise.mpi.filling.FILL_SCHEMA`).
            Default: None (those ``src`` stores, if any).
        score (dict | None): Noise2Score ``score`` defaults (``ScoreModel``'s block, e.g. the noise
            family and level). Default: None (those ``src`` stores, if any).
        param_key (str | None): Which weights to ship. Default: None (``params_ema`` when ``src``
            has it, else ``params``).

    Returns:
        str: The sha256 of ``dst``.

    Raises:
        CheckpointError: unreadable ``src``, no ``network_g``, weights that do not fit it, or
            non-plain values in the blocks (one line each).
    """
    if param_key is None:
        raw = safe_load(src)
        param_key = 'params_ema' if isinstance(raw, dict) and isinstance(raw.get('params_ema'), dict) else 'params'
    sd, meta = read_checkpoint(src, key=param_key)
    network_g = network_g if network_g is not None else meta.get('network_g')
    if network_g is None:
        raise CheckpointError(f'{src}: stores no network_g; pass the network_g block of its training options')
    net = build_network(dict(network_g), source=src)
    load_checkpoint(net, src, key=param_key, strict=True, state_dict=sd)
    out = {'params': {k: v.detach().cpu().clone().contiguous() for k, v in sd.items()},
           'network_g': plain_data(network_g, 'network_g')}
    for name, block in (('fill', fill if fill is not None else meta.get('fill')),
                        ('score', score if score is not None else meta.get('score'))):
        if block is not None:
            out[name] = plain_data(block, name)
    atomic_save(out, dst)
    return sha256_of(dst)


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


def load_network(weights, network_g=None, fallback_network=None, param_key='params', strict=True, source=None):
    """Build a network and load its weights; the architecture comes from the checkpoint when it stores one.

    Args:
        weights (str | None): A checkpoint path, the name of a shipped one (``MPI_syn_ours.pth``) or of a
            fetched zoo one (``imgnet_30_multchannel_skip``), sha256-checked; None or ``''`` keeps the random
            initialisation.
        network_g (dict | None): An explicit architecture. A checkpoint that stores a different one is a
            one-line error. Default: None.
        fallback_network (dict | None): The architecture when neither ``network_g`` nor the checkpoint
            gives one (a preset's); a zoo name's own ``network_g`` (:mod:`basicsr_denoise.weights.zoo`) comes
            before it. Default: None (an error for such a checkpoint).
        param_key (str): ``'params'`` or ``'params_ema'``. Default: ``'params'``.
        strict (bool): Require exactly the network's keys. Default: True.
        source (str | None): The option file, for errors. Default: None.

    Returns:
        tuple: ``(net, meta, path)``: the network (CPU), the checkpoint's stored blocks
        (``network_g``, ``fill``, ``score``; empty for old-format files) and the resolved file (or None).
    """
    if not weights:
        if not (network_g or fallback_network):
            raise OptionError('network_g: needed to build a network without weights')
        return build_network(dict(network_g or fallback_network), source=source), {}, None
    path = resolve_weights(weights)
    sd, meta = read_checkpoint(path, key=param_key)
    stored = meta.get('network_g')
    if network_g is not None and stored is not None and strict:
        check_network_matches(path, stored, network_g, source)
    arch = network_g or stored or zoo_network_g(weights) or fallback_network
    if arch is None:
        raise CheckpointError(f'{path}: stores no network_g (an old-format or third-party checkpoint): give its '
                              'architecture explicitly (network_g=, --network or the option file)')
    net = build_network(dict(arch), source=source if arch is network_g else path)
    load_checkpoint(net, path, key=param_key, strict=strict, state_dict=sd)
    return net, meta, path


def load_weights(net, weights, param_key='params', strict=True, network_g=None, source=None):
    """Load ``weights`` (a file, or the name of a shipped checkpoint, sha256-checked) into ``net`` safely, with
    :func:`load_checkpoint`'s one-line mismatch errors; returns the resolved file."""
    path = resolve_weights(weights)
    load_checkpoint(net, path, key=param_key, strict=strict, network_g=network_g, source=source)
    return path
