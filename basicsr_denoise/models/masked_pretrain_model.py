"""MPI masked pre-training (part 2): learn to fill randomly hidden pixels of clean natural images."""

import os
from collections import OrderedDict

import torch

from basicsr_denoise.archs import build_network
from basicsr_denoise.losses import build_loss
from basicsr_denoise.models.base_model import BaseModel
from basicsr_denoise.inference import MPIDenoiser
from basicsr_denoise.mpi.filling import FILL_SCHEMA, image_seed
from basicsr_denoise.mpi.masking import MaskSampler
from basicsr_denoise.utils.dist import bare
from basicsr_denoise.utils.registry import MODEL_REGISTRY

PRETRAIN_SCHEMA = {'mask_ratio': list, 'patch_size': int}


@MODEL_REGISTRY.register()
class MaskedPretrainModel(BaseModel):
    """Masked pre-training of MPI's masked network on clean images.

    Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024.
    Each iteration draws a keep-mask per image (hidden fraction from
    ``train.mask.mask_ratio``, mode from ``network_g.mask_mode``), predicts the image
    from its kept pixels and minimises ``train.pixel_opt`` on the hidden pixels only
    (default: the authors' per-image PSNR loss, ``MaskedPSNRLoss``).
    Authors' recipe (the defaults of ``options/train/MPI/pretrain_MPI_syn_imagenet.yml``):
    AdamW 2e-3, betas (0.9, 0.9), cosine to 1e-5, gradient-norm clipping 0.01.

    Validation reports the masked-reconstruction PSNR of held-out clean images
    (``datasets.val*`` with ``gt`` only) and, when a dataset yields ``lq`` too, a short
    zero-shot filling check (``val.fill`` block, as :class:`IterativeFillModel`'s ``fill``).

    Args:
        opt (dict): Full options.
    """

    option_schema = {'train': {'mask': PRETRAIN_SCHEMA}, 'val': {'fill': FILL_SCHEMA}}

    def __init__(self, opt):
        super().__init__(opt)
        self.net_g = self.model_to_device(build_network(opt['network_g'], source=opt.get('opt_path')))
        self.load_pretrained()
        net = bare(self.net_g)
        mask_opt = (opt.get('train') or {}).get('mask') or {}
        ratio = mask_opt.get('mask_ratio', [30, 30])
        self.sampler = MaskSampler(ratio=tuple(ratio), mode=net.mask_mode, patch_size=mask_opt.get('patch_size', 1))
        if self.is_train:
            self.net_g.train()
            self.setup_ema()
            pix = opt['train'].get('pixel_opt') or {'type': 'MaskedPSNRLoss'}
            self.cri_pix = build_loss(pix, key='train.pixel_opt', source=opt.get('opt_path')).to(self.device)
            self.setup_precision()
            self.setup_optimizers()
            self.setup_schedulers()

    def checkpoint_meta(self):
        """The architecture, and the pre-training's hidden ratio as the default of zero-shot filling."""
        return {**super().checkpoint_meta(), 'fill': {'mask_ratio': list(self.sampler.ratio)}}

    def feed_data(self, data):
        """``data['gt']``: clean ``(B, C, H, W)``, RGB, float32 in [0, 1]; ``lq`` (noisy) optional for validation."""
        self.gt = data['gt'].to(self.device)
        self.lq = data['lq'].to(self.device) if 'lq' in data else None
        self.name = str(data.get('lq_path', data.get('gt_path', ['image']))[0])

    def _masked_loss(self, pred, keep):
        return self.cri_pix(pred, self.gt, keep.expand_as(self.gt))

    def optimize_parameters(self, current_iter):
        # masks are drawn per image from the global torch RNG (its state is saved in training states)
        keep, _ = self.sampler.sample(self.gt.shape, None, device=self.device)
        self.optimizer_g.zero_grad(set_to_none=True)
        with self.train_autocast():
            pred = self.net_g(self.to_train_format(self.gt), self.to_train_format(keep))
        pred = pred.float()
        l_pix = self._masked_loss(pred, keep)
        l_pix.backward()
        self.clip_gradients(self.net_g.parameters())
        self.optimizer_g.step()
        self.model_ema()
        self.log_dict = self.reduce_loss_dict(OrderedDict(l_pix=l_pix.detach()))

    def test(self):
        """Masked reconstruction of ``gt`` (or zero-shot filling of ``lq`` when the batch has one)."""
        net = self.net_g_ema if self.net_g_ema is not None else bare(self.net_g)
        name = os.path.splitext(os.path.basename(self.name))[0]
        if self.lq is not None:
            fill = dict((self.opt.get('val') or {}).get('fill') or {'iterations': 20})
            fill.setdefault('progress', False)
            self.output, _ = MPIDenoiser(net, fill, self.device, source=self.opt.get('opt_path')).process(self.lq, name)
            return
        gen = torch.Generator(device=self.device).manual_seed(image_seed(0, name))
        with torch.no_grad():
            keep, _ = self.sampler.sample(self.gt.shape, gen, device=self.device)
            pred = net(self.gt, keep)
            keep = keep.expand_as(self.gt)
            # kept pixels are copied, so the PSNR measures only the filled-in (hidden) pixels' errors
            self.output = pred * (1 - keep) + self.gt * keep
            self.lq = self.gt * keep

    def get_current_visuals(self):
        return OrderedDict(lq=self.lq.detach().cpu(), result=self.output.detach().cpu(), gt=self.gt.detach().cpu())
