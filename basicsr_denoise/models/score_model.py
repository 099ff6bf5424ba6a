"""Noise2Score: AR-DAE score training on noisy images, Tweedie's step at test time (optionally blind)."""

from collections import OrderedDict

from basicsr_denoise.archs import build_network
from basicsr_denoise.archs.arch_util import padded_forward
from basicsr_denoise.inference import SCORE_SCHEMA, N2SDenoiser
from basicsr_denoise.losses import build_loss
from basicsr_denoise.models.base_model import BaseModel, finite_or_raise
from basicsr_denoise.utils.dist import bare
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.options import Block
from basicsr_denoise.utils.registry import LOSS_REGISTRY, MODEL_REGISTRY, accepted_kwargs



def _delegated(name):
    """A model attribute that reads and writes the denoiser's attribute ``name``."""
    return property(lambda self: getattr(self.denoiser, name), lambda self, value: setattr(self.denoiser, name, value))


@MODEL_REGISTRY.register()
class ScoreModel(BaseModel):
    """Noise2Score: learn the score of the noisy images, denoise with Tweedie's formula.

    Kim & Ye, "Noise2Score: Tweedie's Approach to Self-Supervised Image Denoising without Clean
    Images", NeurIPS 2021. The model only wires three composable pieces together:

    * the noise family (``score.noise``, a ``NOISE_REGISTRY`` block such as ``{type: Gaussian, sigma: 25}``):
      what the network sees (``network_input``: ``y``, or ``y/eta`` for Poisson), the Tweedie step
      (``tweedie``), the AR-DAE defaults (``ardae_scale``) and the blind grid (``grid``);
    * the AR-DAE loss (``train.score_opt``, default ``{type: ARDAELoss}``): ``perturb`` draws
      ``u ~ N(0, I)`` and ``y_bar = y_in + sigma_a*u``, the loss is ``mean((sigma_a*R(y_bar) + u)^2)``;
      ``sigma_a`` anneals over the global iterations (``total_iter`` is taken from ``train.total_iter``
      unless the block sets it); ``sigma_max``/``sigma_min`` default to the family's ``ardae_scale()``
      (0.05 -> 0.001 for Gaussian and Gamma, 1.0 -> 0.5 on the ``y/eta`` scale for Poisson);
    * the blind estimator (:func:`basicsr_denoise.noise.blind.estimate_level`).

    Training sees the noisy images (``lq``) only: a ``gt`` in the batch is kept for validation
    metrics and never read by :meth:`optimize_parameters`. The network is not told ``sigma_a``.
    Testing: ``R = net(network_input(y))`` (reflect-padded to ``pad_multiple``, cropped back), then
    ``xhat = noise.tweedie(y, R)``, clipped to [0, 1] when ``clip_output``. No noise is injected.

    ``score`` block:
        noise (dict): The noise family and its (known) level. Required.
        blind (bool): Estimate the level of every image instead of using ``noise``'s; the estimate
            goes to ``metrics.json`` as ``<param>_hat`` (``sigma_hat`` on the 0-255 scale, ``eta_hat``,
            ``k_hat``). Default: False.
        blind_method (str): ``tv_grid`` (the authors' TV search over the family's grid),
            ``tv_golden`` (grid, then a golden-section refinement of the same criterion), ``mad`` or
            ``pca`` (Gaussian only: estimated from the noisy image itself). Default: ``tv_grid``.
        grid (list[float]): Levels of the TV search. Default: the family's ``grid()``.
        refine_iters (int): Golden-section steps of ``tv_golden``. Default: 12.
        tv_eps (float): Charbonnier eps of the TV score. Default: 1e-3.
        clip_output (bool): Clip ``xhat`` to [0, 1]. Default: True.
        pad_multiple (int): Reflect-pad the network input to a multiple of it. Default: the
            network's ``size_multiple`` attribute (32 for ``N2NUNet``), else 1.
        tile_size (int): Score test images in tiles of this side with blended overlaps (bounded
            memory); 0 never tiles. Default: 512-px tiles for images above 2 MP, else none.
        tile_overlap (int): Overlap of neighbouring tiles. Default: 64.

    Args:
        opt (dict): Full options; uses ``network_g``, ``path``, ``score``, ``train.optim_g``,
            ``train.scheduler``, ``train.score_opt``, ``train.total_iter``, ``train.ema_decay``.

    Note:
        The authors' code restarts the ``sigma_a`` ramp every epoch; the default here is the intended
        global schedule (``train.score_opt.anneal: per_epoch`` with ``iters_per_epoch`` restores theirs).
        The perturbation ``u`` comes from the global torch RNG, whose state training states save.
    """

    option_schema = {'score': SCORE_SCHEMA, 'train': {'score_opt': Block(LOSS_REGISTRY)}}

    def __init__(self, opt):
        super().__init__(opt)
        source = opt.get('opt_path')
        self.net_g = self.model_to_device(build_network(opt['network_g'], source=source))
        # the test-time pieces (noise family, blind estimator, padding and tiles) live in the denoiser
        self.denoiser = N2SDenoiser(bare(self.net_g), opt.get('score'), self.device, source=source)
        self.noise = self.denoiser.noise
        self.pad_multiple, self.min_size = self.denoiser.pad_multiple, self.denoiser.min_size
        self.record = {}
        self.load_pretrained()
        if self.is_train:
            self.net_g.train()
            self.setup_ema()
            self.cri_score = self.build_score_loss(opt).to(self.device)
            self.setup_precision()
            self.setup_optimizers()
            self.setup_schedulers()

    #: Test-time settings, kept by :attr:`denoiser` (settable here, e.g. ``model.tile_size = 0``).
    blind = _delegated('blind')
    blind_method = _delegated('blind_method')
    clip_output = _delegated('clip_output')
    tile_size = _delegated('tile_size')
    tile_overlap = _delegated('tile_overlap')

    def checkpoint_meta(self):
        score = {k: v for k, v in (self.opt.get('score') or {}).items() if k not in ('tile_size', 'tile_overlap')}
        return {**super().checkpoint_meta(), 'score': score}

    def build_score_loss(self, opt):
        """The AR-DAE loss from ``train.score_opt``, with the family's ``(sigma_max, sigma_min)`` and
        ``train.total_iter`` filled in where the block leaves them out."""
        source = opt.get('opt_path')
        block = dict(opt['train'].get('score_opt') or {'type': 'ARDAELoss'})
        cls = LOSS_REGISTRY.get(block.get('type'), key='train.score_opt.type', source=source)
        names = accepted_kwargs(cls) or []
        s_max, s_min = self.noise.ardae_scale()
        for k, v in (('sigma_max', s_max), ('sigma_min', s_min)):
            if k in names:
                block.setdefault(k, v)
        extra = {}
        if 'total_iter' in names and 'total_iter' not in block:
            extra['total_iter'] = opt['train'].get('total_iter')
        loss = build_loss(block, key='train.score_opt', source=source, **extra)
        if not callable(getattr(loss, 'perturb', None)):
            raise OptionError(f"train.score_opt.type: {block.get('type')} has no perturb(y, iteration) method "
                              '(Noise2Score needs an AR-DAE-style loss, e.g. ARDAELoss)')
        return loss

    # ------------------------------------------------------------------ pieces
    def feed_data(self, data):
        """``data['lq']``: noisy ``(B, C, H, W)``, RGB or gray, float32, unclipped; ``data['gt']`` (optional)
        is kept for validation metrics only and never used in training."""
        self.lq = finite_or_raise(data['lq'].to(self.device), str(data.get('lq_path', ['lq'])[0]))
        self.gt = data['gt'].to(self.device) if 'gt' in data else None

    def optimize_parameters(self, current_iter):
        """One AR-DAE step on ``lq`` at the global 1-based iteration ``current_iter``."""
        y_in = self.noise.network_input(self.lq)
        y_bar, u, sigma_a = self.cri_score.perturb(y_in, current_iter)
        self.optimizer_g.zero_grad(set_to_none=True)
        with self.train_autocast():
            pred = padded_forward(self.net_g, self.to_train_format(y_bar), self.pad_multiple, self.min_size)
        l_score = self.cri_score(pred, u, sigma_a)
        l_score.backward()
        self.clip_gradients(self.net_g.parameters())
        self.optimizer_g.step()
        self.model_ema()
        self.log_dict = self.reduce_loss_dict(OrderedDict(l_score=l_score.detach(), sigma_a=sigma_a))

    def test(self):
        """``self.output = tweedie(lq, R(network_input(lq)))`` at the known or the estimated level
        (:class:`~basicsr_denoise.inference.N2SDenoiser`, with ``net_g_ema`` when there is one)."""
        self.denoiser.net = self.net_g_ema if self.net_g_ema is not None else bare(self.net_g)  # no DDP
        self.output, self.record = self.denoiser.process(self.lq)

    def extra_record(self):
        """``{'<param>_hat': level}`` (e.g. ``sigma_hat`` on the 0-255 scale) in blind mode, else ``{}``."""
        return dict(self.record)


__all__ = ['ScoreModel', 'SCORE_SCHEMA']
