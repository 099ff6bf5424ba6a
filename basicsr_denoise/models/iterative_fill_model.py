"""MPI zero-shot denoising as a model: ``python basicsr_denoise/test.py -opt options/test/MPI/...``."""

import os
import zlib

import torch

from basicsr_denoise.archs import build_network
from basicsr_denoise.models.base_model import BaseModel, finite_or_raise
from basicsr_denoise.mpi.filling import IterativeFiller
from basicsr_denoise.mpi.masking import MaskSampler
from basicsr_denoise.utils.dist import bare
from basicsr_denoise.utils.registry import MODEL_REGISTRY

FILL_SCHEMA = {
    'iterations': int, 'lr': float, 'beta': float, 'mask_ratio': list, 'patch_size': int, 'shuffle': int,
    'bn_mode': str, 'tile_size': int, 'tile_overlap': int, 'pad_multiple': int, 'seed': int, 'autocast': str,
    'channels_last': bool, 'progress': bool
}


def build_filler(fill_opt, mask_mode):
    """An :class:`IterativeFiller` from a ``fill`` option block and the network's mask mode."""
    f = dict(fill_opt or {})
    ratio = f.get('mask_ratio', [30, 30])
    ratio = (ratio, ratio) if isinstance(ratio, (int, float)) else tuple(ratio)
    sampler = MaskSampler(ratio=ratio, mode=mask_mode, patch_size=f.get('patch_size', 1))
    return IterativeFiller(sampler, iterations=f.get('iterations', 200), lr=f.get('lr', 2e-3),
                           beta=f.get('beta', 0.9), shuffle=f.get('shuffle', 1), bn_mode=f.get('bn_mode', 'train'),
                           tile_size=f.get('tile_size'), tile_overlap=f.get('tile_overlap', 64),
                           pad_multiple=f.get('pad_multiple', 32), autocast=f.get('autocast'),
                           channels_last=f.get('channels_last', False), show_progress=f.get('progress', True))


def image_seed(seed, name):
    """Per-image mask seed: ``seed`` mixed with the CRC32 of the image name (independent of order)."""
    return (int(seed) * 1000003 + zlib.crc32(name.encode())) % (2**63)


@MODEL_REGISTRY.register()
class IterativeFillModel(BaseModel):
    """MPI zero-shot iterative filling of each test image.

    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.
    ``network_g`` is a ``MaskedNet``; ``path.pretrain_network_g`` its pre-trained weights
    (random initialisation when unset). Every image gets a fresh copy of the weights
    and a fresh Adam; options in the ``fill`` block (see :func:`build_filler`):
    ``iterations``, ``lr``, ``beta``, ``mask_ratio`` ([a, b] hidden %), ``patch_size``,
    ``shuffle``, ``bn_mode``, ``tile_size``, ``tile_overlap``, ``pad_multiple``, ``seed``,
    ``autocast``, ``channels_last``, ``progress``.

    Args:
        opt (dict): Full options.
    """

    option_schema = {'fill': FILL_SCHEMA}

    def __init__(self, opt):
        super().__init__(opt)
        self.net_g = build_network(opt['network_g'], source=opt.get('opt_path')).to(self.device)
        self.load_pretrained()
        fill = opt.get('fill') or {}
        self.filler = build_filler(fill, getattr(bare(self.net_g), 'mask_mode', 'multchannel'))
        self.seed = fill.get('seed', 0)

    def feed_data(self, data):
        """``data['lq']``: ``(1, C, H, W)`` noisy, float32 (unclipped); ``data['gt']`` optional."""
        path = data.get('lq_path', ['image'])[0]
        self.name = str(path)
        self.lq = finite_or_raise(data['lq'].to(self.device), self.name)
        self.gt = data['gt'].to(self.device) if 'gt' in data else None

    def test(self):
        name = os.path.splitext(os.path.basename(self.name))[0]
        gen = torch.Generator(device=self.device).manual_seed(image_seed(self.seed, name))
        self.output = self.filler(self.net_g, self.lq, gen, desc=name)
