"""Meta-learning MPI's pre-trained weights for zero-shot filling (not in the paper; issue #10).

Masked pre-training (:class:`MaskedPretrainModel`) trains the network to fill clean images, but what a user
gets is the network's output *after* the zero-shot fine-tuning on one noisy image. Issue #10 found the two
unrelated: of several checkpoints, the best clean filler is the worst zero-shot denoiser. This model trains the
starting point of the fine-tuning for the fine-tuning's result instead, by first-order meta-learning (FOMAML;
Finn et al., ICML 2017, first-order variant; Nichol et al., 2018).
"""

from collections import OrderedDict

import torch

from basicsr_denoise.models.masked_pretrain_model import INPUT_NOISE_SCHEMA, PRETRAIN_SCHEMA, MaskedPretrainModel
from basicsr_denoise.mpi.filling import FILL_SCHEMA, build_filler, masked_fill_loss
from basicsr_denoise.utils import dist as dist_util
from basicsr_denoise.utils.dist import bare
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import MODEL_REGISTRY

META_SCHEMA = {'fill': FILL_SCHEMA, 'outer_steps': int}


@MODEL_REGISTRY.register()
class MetaFillPretrainModel(MaskedPretrainModel):
    """First-order meta-learning of the masked network's weights for MPI's zero-shot filling.

    One training iteration, for each clean crop ``c`` of the batch:

    1. a noisy copy ``x`` from ``train.input_noise`` (required; its ``clean_prob`` should be 0);
    2. the zero-shot fill of ``x`` exactly as ``train.meta.fill`` (an ``IterativeFiller`` block, e.g. the
       preset ``quick``'s schedule) runs it: a copy of the weights, a fresh Adam, ``T`` steps on
       ``mean(((1-M_t) * (y_t - x))^2)``, the masks from the global RNG;
    3. during the last ``train.meta.outer_steps`` steps, the *meta* loss of each step's prediction ``y_t``
       (made before the step, as the running ensemble takes it) against the clean crop at the hidden pixels,
       ``mean(((1-M_t) * (y_t - c))^2)``, is differentiated with respect to the adapted copy's weights.

    The sum of those gradients (first-order: the fill's own dependence on the starting weights is dropped),
    averaged over steps and crops, is the gradient of the pre-trained weights for ``train.optim_g``. The
    ensemble the user gets averages exactly those predictions, over about the last ``1 / (p (1 - beta))``
    steps (:meth:`IterativeFiller.ensemble_memory`), the default of ``outer_steps``.

    Everything else (EMA, gradient clipping, bf16 of the outer network, validation, carried training states)
    is :class:`MaskedPretrainModel`'s. The cost of an iteration is about ``T`` fill steps per crop.

    Args:
        opt (dict): Full options.
    """

    option_schema = {'train': {'mask': PRETRAIN_SCHEMA, 'input_noise': INPUT_NOISE_SCHEMA, 'meta': META_SCHEMA},
                     'val': {'fill': FILL_SCHEMA}}

    def __init__(self, opt):
        super().__init__(opt)
        if not self.is_train:
            return
        source = opt.get('opt_path')
        where = f"{source + ': ' if source else ''}train"
        if self.input_noise is None:
            raise OptionError(f'{where}.input_noise: required by MetaFillPretrainModel (the noise of the crops '
                              f'it fills, e.g. {{clean_prob: 0, noises: [{{type: Gaussian, sigma: [5, 55]}}]}})')
        meta = opt['train'].get('meta') or {}
        self.filler = build_filler(meta.get('fill'), bare(self.net_g).mask_mode, source=source)
        self.filler.show_progress = False
        if self.filler.final_passes or self.filler.shuffle != 1 or self.filler.by_area is not None:
            raise OptionError(f'{where}.meta.fill: final_passes, by_area and shuffle are not meta-learned; '
                              'leave them unset')
        steps = self.filler.iterations
        self.outer_steps = meta.get('outer_steps')
        if self.outer_steps is None:  # unset or ~
            self.outer_steps = self.filler.ensemble_memory()
        if isinstance(self.outer_steps, bool) or not isinstance(self.outer_steps, int) \
                or not 1 <= self.outer_steps <= steps:
            raise OptionError(f'{where}.meta.outer_steps: must be an integer in [1, {steps}] '
                              f'(meta.fill.iterations), got {self.outer_steps!r}')

    def _adapt(self, template, x, clean, grads):
        """Fill ``x`` from a copy of ``template``; add the meta gradients of the last steps to ``grads``.

        Returns:
            tuple[float, float]: The last fill loss and the mean meta loss.
        """
        f = self.filler
        net, optimizer, scaler = f._fresh_net(template, x.device)
        if f.precision(x.device)[1]:
            x, clean = (t.contiguous(memory_format=torch.channels_last) for t in (x, clean))
        params = list(net.parameters())
        meta_sum = []

        def meta_gradient(pred, xk, keep):  # at the adapted weights, before the step's own update
            ck = torch.cat([clean] * (xk.shape[0] // clean.shape[0]))
            meta = masked_fill_loss(pred.float(), ck, keep)
            for g, d in zip(grads, torch.autograd.grad(meta, params, retain_graph=True)):
                g.add_(d)
            meta_sum.append(float(meta.detach()))

        masks = f.mask_stream()
        first = f.iterations - self.outer_steps
        for t in range(f.iterations):  # masks from the global RNG (generator None): saved in training states
            loss = f.step(net, optimizer, x, None, None, scaler, t=t, masks=masks,
                          before_backward=meta_gradient if t >= first else None)
        return float(loss.detach()), sum(meta_sum) / self.outer_steps

    def optimize_parameters(self, current_iter):
        template = bare(self.net_g)
        params = [p for p in template.parameters() if p.requires_grad]
        grads = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        noisy = self.input_noise(self.gt)  # the global RNG, image by image
        fill_loss = meta_loss = 0.0
        n = self.gt.shape[0]
        for b in range(n):
            lf, lm = self._adapt(template, noisy[b:b + 1], self.gt[b:b + 1], grads)
            fill_loss, meta_loss = fill_loss + lf / n, meta_loss + lm / n
        _, world = dist_util.get_dist_info()
        self.optimizer_g.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            g.div_(n * self.outer_steps)
            if world > 1:
                torch.distributed.all_reduce(g)
                g.div_(world)
            p.grad = g
        self.clip_gradients(params)
        self.optimizer_g.step()
        self.model_ema()
        # meta loss as a PSNR (dB) of the hidden pixels against the clean crop, the higher the better
        hidden = sum(self.filler.sampler.ratio) / 200.0
        self.log_dict = self.reduce_loss_dict(OrderedDict(
            l_fill=fill_loss, l_meta=meta_loss, meta_psnr=-10.0 * torch.log10(torch.tensor(meta_loss / hidden))))
