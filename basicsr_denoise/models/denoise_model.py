"""Supervised denoising on paired data (the BasicSR ``SRModel`` pattern, scale 1)."""

from collections import OrderedDict

import torch

from basicsr_denoise.archs import build_network
from basicsr_denoise.losses import build_loss
from basicsr_denoise.models.base_model import BaseModel
from basicsr_denoise.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class DenoiseModel(BaseModel):
    """Train ``network_g`` to map ``lq`` to ``gt`` with ``train.pixel_opt``.

    Useful as a supervised baseline (e.g. on real noisy/clean pairs) and as the
    smallest model exercising the whole training framework.

    Args:
        opt (dict): Full options; uses ``network_g``, ``path``, ``train.optim_g``,
            ``train.scheduler``, ``train.pixel_opt``, ``train.ema_decay``.
    """

    def __init__(self, opt):
        super().__init__(opt)
        self.net_g = self.model_to_device(build_network(opt['network_g'], source=opt.get('opt_path')))
        self.load_pretrained()
        if self.is_train:
            self.net_g.train()
            self.setup_ema()
            self.cri_pix = build_loss(opt['train']['pixel_opt'], key='train.pixel_opt',
                                      source=opt.get('opt_path')).to(self.device)
            self.setup_optimizers()
            self.setup_schedulers()

    def feed_data(self, data):
        """``data['lq']``/``data['gt']``: ``(B, C, H, W)``, RGB, float32 in [0, 1]."""
        self.lq = data['lq'].to(self.device)
        self.gt = data['gt'].to(self.device) if 'gt' in data else None

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad(set_to_none=True)
        self.output = self.net_g(self.lq)
        l_pix = self.cri_pix(self.output, self.gt)
        l_pix.backward()
        self.clip_gradients(self.net_g.parameters())
        self.optimizer_g.step()
        self.model_ema()
        self.log_dict = self.reduce_loss_dict(OrderedDict(l_pix=l_pix.detach()))

    @torch.no_grad()
    def test(self):
        net = self.net_g_ema if self.net_g_ema is not None else self.net_g
        was_training = net.training
        net.eval()
        self.output = net(self.lq)
        net.train(was_training)
