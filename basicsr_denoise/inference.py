"""The inference layer: one zero-shot MPI denoiser and one Noise2Score denoiser, tensor in, tensor out.

Every entry point denoises through these two classes: ``test.py`` (``IterativeFillModel.test``,
``ScoreModel.test``), the zero-shot check in ``MaskedPretrainModel``'s validation, the ``denoise``
command, the SIDD/DND tools and the Python API (:func:`denoise`, :func:`load_denoiser`). Each is
built from a ``network_g`` block, weights and a ``fill`` (MPI) or ``score`` (Noise2Score) block:

* :class:`MPIDenoiser` (Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser",
  NeurIPS 2024): iterative filling from a fresh copy of the pre-trained masked network per image,
  with the mask seed ``image_seed(seed, name)``.
* :class:`N2SDenoiser` (Kim & Ye, "Noise2Score", NeurIPS 2021): one score evaluation (tiled above
  2 MP) and the noise family's Tweedie step, at a known or an estimated level.

``from_pretrained`` reads the architecture and the method's defaults from a self-describing
checkpoint (see :func:`basicsr_denoise.checkpoint.export_checkpoint`). A third-party or
old-format file has none: the architecture then comes from an explicit ``network_g`` (or, for MPI,
from the chosen preset), never from the file's key names.
"""

import math
import numbers

import numpy as np
import torch

from basicsr_denoise.checkpoint import load_network
from basicsr_denoise.presets import DEFAULT_PRESET
from basicsr_denoise.utils.dist import bare, resolve_device
from basicsr_denoise.utils.errors import CheckpointError, DataError, OptionError
from basicsr_denoise.utils.options import Block, validate
from basicsr_denoise.utils.registry import NOISE_REGISTRY

#: Keys of the ``score`` option block (Noise2Score; ``ScoreModel``'s and the checkpoints' ``score``).
SCORE_SCHEMA = {
    'noise': Block(NOISE_REGISTRY), 'blind': bool, 'blind_method': str, 'grid': list, 'refine_iters': int,
    'tv_eps': float, 'clip_output': bool, 'pad_multiple': int, 'tile_size': int, 'tile_overlap': int,
}
#: ``score`` key -> (default, one-line doc), for ``docs/configuration.md`` (a test keeps it in step with the schema).
SCORE_DOCS = {
    'noise': ('required', 'The noise family and its level: `{type: Gaussian, sigma: 25}` (0-255), `{type: Poisson, '
              'eta: 0.01}`, `{type: Gamma, k: 100}`.'),
    'blind': ('false', 'Estimate the level per image instead of using `noise`\'s (reported as `sigma_hat`, '
              '`eta_hat`, `k_hat`).'),
    'blind_method': ('tv_grid', 'The blind search: `tv_grid` (the authors), `tv_golden` (grid, then golden-section), '
                     '`mad`, `pca` (Gaussian only).'),
    'grid': ('the family\'s', 'Levels the TV search tries.'),
    'refine_iters': ('12', '`tv_golden`: golden-section steps after the grid.'),
    'tv_eps': ('1e-3', 'Charbonnier epsilon of the TV criterion.'),
    'clip_output': ('true', 'Clip the Tweedie estimate to [0, 1].'),
    'pad_multiple': ("the network's", 'Reflect-pad the input to a multiple of this.'),
    'tile_size': ('~ (512 above 2 MP)', 'Score pass in blended tiles of this side; 0: never tile.'),
    'tile_overlap': ('64', 'Overlap of neighbouring tiles (`0 <= overlap < tile_size`).'),
}


# ------------------------------------------------------------------------------------------- images
def _layout(shape, is_tensor):
    if len(shape) == 2:
        return 'HW'
    if len(shape) == 3:
        hwc, chw = shape[2] in (1, 2, 3, 4), shape[0] in (1, 2, 3, 4)
        if hwc and chw:  # e.g. (3, 5, 3): tensors are CHW, arrays HWC by convention
            return 'CHW' if is_tensor else 'HWC'
        if hwc or chw:
            return 'HWC' if hwc else 'CHW'
    raise DataError(f'image: expected (H, W), (H, W, C) or (C, H, W) with C in 1-4, got shape {tuple(shape)}')


