"""The model base class: devices, DDP, optimisers, schedules, EMA, checkpoints, validation.

Method-specific logic (masking, filling, score steps) lives in composable pieces
(``basicsr_denoise.mpi``, ``basicsr_denoise.noise``, ``basicsr_denoise.losses``); model
classes only wire them to the training and test loops.
"""

import copy
import os
import time
from collections import OrderedDict

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from basicsr_denoise.checkpoint import load_weights, plain_data
from basicsr_denoise.utils.atomic import atomic_save
from basicsr_denoise.utils.dist import bare, get_dist_info, reduce_mean, resolve_device
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.logger import get_root_logger, progress
from basicsr_denoise.utils.misc import get_rng_state, set_rng_state


#: ``train.autocast`` values and their compute dtype (None: full float32).
TRAIN_AUTOCAST = {'fp32': None, 'bf16': torch.bfloat16}


def build_optimizer(params, opt, source=None):
    """An Adam / AdamW / SGD optimiser from ``train.optim_g`` (``{type: Adam, lr: 2e-4, ...}``)."""
    opt = dict(opt)
    name = opt.pop('type')
    if name not in ('Adam', 'AdamW', 'SGD'):
        raise OptionError(f"train.optim_g.type: unknown optimizer '{name}'; known: Adam, AdamW, SGD")
    if 'betas' in opt:
        opt['betas'] = tuple(opt['betas'])
    return getattr(torch.optim, name)(params, **opt)


def build_scheduler(optimizer, opt, total_iter):
    """A torch LR scheduler from ``train.scheduler``, stepped once per iteration.

    ``CosineAnnealingLR`` takes ``T_max`` from ``train.total_iter`` when omitted;
    ``MultiStepLR``/``StepLR`` count iterations, as in BasicSR.
    """
    opt = dict(opt)
    name = opt.pop('type')
    if name == 'CosineAnnealingLR':
        opt.setdefault('T_max', total_iter)
    return getattr(torch.optim.lr_scheduler, name)(optimizer, **opt)


