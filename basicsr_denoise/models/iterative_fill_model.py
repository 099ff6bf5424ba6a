"""MPI zero-shot denoising as a model: ``python basicsr_denoise/test.py -opt options/test/MPI/...``."""

import os

from basicsr_denoise.archs import build_network
from basicsr_denoise.inference import MPIDenoiser
from basicsr_denoise.models.base_model import BaseModel, finite_or_raise
from basicsr_denoise.mpi.filling import FILL_SCHEMA
from basicsr_denoise.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class IterativeFillModel(BaseModel):
    """MPI zero-shot iterative filling of each test image.

    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.
    ``network_g`` is a ``MaskedNet``; ``path.pretrain_network_g`` its pre-trained weights
    (random initialisation when unset). Each image is denoised by
    :class:`~basicsr_denoise.inference.MPIDenoiser` (a fresh copy of the weights and a fresh Adam per
    image); the ``fill`` block is :class:`~basicsr_denoise.mpi.fill_config.FillConfig`'s (every key, its
    default and range: ``docs/configuration.md``).

    Args:
        opt (dict): Full options.
    """

    option_schema = {'fill': FILL_SCHEMA}

    def __init__(self, opt):
        super().__init__(opt)
        self.net_g = build_network(opt['network_g'], source=opt.get('opt_path')).to(self.device)
        self.load_pretrained()
        self.denoiser = MPIDenoiser(self.net_g, opt.get('fill'), self.device,
                                    weights=opt['path'].get('pretrain_network_g'), source=opt.get('opt_path'))

    def checkpoint_meta(self):
        return {**super().checkpoint_meta(), 'fill': dict(self.opt.get('fill') or {})}

    def feed_data(self, data):
        """``data['lq']``: ``(1, C, H, W)`` noisy, float32 (unclipped); ``data['gt']`` optional."""
        path = data.get('lq_path', ['image'])[0]
        self.name = str(path)
        self.lq = finite_or_raise(data['lq'].to(self.device), self.name)
        self.gt = data['gt'].to(self.device) if 'gt' in data else None

    def test(self):
        name = os.path.splitext(os.path.basename(self.name))[0]
        self.output, _ = self.denoiser.process(self.lq, name)