def image_to_tensor(image):
    """An image array -> ``(1, C, H, W)`` float32 tensor in [0, 1] (C = 1 or 3) and a function back.

    Args:
        image (ndarray | Tensor): ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``, C = 1 (gray), 3 (RGB) or
            with an alpha channel (2 or 4; alpha is passed through untouched); uint8, uint16 or float
            (float is taken as [0, 1]).

    Returns:
        tuple: ``(x, restore)``; ``restore(out)`` turns a ``(1, C, H, W)`` result back into the
        input's type, dtype, layout, device and range (integers rounded, everything clipped to the range).
    """
    is_tensor = torch.is_tensor(image)
    arr = image.detach().cpu() if is_tensor else np.asarray(image)
    if is_tensor and arr.dtype == torch.uint16:
        arr = arr.to(torch.int32).numpy().astype(np.uint16)
    elif is_tensor:
        arr = arr.numpy()
    layout = _layout(arr.shape, is_tensor)
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        peak = 255.0 if arr.dtype == np.uint8 else 65535.0
        x = arr.astype(np.float32) / peak
    elif np.issubdtype(arr.dtype, np.floating):
        peak, x = None, arr.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError('image: contains NaN or Inf values')
    else:
        raise DataError(f'image: unsupported dtype {arr.dtype} (uint8, uint16 or float)')
    hwc = x[..., None] if layout == 'HW' else (x.transpose(1, 2, 0) if layout == 'CHW' else x)
    c = hwc.shape[2]
    alpha = hwc[..., c - 1:] if c in (2, 4) else None
    color = hwc[..., :c - 1] if alpha is not None else hwc
    t = torch.from_numpy(np.ascontiguousarray(color.transpose(2, 0, 1)))[None]

    def restore(out):
        res = out[0].detach().float().cpu().numpy().transpose(1, 2, 0)
        if alpha is not None:
            res = np.concatenate([res, alpha], axis=2)
        res = np.clip(res, 0.0, 1.0)
        if peak is not None:
            res = np.round(res * peak).astype(arr.dtype)
        else:
            res = res.astype(arr.dtype)
        res = res[..., 0] if layout == 'HW' else (res.transpose(2, 0, 1) if layout == 'CHW' else res)
        res = np.ascontiguousarray(res)
        if not is_tensor:
            return res
        back = torch.from_numpy(res.astype(np.int32) if res.dtype == np.uint16 else res)
        return back.to(device=image.device, dtype=image.dtype)

    return t, restore


def _load_network(networks, weights, network_g=None, fallback=None, param_key='params'):
    """:func:`~basicsr_denoise.checkpoint.load_network`, memoised in ``networks`` (a dict, or None for no memo):
    the denoisers never change their network's weights, so one loaded network serves every denoiser built from
    the same file, architecture and parameter key."""
    if networks is None:
        return load_network(weights, network_g, fallback, param_key)
    key = (str(weights), repr(network_g), repr(fallback), param_key)
    if key not in networks:
        networks[key] = load_network(weights, network_g, fallback, param_key)
    return networks[key]


# ------------------------------------------------------------------------------------------- denoisers
class Denoiser:
    """Interface of the two denoisers: tensor in, tensor out, on ``device``.

    Attributes:
        method (str): ``'mpi'`` or ``'n2s'``.
        device (torch.device): Where the network runs; inputs are moved there.
        weights (str | None): The loaded checkpoint.
    """

    method = None

    def process(self, x, name='image', desc=None):
        """Denoise ``x``; returns ``(output, record)``, ``record`` a dict of per-image facts (e.g. ``sigma_hat``)."""
        raise NotImplementedError

    def __call__(self, x, name='image'):
        """Denoise ``x`` ``(1, C, H, W)``, float32, noisy values (unclipped); returns ``(1, C, H, W)`` float32."""
        return self.process(x, name)[0]

    def denoise_image(self, image, name='image'):
        """Denoise one image array or tensor; the result has its type, dtype, layout and range
        (see :func:`image_to_tensor`). ``name`` sets the MPI mask seed (``image_seed(seed, name)``)."""
        x, restore = image_to_tensor(image)
        return restore(self.process(x.to(self.device), name)[0])

    @property
    def summary(self):
        """One line describing the setup."""
        return f'{type(self).__name__}, weights {self.weights}, device {self.device}'