class BaseModel:
    """Base class of all models.

    Args:
        opt (dict): The full, validated option dict.

    Attributes:
        option_schema (dict): Extra option keys this model accepts, merged into the
            base schema by :func:`basicsr_denoise.utils.options.model_schema`.
    """

    option_schema = {}

    def __init__(self, opt):
        self.opt = opt
        self.device = resolve_device(opt.get('num_gpu', 'auto'))
        self.is_train = opt.get('is_train', False)
        self.optimizers = []
        self.schedulers = []
        self.net_g = None
        self.net_g_ema = None
        self.log_dict = OrderedDict()
        self.best_metric_results = {}
        self.logger = get_root_logger()

    # ------------------------------------------------------------------ networks
    def model_to_device(self, net):
        """Move ``net`` to the device and wrap it in DDP when the run is distributed."""
        net = net.to(self.device)
        if self.opt.get('dist'):
            ids = [self.device.index] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=ids,
                                          find_unused_parameters=self.opt.get('find_unused_parameters', False))
        return net

    def load_network(self, net, path, strict=True, param_key='params'):
        """Load ``path`` (a file, or the name of a shipped checkpoint) into ``bare(net)`` safely
        (``weights_only``), with clear mismatch errors; a checkpoint that stores a ``network_g`` other
        than the options' is a one-line error."""
        path = load_weights(bare(net), path, param_key, strict, self.opt.get('network_g'), self.opt.get('opt_path'))
        self.logger.info(f'Loaded {type(bare(net)).__name__} weights [{param_key}] from {path}')

    def load_pretrained(self):
        """Load ``path.pretrain_network_g`` into ``net_g`` if it is set."""
        path = self.opt['path'].get('pretrain_network_g')
        if path:
            self.load_network(self.net_g, path, self.opt['path'].get('strict_load_g', True),
                              self.opt['path'].get('param_key_g', 'params'))

    def setup_ema(self):
        """Create ``net_g_ema`` when ``train.ema_decay`` > 0."""
        decay = self.opt['train'].get('ema_decay') or 0
        if decay > 0:
            self.net_g_ema = copy.deepcopy(bare(self.net_g)).to(self.device).eval()
            for p in self.net_g_ema.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def model_ema(self, decay=None):
        """``ema = decay * ema + (1 - decay) * net``; buffers are copied."""
        if self.net_g_ema is None:
            return
        decay = self.opt['train']['ema_decay'] if decay is None else decay
        net = bare(self.net_g)
        ema_p = dict(self.net_g_ema.named_parameters())
        for k, p in net.named_parameters():
            ema_p[k].mul_(decay).add_(p.detach(), alpha=1 - decay)
        ema_b = dict(self.net_g_ema.named_buffers())
        for k, b in net.named_buffers():
            ema_b[k].copy_(b)

    def setup_optimizers(self, params=None):
        """Optimiser from ``train.optim_g`` over the trainable parameters of ``net_g``."""
        if params is None:
            params = [p for p in self.net_g.parameters() if p.requires_grad]
        self.optimizer_g = build_optimizer(params, self.opt['train']['optim_g'])
        self.optimizers.append(self.optimizer_g)

    def setup_schedulers(self):
        """One scheduler per optimiser from ``train.scheduler`` (none if unset)."""
        sched = self.opt['train'].get('scheduler')
        if not sched:
            return
        for optim in self.optimizers:
            self.schedulers.append(build_scheduler(optim, sched, self.opt['train']['total_iter']))

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        """Step the schedulers; during ``warmup_iter`` scale the lr linearly from 0 (BasicSR semantics)."""
        if current_iter > 1:
            for s in self.schedulers:
                s.step()
        if current_iter < (warmup_iter or -1):
            for optim in self.optimizers:
                for g in optim.param_groups:
                    g.setdefault('initial_lr', g['lr'])
                    g['lr'] = g['initial_lr'] * current_iter / warmup_iter

    def get_current_learning_rate(self):
        """Learning rate of each optimiser's first parameter group."""
        return [optim.param_groups[0]['lr'] for optim in self.optimizers]

    def setup_precision(self):
        """Read ``train.autocast`` (``bf16`` or ``fp32``/unset; fp16 would need a gradient scaler) and
        ``train.channels_last``.

        The network is moved to channels-last memory here; :meth:`train_autocast` wraps the forward
        pass and :meth:`to_train_format` the inputs. Losses are computed in float32.
        """
        topt = self.opt.get('train') or {}
        mode = topt.get('autocast') or 'fp32'
        if mode not in TRAIN_AUTOCAST:
            raise OptionError(f"{self.opt.get('opt_path', 'options')}: train.autocast: must be one of "
                              f"{', '.join(TRAIN_AUTOCAST)}, got {mode!r}")
        self.autocast_dtype = TRAIN_AUTOCAST[mode]
        self.channels_last = bool(topt.get('channels_last', False))
        if self.channels_last:
            self.net_g.to(memory_format=torch.channels_last)

    def train_autocast(self):
        """The autocast context of a training forward pass (a no-op for fp32)."""
        dtype = getattr(self, 'autocast_dtype', None)
        return torch.autocast(device_type=self.device.type, dtype=dtype, enabled=dtype is not None)

    def to_train_format(self, x):
        """``x`` in the training memory format (channels-last when ``train.channels_last``)."""
        return x.contiguous(memory_format=torch.channels_last) if getattr(self, 'channels_last', False) else x

    def clip_gradients(self, parameters):
        """Clip the gradient norm at ``train.grad_clip`` (skipped when unset)."""
        max_norm = self.opt['train'].get('grad_clip')
        if max_norm:
            torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    def reduce_loss_dict(self, loss_dict):
        """Loss tensors -> floats averaged over ranks (for logging)."""
        values = {k: (v.mean().item() if torch.is_tensor(v) else float(v)) for k, v in loss_dict.items()}
        return OrderedDict(sorted(reduce_mean(values).items()))

    def get_current_log(self):
        """The last reduced losses."""
        return self.log_dict

    # --------------------------------------------------------------- checkpoints
    def checkpoint_meta(self):
        """Plain data saved beside the weights: the ``network_g`` block, plus a model's method defaults."""
        return {'network_g': copy.deepcopy(self.opt['network_g'])} if self.opt.get('network_g') else {}

    def save_network(self, net, net_label, current_iter, param_key='params'):
        """Write ``models/<label>_<iter>.pth`` atomically (rank 0), ``{'params': ..., 'params_ema': ...}`` and the
        plain-data self-description of :meth:`checkpoint_meta` (``network_g``, ``fill``/``score``).

        Args:
            net (nn.Module | list[nn.Module]): Network(s), one per ``param_key``.
            net_label (str): e.g. ``'net_g'``.
            current_iter (int | str): Iteration, or ``'latest'``.
            param_key (str | list[str]): Key(s) in the saved dict.
        """
        if get_dist_info()[0] != 0:
            return
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        state = plain_data(self.checkpoint_meta())
        for n, k in zip(nets, keys):
            state[k] = OrderedDict((name.removeprefix('module.'), p.detach().cpu().clone())
                                   for name, p in bare(n).state_dict().items())
        path = os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
        atomic_save(state, path)

    def save(self, epoch, current_iter, batch_in_epoch=0):
        """Save the network(s) and the training state for ``current_iter``."""
        if self.net_g_ema is not None:
            self.save_network([self.net_g, self.net_g_ema], 'net_g', current_iter, ['params', 'params_ema'])
        else:
            self.save_network(self.net_g, 'net_g', current_iter)
        self.save_training_state(epoch, current_iter, batch_in_epoch)

    def save_training_state(self, epoch, current_iter, batch_in_epoch=0):
        """Write ``training_states/<iter>.state`` atomically (rank 0).

        Holds the optimisers, schedulers, iteration, epoch, position in the epoch and
        the RNG states, all loadable with ``torch.load(weights_only=True)``.
        """
        rank, world = get_dist_info()
        rng = get_rng_state()
        if world > 1:  # every rank's RNG streams, so a distributed resume is exact too
            rngs = [None] * world
            torch.distributed.all_gather_object(rngs, rng)
        else:
            rngs = [rng]
        if rank != 0:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'batch_in_epoch': batch_in_epoch,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'rng': rngs,
            'best_metric_results': self.best_metric_results,
        }
        atomic_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, state):
        """Restore optimisers, schedulers and RNG from a training state dict."""
        if len(state['optimizers']) != len(self.optimizers) or len(state['schedulers']) != len(self.schedulers):
            raise OptionError('the training state does not match the configured optimizers/schedulers')
        for o, s in zip(self.optimizers, state['optimizers']):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state['schedulers']):
            self._load_scheduler_state(sch, s)
        self.best_metric_results = state.get('best_metric_results', {})
        rank, world = get_dist_info()
        if len(state['rng']) == world:
            set_rng_state(state['rng'][rank])
        else:
            self.logger.warning(f"training state holds RNG states of {len(state['rng'])} ranks, this run has "
                                f'{world}: random streams restart from the seed, the resume is not bit-exact')

    #: Scheduler state entries that are progress, not settings: always taken from the training state.
    _SCHEDULER_PROGRESS = {'last_epoch', '_step_count', '_last_lr', 'base_lrs', '_get_lr_called_within_step',
                           '_is_initial', 'verbose'}

    def _load_scheduler_state(self, sch, state):
        """Load a scheduler's progress from ``state``; its settings (``milestones``, ``T_max``, ...) come from the
        options, so a resume can extend or reshape a schedule. A changed setting is logged and the learning rate
        is recomputed from the scheduler's closed form at the resumed iteration."""
        fresh = {k: v for k, v in sch.state_dict().items() if k not in self._SCHEDULER_PROGRESS}
        sch.load_state_dict(state)
        changed = {k: (state[k], v) for k, v in fresh.items() if k in state and state[k] != v}
        if not changed:
            return
        for k, (_, v) in changed.items():
            setattr(sch, k, v)
        if hasattr(sch, '_get_closed_form_lr'):
            for group, lr in zip(sch.optimizer.param_groups, sch._get_closed_form_lr()):
                group['lr'] = lr
            sch._last_lr = [g['lr'] for g in sch.optimizer.param_groups]
        def show(v):
            return dict(v) if hasattr(v, 'items') else v  # MultiStepLR keeps its milestones in a Counter

        desc = ', '.join(f'{k}: {show(old)} -> {show(new)}' for k, (old, new) in changed.items())
        self.logger.warning(f'train.scheduler differs from the training state ({desc}): the options win; '
                            f'lr now {sch._last_lr[0]:.3e}')

    def load_resume_networks(self, current_iter):
        """Load ``models/net_g_<iter>.pth`` (and its ``params_ema``) for a resume."""
        path = os.path.join(self.opt['path']['models'], f'net_g_{current_iter}.pth')
        self.load_network(self.net_g, path, strict=True, param_key='params')
        if self.net_g_ema is not None:
            self.load_network(self.net_g_ema, path, strict=True, param_key='params_ema')

    # ---------------------------------------------------------------- interfaces
    def feed_data(self, data):
        """Take a batch dict (``lq``, ``gt``, paths) from a data loader."""
        raise NotImplementedError

    def optimize_parameters(self, current_iter):
        """One training step; fills ``self.log_dict``."""
        raise NotImplementedError

    def test(self):
        """Compute ``self.output`` for the fed batch."""
        raise NotImplementedError

    def get_current_visuals(self):
        """``{'lq', 'result', 'gt'?}`` CPU tensors ``(1, C, H, W)``."""
        out = OrderedDict(lq=self.lq.detach().cpu(), result=self.output.detach().cpu())
        if getattr(self, 'gt', None) is not None:
            out['gt'] = self.gt.detach().cpu()
        return out

    def extra_record(self):
        """Per-image values to add to ``metrics.json`` besides the metrics (e.g. a noise estimate)."""
        return {}

    # ---------------------------------------------------------------- validation
    def validation(self, dataloader, current_iter, tb_logger=None, save_img=False, dataset_name='val',
                   all_ranks=False):
        """Run the model on every image of ``dataloader``; compute metrics; save outputs.

        Runs on rank 0 only (other ranks return None) unless ``all_ranks``: then every rank runs on its
        own loader (its shard of a test set, see ``test.py``) and returns its records. Images without
        ``gt`` are processed and saved, with no metrics.

        Returns:
            dict: ``{'images': [{name, psnr, ssim, seconds, ...}], 'mean': {...}, 'count': N}``.
        """
        if get_dist_info()[0] != 0 and not all_ranks:
            return None
        val_opt = self.opt.get('val') or {}
        metrics = val_opt.get('metrics') or {}
        bar = progress(total=len(dataloader), desc=dataset_name, unit='img', leave=True,
                       disable=None if val_opt.get('pbar', True) else True)
        try:
            records = self._validate_images(dataloader, current_iter, dataset_name, bar, save_img)
        finally:
            bar.close()
        result = summarize_records(records)
        if get_dist_info()[0] == 0:
            self._log_validation(dataset_name, current_iter, result['mean'], metrics, tb_logger)
        return result

    def _validate_images(self, dataloader, current_iter, dataset_name, bar, save_img):
        """The per-image loop of :meth:`validation`; returns the per-image records."""
        from basicsr_denoise.metrics import calculate_metric
        from basicsr_denoise.utils.img_util import imwrite, make_comparison, tensor2img
        val_opt = self.opt.get('val') or {}
        metrics = val_opt.get('metrics') or {}
        fmt = val_opt.get('save_format', 'png')
        records = []
        for data in dataloader:
            path = data.get('lq_path', data.get('gt_path'))[0]
            name = os.path.splitext(os.path.basename(path))[0]
            t0 = time.perf_counter()
            self.feed_data(data)
            self.test()
            if self.device.type == 'cuda':
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            visuals = self.get_current_visuals()
            out = tensor2img(visuals['result'])
            rec = {'name': name}
            if 'gt' in visuals:
                gt = tensor2img(visuals['gt'])
                for mname, mopt in metrics.items():
                    rec[mname] = float(calculate_metric({'img': out, 'img2': gt}, mopt))
            rec['seconds'] = seconds
            rec.update(self.extra_record())
            records.append(rec)
            if save_img:
                vis = self.opt['path']['visualization']
                if self.is_train:
                    stem = os.path.join(vis, name, f'{name}_{current_iter}')
                else:
                    suffix = val_opt.get('suffix')
                    stem = os.path.join(vis, dataset_name, f'{name}_{suffix}' if suffix else name)
                ext = {'png': '.png', 'png16': '.png', 'tif16': '.tif', 'npy': '.npy'}.get(fmt, '.png')
                imwrite(out, stem + ext, bit_depth=16 if fmt.endswith('16') else 8)
                panels = [tensor2img(visuals['lq']), out] + ([tensor2img(visuals['gt'])] if 'gt' in visuals else [])
                labels = ['noisy', 'denoised'] + (['clean'] if 'gt' in visuals else [])
                if 'gt' in visuals and 'psnr' in rec:
                    labels[1] = f"denoised {rec['psnr']:.2f} dB"
                imwrite(make_comparison(panels, labels), stem + '_compare.png')
            bar.update(1)
            bar.set_postfix({k: f'{v:.2f}' for k, v in rec.items() if k in metrics})
            self.logger.info(f'{dataset_name} {name}: ' + ', '.join(
                f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}' for k, v in rec.items() if k != 'name'))
        return records

    def _log_validation(self, dataset_name, current_iter, mean, metrics, tb_logger):
        msg = f'Validation {dataset_name}'
        for mname in metrics:
            if mname not in mean:
                continue
            value = mean[mname]
            best = self.best_metric_results.setdefault(dataset_name, {}).get(mname)
            lower = (metrics[mname] or {}).get('better', 'higher') == 'lower'  # e.g. a distance, not PSNR/SSIM
            if best is None or (value < best['val'] if lower else value > best['val']):
                best = {'val': value, 'iter': current_iter}
                self.best_metric_results[dataset_name][mname] = best
            msg += f"\n\t # {mname}: {value:.4f}\tBest: {best['val']:.4f} @ {best['iter']} iter"
            if tb_logger is not None:
                tb_logger.add_scalar(f'metrics/{dataset_name}/{mname}', value, current_iter)
        self.logger.info(msg)


def summarize_records(records):
    """``{'images': records, 'mean': {key: mean over the records that have it}, 'count': N}`` (numeric keys)."""
    mean = {}
    for k in records[0] if records else []:
        vals = [r[k] for r in records if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        if vals and k not in ('name', 'rank'):
            mean[k] = float(np.mean(vals))
    return {'images': records, 'mean': mean, 'count': len(records)}


def finite_or_raise(t, what):
    """Raise a one-line DataError if ``t`` holds NaN or Inf."""
    from basicsr_denoise.utils.errors import DataError
    if not torch.isfinite(t).all():
        raise DataError(f'{what}: input contains NaN or Inf values')
    return t


__all__ = ['BaseModel', 'build_optimizer', 'build_scheduler', 'finite_or_raise', 'summarize_records']