class MPIDenoiser(Denoiser):
    """Zero-shot MPI denoising: every image is filled from a fresh copy of a pre-trained masked network.

    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.
    The mask generator of image ``name`` is seeded with ``image_seed(seed, name)``, so a result
    depends on the image and its name only, not on the order or the process that fills it.

    Example:
        >>> import numpy as np
        >>> from basicsr_denoise.inference import MPIDenoiser
        >>> den = MPIDenoiser.from_pretrained('fast', fill={'iterations': 2, 'progress': False}, device='cpu')
        >>> noisy = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
        >>> den.denoise_image(noisy).shape, den.denoise_image(noisy).dtype
        ((40, 48, 3), dtype('uint8'))

    Args:
        net (nn.Module): A masked network (``MaskedNet``) with its weights; never modified.
        fill (dict | None): The ``fill`` block (:data:`~basicsr_denoise.mpi.filling.FILL_SCHEMA`).
            Default: None (the filler's defaults).
        device (str | torch.device): ``auto``, ``cpu``, ``cuda``, ``mps``... Default: ``'auto'``.
        seed (int | None): Mask seed. Default: None (``fill.seed``, else 0).
        weights (str | None): The checkpoint's path, for reports. Default: None.
        source (str | None): Where ``fill`` comes from, for errors. Default: None.
    """

    method = 'mpi'

    def __init__(self, net, fill=None, device='auto', seed=None, weights=None, source=None):
        from basicsr_denoise.mpi.filling import FILL_SCHEMA, build_filler
        self.device = resolve_device(device)
        self.net = net.to(self.device)
        self.fill = dict(fill or {})
        validate(self.fill, FILL_SCHEMA, source, prefix='fill.')
        self.filler = build_filler(self.fill, getattr(bare(net), 'mask_mode', 'multchannel'), source=source)
        self.seed = int(self.filler.seed if seed is None else seed)
        self.weights = weights

    @classmethod
    def from_pretrained(cls, preset=DEFAULT_PRESET, weights=None, network_g=None, fill=None, device='auto', seed=None,
                        networks=None):
        """Build from a preset and/or a checkpoint.

        Args:
            preset (str | None): ``quick``, ``gauss``, ``fast``, ``real``, ``real-fast``, ``sidd``, ``sidd-fast``
                (:mod:`basicsr_denoise.presets`): default weights, fallback ``network_g`` and ``fill``.
                None: the checkpoint's own ``fill`` defaults only. Default: ``'quick'``.
            weights (str | None): Checkpoint path or shipped name. Default: None (the preset's).
            network_g (dict | None): Explicit architecture, for files that do not store one. Default: None.
            fill (dict | None): Overrides of the fill block (e.g. ``{'iterations': 50}``; a new
                ``iterations`` scales the preset's ``adapt_iterations`` alike). Default: None.
            device (str): Default: ``'auto'``.
            seed (int | None): Mask seed. Default: None (``fill.seed``).
            networks (dict | None): A memo of loaded networks, shared between denoisers (see
                :func:`load_denoiser`). Default: None (read the weights).

        The fill block is the checkpoint's defaults, updated by the preset's, updated by ``fill``.
        """
        from basicsr_denoise.presets import load_preset
        p = load_preset(preset) if preset else {}
        path_opt = p.get('path') or {}
        weights = weights or path_opt.get('pretrain_network_g')
        if not weights:
            raise CheckpointError('MPI needs pre-trained weights: pass weights= (--weights) or a preset')
        net, meta, path = _load_network(networks, weights, network_g, p.get('network_g'),
                                        path_opt.get('param_key_g', 'params'))
        block = {**(meta.get('fill') or {}), **(p.get('fill') or {})}
        fill = dict(fill or {})
        if 'iterations' in fill:  # fewer (more) steps: the large-image ones shrink (grow) in proportion
            ratio = fill['iterations'] / block.get('iterations', 200)
            if 'adapt_iterations' not in fill and block.get('adapt_iterations'):
                fill['adapt_iterations'] = max(1, round(block['adapt_iterations'] * ratio))
            if 'by_area' not in fill and isinstance(block.get('by_area'), dict) and 'iterations' in block['by_area']:
                fill['by_area'] = {**block['by_area'],
                                   'iterations': max(1, round(block['by_area']['iterations'] * ratio))}
        block.update(fill)
        den = cls(net, block, device, seed, weights=path, source=path)
        den.preset = preset
        return den

    @classmethod
    def from_options(cls, opt_path, weights=None, device='auto'):
        """Build from an MPI test option file (``network_g``, ``path.pretrain_network_g``, ``fill``,
        ``manual_seed``), as ``test.py`` does: validated first, then seeded with ``manual_seed`` (so a random
        initialisation repeats), then built. Used by the SIDD and DND tools.

        Args:
            opt_path (str): e.g. ``options/test/MPI/test_MPI_real_SIDD_fast.yml``.
            weights (str | None): Overrides ``path.pretrain_network_g``; ``''``, ``'none'`` or ``'random'``
                mean random initialisation. Default: None (the file's).
            device (str): Default: ``'auto'``.

        Returns:
            tuple: ``(denoiser, info)``, ``info`` a dict (option file, weights, device, fill) for reports.
        """
        from basicsr_denoise.mpi.filling import FILL_SCHEMA
        from basicsr_denoise.utils.misc import set_random_seed
        from basicsr_denoise.utils.options import load_yaml, validate
        opt = load_yaml(opt_path)
        if not isinstance(opt.get('network_g'), dict):
            raise OptionError(f'{opt_path}: network_g: required option block is missing')
        fill = dict(opt.get('fill') or {})
        validate(fill, FILL_SCHEMA, source=opt_path, prefix='fill.')
        path_opt = opt.get('path') or {}
        seed = opt.get('manual_seed', 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise OptionError(f'{opt_path}: manual_seed: expected an int, got {seed!r}')
        dev = resolve_device(device)
        set_random_seed(seed)
        weights = path_opt.get('pretrain_network_g') if weights is None else weights
        if str(weights).lower() in ('none', 'random', '~'):
            weights = None
        net, _, path = load_network(weights, opt['network_g'], None, path_opt.get('param_key_g', 'params'),
                                    path_opt.get('strict_load_g', True), source=opt_path)
        info = {'option_file': opt_path, 'weights': path or 'random init', 'device': str(dev), 'fill': fill}
        return cls(net, fill, dev, weights=path, source=opt_path), info

    def process(self, x, name='image', desc=None):
        """Fill ``x`` ``(1, C, H, W)`` float32 (noisy, unclipped) on ``device``; returns the unclipped ensemble."""
        from basicsr_denoise.mpi.filling import image_seed
        gen = torch.Generator(device=x.device).manual_seed(image_seed(self.seed, name))
        return self.filler(self.net, x, gen, desc=desc or name), {}

    def plan(self, height, width, channels=3):
        """The work of filling an image of this size: ``{'train_steps', 'train_shape', 'forward_passes',
        'forward_shape'}``, shapes ``(B, C, H, W)`` as the network sees them (padded, shuffled, tiled)."""
        from basicsr_denoise.archs.arch_util import tile_starts
        from basicsr_denoise.mpi.large_image import shared_plan
        f, template = self.filler, bare(self.net)
        in_ch, s = getattr(template, 'in_ch', channels), f.shuffle

        def padded(h, w):
            m, low = f.pad_multiple, getattr(template, 'min_size', 0)
            return max(-(-h // m) * m, low), max(-(-w // m) * m, low)

        h, w, batch = -(-height // s), -(-width // s), s * s
        tile = f.tile_size
        if not tile or (h <= tile and w <= tile):
            ph, pw = padded(h, w)
            return {'train_steps': f.steps_for_area(ph * pw), 'train_shape': (batch, in_ch, ph, pw),
                    'forward_passes': 0, 'forward_shape': None}
        tiles = len(tile_starts(h, tile, f.tile_overlap)) * len(tile_starts(w, tile, f.tile_overlap))
        if f.large_mode == 'shared':
            steps, side, passes = shared_plan(f)
            return {'train_steps': steps, 'train_shape': (batch, in_ch, *padded(min(h, side), min(w, side))),
                    'forward_passes': tiles * passes, 'forward_shape': (batch, in_ch, *padded(tile, tile))}
        ph, pw = padded(tile, tile)
        return {'train_steps': tiles * f.steps_for_area(ph * pw), 'train_shape': (batch, in_ch, ph, pw),
                'forward_passes': 0, 'forward_shape': None}

    def estimate_seconds(self, height, width, channels=3):
        """Seconds that filling an image of this size will take here, from :meth:`plan` and two timed steps
        (one training step and, for the shared large-image path, one forward pass) on random data of the
        planned shapes, each after one untimed warm-up. The weights of the denoiser are not touched."""
        import time
        work, f = self.plan(height, width, channels), self.filler
        gen = torch.Generator(device=self.device).manual_seed(0)
        net, optimizer, scaler = f.fresh_net(self.net, self.device)
        masks = f.mask_stream()

        def timed(fn, shape):
            x = torch.rand(shape, generator=gen, device=self.device)
            if f.precision(self.device)[1]:
                x = x.contiguous(memory_format=torch.channels_last)
            fn(x)  # warm-up: allocation, kernel selection
            t0 = time.perf_counter()
            fn(x)
            if self.device.type == 'cuda':
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        seconds = work['train_steps'] * timed(lambda x: f.step(net, optimizer, x, None, gen, scaler, masks=masks),
                                              work['train_shape'])
        if work['forward_passes']:
            def forward(x):
                with torch.no_grad(), f.autocast_context(self.device):
                    net(x, f.draw(masks, net, x, gen))
            seconds += work['forward_passes'] * timed(forward, work['forward_shape'])
        return seconds

    @property
    def summary(self):
        from basicsr_denoise.mpi.large_image import shared_plan
        f = self.filler
        large = ''
        if f.tile_size and f.large_mode == 'shared':
            steps, side, passes = shared_plan(f)
            large = f'; above {f.tile_size} px: {steps} steps on {side}-px crops, {passes} passes per tile'
        steps = f'{f.iterations} steps'
        if f.by_area is not None:
            steps += f' ({f.steps_for_area(f.by_area["pixels"][1])} from {f.by_area["pixels"][1]} px)'
        return (f"MPI preset {getattr(self, 'preset', None) or 'custom'} ({steps}, beta {f.beta}{large}), "
                f'weights {self.weights}, device {self.device}')


def _where(source):
    return f'{source}: ' if source else ''


class N2SDenoiser(Denoiser):
    """Noise2Score: one score evaluation and the noise family's Tweedie step per image.

    Kim & Ye, "Noise2Score: Tweedie's Approach to Self-Supervised Image Denoising without Clean Images",
    NeurIPS 2021. ``R = net(network_input(y))`` (reflect-padded to ``pad_multiple``, in blended tiles above
    2 MP or of ``tile_size``), then ``xhat = noise.tweedie(y, R)`` at the known level, or at the level
    estimated per image (``blind``; recorded as ``<param>_hat``, e.g. ``sigma_hat`` on the 0-255 scale).

    Args:
        net (nn.Module): The score network; its training mode is restored after each call.
        score (dict): The ``score`` block: ``noise`` (required, e.g. ``{type: Gaussian, sigma: 25}``),
            ``blind`` (False), ``blind_method`` (``tv_grid``; also ``tv_golden``, ``mad``, ``pca``), ``grid``,
            ``refine_iters`` (12), ``tv_eps`` (1e-3), ``clip_output`` (True), ``pad_multiple`` (the
            network's ``size_multiple``), ``tile_size`` (None: 512-px tiles above 2 MP; 0: never),
            ``tile_overlap`` (64).
        device (str | torch.device): Default: ``'auto'``.
        weights (str | None): The checkpoint's path, for reports. Default: None.
        source (str | None): Where ``score`` comes from, for errors. Default: None.
    """

    method = 'n2s'

    def __init__(self, net, score, device='auto', weights=None, source=None):
        from basicsr_denoise.archs.arch_util import DEFAULT_OVERLAP, DEFAULT_TILE
        from basicsr_denoise.noise import build_noise
        from basicsr_denoise.noise.blind import BLIND_METHODS
        sopt = dict(score or {})
        validate(sopt, SCORE_SCHEMA, source, prefix='score.')
        if not sopt.get('noise'):
            raise OptionError(f"{_where(source)}score.noise: required (e.g. {{type: Gaussian, sigma: 25}})")
        self.noise = build_noise(sopt['noise'], key='score.noise', source=source)
        if not getattr(self.noise, 'has_tweedie', False):
            raise OptionError(f"{_where(source)}score.noise.type: {self.noise.name} has no Tweedie formula "
                              "(Noise2Score supports: "
                              f"{', '.join(n for n in NOISE_REGISTRY.keys() if NOISE_REGISTRY.get(n).has_tweedie)})")
        self.blind = bool(sopt.get('blind', False))
        self.blind_method = sopt.get('blind_method') or 'tv_grid'
        if self.blind_method not in BLIND_METHODS:
            raise OptionError(f"{_where(source)}score.blind_method: unknown method '{self.blind_method}' "
                              f"(known: {', '.join(BLIND_METHODS)})")
        self.grid = sopt.get('grid')
        for v in self.grid or []:
            self.noise.with_param(v)  # every grid level must be a valid level (> 0)
        self.refine_iters = sopt.get('refine_iters', 12)
        self.tv_eps = sopt.get('tv_eps', 1e-3)
        self.clip_output = sopt.get('clip_output', True)
        self.tile_size = sopt.get('tile_size')
        self.tile_overlap = sopt.get('tile_overlap', DEFAULT_OVERLAP)
        if (self.tile_size is not None and self.tile_size < 0) or not (
                0 <= self.tile_overlap < (self.tile_size or DEFAULT_TILE)):
            raise OptionError(f'{_where(source)}score.tile_overlap: need 0 <= tile_overlap < tile_size, got '
                              f'tile_size={self.tile_size}, tile_overlap={self.tile_overlap}')
        self.device = resolve_device(device)
        self.net = net.to(self.device)
        self.pad_multiple = sopt.get('pad_multiple') or getattr(bare(net), 'size_multiple', 1)
        self.min_size = getattr(bare(net), 'min_size', 0)
        self.weights = weights

    @property
    def channels(self):
        """Image channels the score network takes (None when it does not say)."""
        return getattr(bare(self.net), 'num_in_ch', None)

    @classmethod
    def from_pretrained(cls, weights=None, network_g=None, score=None, sigma=None, tile=None, device='auto',
                        networks=None):
        """Build from a checkpoint (default: the shipped ``N2S_gauss25_color_ours.pth``).

        Args:
            weights (str | None): Checkpoint path or shipped name. Default: None (the shipped one).
            network_g (dict | None): Explicit architecture, required for files that do not store one.
            score (dict | None): Overrides of the score block. Default: None.
            sigma (float | None): Known Gaussian level (0-255). None estimates it per image (``tv_golden``:
                the authors' TV grid refined by golden-section search). Default: None.
            tile (int | None): ``score.tile_size`` (0: never tile). Default: None (tiles above 2 MP).
            device (str): Default: ``'auto'``.
            networks (dict | None): A memo of loaded networks (see :func:`load_denoiser`). Default: None.

        The score block is the ``n2s`` preset's, updated by the checkpoint's, by ``score``, then by
        ``sigma`` and ``tile``.
        """
        from basicsr_denoise.presets import load_preset
        p = load_preset('n2s')
        default = weights is None
        net, meta, path = _load_network(networks, p['path']['pretrain_network_g'] if default else weights, network_g,
                                        p['network_g'] if default else None)
        block = {**p['score'], **(meta.get('score') or {}), **(score or {})}
        if sigma is None:  # estimated per image, unless the score= block says otherwise
            block['blind'] = (score or {}).get('blind', True)
            if block['blind'] and 'blind_method' not in (score or {}):
                block['blind_method'] = 'tv_golden'
        else:
            if (block.get('noise') or {}).get('type') != 'Gaussian':
                raise OptionError(f"sigma: applies to Gaussian noise; {path} is a {block['noise'].get('type')} "
                                  'score network (set its level through score=)')
            block.update(noise={**block['noise'], 'sigma': sigma}, blind=False)
        if tile is not None:
            if tile < 0:
                raise OptionError(f'tile: must be >= 0 (0: never tile), got {tile}')
            block['tile_size'] = tile
        return cls(net, block, device, weights=path, source=path)

    @torch.no_grad()
    def score(self, inp):
        """``R(inp)`` for ``inp`` ``(B, C, H, W)`` on the network-input scale, padded and tiled as configured."""
        from basicsr_denoise.archs.arch_util import tiled_forward
        return tiled_forward(self.net, inp, self.tile_size, self.tile_overlap, self.pad_multiple, self.min_size)

    @torch.no_grad()
    def process(self, x, name='image', desc=None):
        """``tweedie(x, R(network_input(x)))`` at the known or estimated level; ``x`` ``(B, C, H, W)``, unclipped."""
        from basicsr_denoise.noise.blind import estimate_level
        if self.channels is not None and x.shape[1] != self.channels:
            raise DataError(f'{name}: {x.shape[1]}-channel image, but the Noise2Score network ({self.weights}) '
                            f'expects {self.channels} channel(s); train one for it (options/train/Noise2Score/)')
        net = self.net
        was_training = net.training
        net.eval()
        try:
            if self.blind:
                level, xhat = estimate_level(self.noise, x, self.score, method=self.blind_method, grid=self.grid,
                                             tv_eps=self.tv_eps, refine_iters=self.refine_iters)
                values = [float(v) for v in level]
                record = {f'{self.noise.param_name}_hat': values[0] if len(values) == 1 else values}
            else:
                xhat, record = self.noise.tweedie(x, self.score(self.noise.network_input(x))), {}
        finally:
            net.train(was_training)
        return (xhat.clamp(0.0, 1.0) if self.clip_output else xhat), record

    @property
    def summary(self):
        level = 'estimated per image' if self.blind else f'{self.noise.param_name} {self.noise.param:g}'
        return f'Noise2Score {self.noise.name}, {level}, weights {self.weights}, device {self.device}'


# ------------------------------------------------------------------------------------ the shipped N2S models
#: Noise2Score noise families (``--noise`` / ``noise=``): name -> (noise type, level key).
N2S_FAMILIES = {'gaussian': ('Gaussian', 'sigma'), 'poisson': ('Poisson', 'eta'), 'gamma': ('Gamma', 'k')}
#: A level more than this factor below the lowest or above the highest shipped model's level is warned about.
N2S_LEVEL_SLACK = 1.5
_N2S_TYPES = {t: name for name, (t, _) in N2S_FAMILIES.items()}


def n2s_models():
    """The shipped Noise2Score checkpoints that are present: ``[{'name', 'path', 'family', 'level', 'channels'}]``,
    read from each file's self-description (``score.noise`` and ``network_g.num_in_ch``)."""
    import os.path as osp

    from basicsr_denoise.checkpoint import read_checkpoint
    from basicsr_denoise.weights import registry, resolve_weights, search_dirs
    models = []
    for name in sorted(registry()):
        if not name.startswith('N2S_') or not any(osp.isfile(osp.join(d, name)) for d in search_dirs()):
            continue  # registered but not shipped in this install
        path = resolve_weights(name)  # a damaged file is an error, never skipped
        _, meta = read_checkpoint(path)
        noise = (meta.get('score') or {}).get('noise') or {}
        family = _N2S_TYPES.get(noise.get('type'))
        if family is None:
            continue
        models.append({'name': name, 'path': path, 'family': family, 'level': float(noise[N2S_FAMILIES[family][1]]),
                       'channels': int((meta.get('network_g') or {}).get('num_in_ch', 3))})
    return models


def choose_n2s_model(family, level, channels, models):
    """The model of ``models`` (:func:`n2s_models`) for an image: ``(entry, warning or None)``.

    Of the family's models, those for the image's channels (gray: 1, colour: 3; else the others, a gray image
    then going through a colour network as its replicated channels), and of them the one whose training level is
    nearest ``level`` in ratio (the middle one when ``level`` is None, before a blind estimate). A level more than
    :data:`N2S_LEVEL_SLACK` times outside the models' levels still gets the nearest model, with a warning.

    Raises:
        OptionError: no model of the family at all, or only gray ones for a colour image.
    """
    param = N2S_FAMILIES[family][1]
    same = [m for m in models if m['family'] == family]
    if not same:
        shipped = ', '.join(f"{m['name']} ({m['family']})" for m in models) or 'none'
        raise OptionError(f'noise {family}: no Noise2Score model for it is shipped (shipped: {shipped}); '
                          'train one (options/train/Noise2Score/) and pass --weights')
    fits = [m for m in same if m['channels'] == channels]
    warning = None
    if not fits:
        if channels != 1:
            raise OptionError(f'noise {family}: only gray Noise2Score models are shipped, this image has {channels} '
                              'channels')
        fits = same
        warning = f'no gray {family} model is shipped: the colour one denoises the gray image as three equal channels'
    levels = sorted(m['level'] for m in fits)
    target = levels[(len(levels) - 1) // 2] if level is None else float(level)
    best = min(fits, key=lambda m: (abs(math.log(m['level'] / target)), m['level']))
    if level is not None and not levels[0] / N2S_LEVEL_SLACK <= target <= levels[-1] * N2S_LEVEL_SLACK:
        span = f'{levels[0]:g}' if levels[0] == levels[-1] else f'{levels[0]:g}-{levels[-1]:g}'
        warning = (f"{param} {target:g} is outside the shipped models' levels ({span}): denoised with the nearest, "
                   f"{best['name']}")
    return best, warning


class N2SAutoDenoiser(Denoiser):
    """Noise2Score with the shipped model chosen per image (:func:`choose_n2s_model`): by the image's channels,
    the noise family and the known level, or, when the level is estimated, first with the family's middle model
    and then again with the model nearest the estimate if that is another one.

    Args:
        noise (str): ``'gaussian'``, ``'poisson'`` or ``'gamma'``. Default: ``'gaussian'``.
        level (float | None): The known level (sigma 0-255, eta, k); None estimates it per image. Default: None.
        tile (int | None): ``score.tile_size`` (0: never tile). Default: None (tiles above 2 MP).
        device (str): Default: ``'auto'``.
        models (list | None): The candidates. Default: None (:func:`n2s_models`).
        networks (dict | None): A memo of loaded networks (see :func:`load_denoiser`). Default: None.

    Each image's record names the ``model`` that denoised it, and a ``warning`` when the choice was a stretch.
    """

    method = 'n2s'

    def __init__(self, noise='gaussian', level=None, tile=None, device='auto', models=None, networks=None):
        if noise not in N2S_FAMILIES:
            raise OptionError(f"noise: unknown family {noise!r} (known: {', '.join(N2S_FAMILIES)})")
        param = N2S_FAMILIES[noise][1]
        if level is not None and (isinstance(level, bool) or not isinstance(level, numbers.Real) or not level > 0):
            raise OptionError(f'{param}: must be a number > 0, got {level!r}')
        self.noise, self.level, self.tile, self.param = noise, level, tile, param
        self.device = resolve_device(device)
        self.models = n2s_models() if models is None else list(models)
        choose_n2s_model(noise, level, 3 if any(m['channels'] == 3 for m in self.models) else 1, self.models)
        self._loaded, self._networks = {}, networks
        self.weights = None

    def denoiser_for(self, entry):
        """The :class:`N2SDenoiser` of ``entry`` (one of :attr:`models`), built once."""
        if entry['name'] not in self._loaded:
            kind = N2S_FAMILIES[self.noise][0]
            score = {'noise': {'type': kind, self.param: float(self.level or entry['level'])},
                     'blind': self.level is None}
            self._loaded[entry['name']] = N2SDenoiser.from_pretrained(entry['path'], score=score, tile=self.tile,
                                                                      device=self.device, networks=self._networks)
        return self._loaded[entry['name']]

    def _run(self, entry, x, name, desc):
        y = x.repeat(1, entry['channels'], 1, 1) if x.shape[1] == 1 != entry['channels'] else x
        out, record = self.denoiser_for(entry).process(y, name, desc)
        return (out.mean(1, keepdim=True) if y is not x else out), record

    def process(self, x, name='image', desc=None):
        entry, warning = choose_n2s_model(self.noise, self.level, x.shape[1], self.models)
        out, record = self._run(entry, x, name, desc)
        estimate = record.get(f'{self.param}_hat')
        if self.level is None and isinstance(estimate, float):  # blind: the model nearest the estimate
            nearest, stretch = choose_n2s_model(self.noise, estimate, x.shape[1], self.models)
            warning = '; '.join(w for w in dict.fromkeys((warning, stretch)) if w) or None
            if nearest['name'] != entry['name']:
                entry = nearest
                out, record = self._run(entry, x, name, desc)
        record = {'model': entry['name'], **record}
        if warning:
            record['warning'] = f'{name}: {warning}'
        return out, record

    @property
    def summary(self):
        level = 'estimated per image' if self.level is None else f'{self.param} {self.level:g}'
        paths = ', '.join(m['path'] for m in self.models if m['family'] == self.noise)
        return f'Noise2Score {self.noise}, {level}, the shipped model chosen per image ({paths}), device {self.device}'


# ------------------------------------------------------------------------------------------- public API
def load_denoiser(method='mpi', preset=DEFAULT_PRESET, weights=None, device='auto', seed=0, sigma=None, network_g=None,
                  iterations=None, beta=None, tile=None, progress=False, noise=None, level=None, networks=None):
    """A denoiser to build once and call on many images.

    Example:
        >>> import numpy as np, basicsr_denoise as bd
        >>> den = bd.load_denoiser('n2s', sigma=25, device='cpu')
        >>> noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        >>> den.denoise_image(noisy).dtype
        dtype('uint8')

    Args:
        method (str): ``'mpi'`` (zero-shot) or ``'n2s'`` (Noise2Score). Default: ``'mpi'``.
        preset (str | None): MPI preset (``quick``, ``gauss``, ``fast``, ``real``, ``real-fast``, ``sidd``,
            ``sidd-fast``); ignored for n2s. Default: ``'quick'``.
        weights (str | None): Checkpoint path or shipped name. Default: None (the preset's or the
            shipped Noise2Score one).
        device (str): ``auto`` (cuda, mps, cpu), ``cpu``, ``cuda``, ``cuda:N``, ``mps``. Default: ``'auto'``.
        seed (int): MPI mask seed. Default: 0.
        sigma (float | None): n2s: known Gaussian sigma (0-255); None estimates it. Default: None.
        network_g (dict | None): Architecture of a checkpoint that does not store one. Default: None.
        iterations, beta (int, float | None): MPI: override the preset's steps and ensemble weight.
        tile (int | None): n2s: tile side of the score pass (0: never). Default: None (above 2 MP).
        progress (bool): MPI: a progress bar on a terminal. Default: False.
        noise (str | None): n2s: ``'gaussian'``, ``'poisson'`` or ``'gamma'``. Default: None (gaussian).
        level (float | None): n2s: the known level of ``noise`` (sigma 0-255, eta, k; ``sigma=`` is the same for
            gaussian); None estimates it per image. Default: None.
        networks (dict | None): A memo of loaded networks: denoisers built with the same dict share a network
            read from the same weights (e.g. the presets of one MPI checkpoint), so a long-running caller (the
            web app) reads each file once. Default: None (read the weights).

    Without ``weights``, n2s chooses a shipped model per image (:class:`N2SAutoDenoiser`): by the image's
    channels, the family and the level.

    Returns:
        Denoiser: an :class:`MPIDenoiser`, :class:`N2SAutoDenoiser` or :class:`N2SDenoiser`.
    """
    if method == 'mpi':
        for name, value in (('sigma', sigma), ('tile', tile), ('noise', noise), ('level', level)):
            if value is not None:
                raise OptionError(f'{name}: applies to method n2s only (MPI needs no noise level)')
        fill = {'progress': progress}
        fill.update({k: v for k, v in (('iterations', iterations), ('beta', beta)) if v is not None})
        return MPIDenoiser.from_pretrained(preset, weights, network_g, fill, device, seed, networks)
    if method == 'n2s':
        family = 'gaussian' if noise is None else noise
        if family not in N2S_FAMILIES:
            raise OptionError(f"noise: unknown family {noise!r} (known: {', '.join(N2S_FAMILIES)})")
        if sigma is not None and family != 'gaussian':
            raise OptionError(f'sigma: applies to noise gaussian; noise {family} takes its '
                              f'{N2S_FAMILIES[family][1]} as level=')
        if sigma is not None and level is not None and sigma != level:
            raise OptionError(f'sigma {sigma:g} and level {level:g}: give one of them')
        level = sigma if level is None else level
        if weights is None and network_g is None:
            return N2SAutoDenoiser(family, level, tile, device, networks=networks)
        if family == 'gaussian':
            return N2SDenoiser.from_pretrained(weights, network_g, sigma=level, tile=tile, device=device,
                                               networks=networks)
        kind, param = N2S_FAMILIES[family]
        score = {'blind': True} if level is None else {'noise': {'type': kind, param: float(level)}, 'blind': False}
        return N2SDenoiser.from_pretrained(weights, network_g, score=score, tile=tile, device=device,
                                           networks=networks)
    raise OptionError(f"method: unknown method '{method}' (known: mpi, n2s)")


def denoise(image, method='mpi', preset=DEFAULT_PRESET, weights=None, device='auto', seed=0, sigma=None, name='image',
            **options):
    """Denoise one image: NumPy array or tensor in, the same type, dtype, layout and range out.

    Example:
        >>> import numpy as np, basicsr_denoise as bd
        >>> noisy = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        >>> out = bd.denoise(noisy, method='mpi', iterations=2, device='cpu')
        >>> out.shape, out.dtype
        ((48, 64, 3), dtype('uint8'))

    Args:
        image (ndarray | Tensor): ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``; uint8, uint16 or float in
            [0, 1]; gray or RGB (an alpha channel is passed through).
        method, preset, weights, device, seed, sigma: As in :func:`load_denoiser`.
        name (str): The image's name; MPI seeds its masks with ``image_seed(seed, name)``, as ``test.py``
            and the ``denoise`` command do with the file stem. Default: ``'image'``.
        **options: ``network_g``, ``iterations``, ``beta``, ``tile``, ``progress``, ``noise``, ``level``
            (:func:`load_denoiser`).

    Returns:
        The denoised image, like ``image``. Building a denoiser reads the weights: for many images, build
        one with :func:`load_denoiser` and call its ``denoise_image``.
    """
    den = load_denoiser(method, preset, weights, device, seed, sigma, **options)
    return den.denoise_image(image, name=name)


__all__ = ['Denoiser', 'MPIDenoiser', 'N2SAutoDenoiser', 'N2SDenoiser', 'load_denoiser', 'load_network', 'denoise',
           'image_to_tensor', 'n2s_models', 'choose_n2s_model', 'SCORE_SCHEMA']
