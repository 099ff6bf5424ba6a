"""Option files: parsing, command-line overrides and validation.

Parsing has no side effects: :func:`parse_options` reads the YAML file with
``yaml.safe_load``, applies ``--force_yml`` overrides (never ``exec``/``eval``),
validates every key against a schema and fills defaults. It creates no folder,
starts no process group and seeds nothing; ``train.py`` does those afterwards, in
the order parse, start distributed, seed.

Validation:
- an unknown key anywhere is an error that names the file and the dotted key;
- blocks with a ``type`` (``network_g``, ``datasets.*``, ``train.*_opt``,
  ``val.metrics.*`` ...) are checked against the registered class's keyword
  arguments, so a typo such as ``num_feat`` for ``num_feats`` fails at load time;
- values are type-checked; ``~`` means None; numbers written ``2e-3`` (a string in
  YAML 1.1) are read as floats.
A model class can add its own sections through a ``option_schema`` class attribute
(merged into :data:`BASE_SCHEMA`).
"""

import argparse
import copy
import os
import re

import yaml

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import (ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY,
                                            MODEL_REGISTRY, check_kwargs, import_plugins)

_FLOAT_RE = re.compile(r'^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$')


class Block:
    """Schema marker: a ``{type: Name, **kwargs}`` block checked against a registry."""

    def __init__(self, registry):
        self.registry = registry


class MapOf:
    """Schema marker: a dict with free keys whose values all follow ``spec``."""

    def __init__(self, spec):
        self.spec = spec


class AnyValue:
    """Schema marker: anything goes (free-form blocks checked by their consumer)."""


OPTIM_TYPES = {'Adam', 'AdamW', 'SGD'}
SCHEDULER_TYPES = {'CosineAnnealingLR', 'MultiStepLR', 'StepLR', 'LinearLR', 'ConstantLR'}

LOADER_KEYS = ('name', 'phase', 'use_shuffle', 'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio',
               'prefetch_mode', 'prefetch_factor', 'pin_memory', 'persistent_workers')
"""Keys of a ``datasets.<phase>`` block that configure the loader, not the dataset."""

LOADER_SCHEMA = {
    'name': str, 'type': str, 'phase': str, 'use_shuffle': bool, 'num_worker_per_gpu': int,
    'batch_size_per_gpu': int, 'dataset_enlarge_ratio': int, 'prefetch_mode': str, 'pin_memory': bool,
    'persistent_workers': bool, 'prefetch_factor': int
}

BASE_SCHEMA = {
    'name': str,
    'model_type': str,
    'num_gpu': (int, str),
    'manual_seed': int,
    'scale': int,
    'plugins': list,
    'is_train': bool,
    'dist': bool,
    'rank': int,
    'world_size': int,
    'auto_resume': bool,
    'find_unused_parameters': bool,
    'opt_path': str,
    'datasets': 'datasets',
    'network_g': Block(ARCH_REGISTRY),
    'path': {
        'root': str, 'pretrain_network_g': str, 'strict_load_g': bool, 'param_key_g': str, 'resume_state': str,
        'experiments_root': str, 'models': str, 'training_states': str, 'log': str, 'visualization': str,
        'results_root': str, 'in_progress': str
    },
    'train': {
        'ema_decay': float, 'optim_g': 'optim', 'scheduler': 'scheduler', 'total_iter': int, 'warmup_iter': int,
        'grad_clip': float, 'pixel_opt': Block(LOSS_REGISTRY), 'autocast': str, 'channels_last': bool
    },
    'val': {
        'val_freq': int, 'save_img': bool, 'suffix': str, 'pbar': bool, 'save_format': str,
        'metrics': MapOf(Block(METRIC_REGISTRY))
    },
    'logger': {
        'print_freq': int, 'save_checkpoint_freq': int, 'use_tb_logger': bool, 'wandb': AnyValue(),
        'save_in_progress': bool
    },
    'dist_params': {
        'backend': str, 'port': int
    },
}


def _where(source, key):
    return f'{source}: {key}' if source else key


def _type_name(spec):
    if isinstance(spec, tuple):
        return ' or '.join(t.__name__ for t in spec)
    return spec.__name__


def _coerce(value, spec, source, key):
    """Check ``value`` against a plain type spec; return it (ints widen to floats)."""
    if value is None:
        return None
    types = spec if isinstance(spec, tuple) else (spec, )
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) and bool not in types:
        raise OptionError(f'{_where(source, key)}: expected {_type_name(spec)}, got {value!r}')
    if not isinstance(value, types):
        raise OptionError(f'{_where(source, key)}: expected {_type_name(spec)}, got {type(value).__name__} {value!r}')
    return value


def fix_yaml_floats(obj):
    """Turn strings such as ``'2e-3'`` (YAML 1.1 reads them as strings) into floats, recursively."""
    if isinstance(obj, dict):
        return {k: fix_yaml_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [fix_yaml_floats(v) for v in obj]
    if isinstance(obj, str) and _FLOAT_RE.match(obj):
        return float(obj)
    return obj


def merge_schema(base, extra):
    """Deep-merge ``extra`` into a copy of ``base`` (dict sections merge, others replace)."""
    out = dict(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_schema(out[k], v)
        else:
            out[k] = v
    return out


def _check_block(block, registry, source, key):
    if not isinstance(block, dict):
        raise OptionError(f'{_where(source, key)}: expected a block with a type, got {block!r}')
    if 'type' not in block:
        raise OptionError(f"{_where(source, key)}: missing 'type'")
    cls = registry.get(block['type'], key=key + '.type', source=source)
    check_kwargs(cls, {k: v for k, v in block.items() if k != 'type'}, key=key, source=source)


def _check_torch_block(block, allowed, source, key):
    import torch
    if 'type' not in block:
        raise OptionError(f"{_where(source, key)}: missing 'type'")
    if block['type'] not in allowed:
        raise OptionError(f"{_where(source, key)}.type: unknown type '{block['type']}'; "
                          f"known: {', '.join(sorted(allowed))}")
    if key.endswith('optim_g'):
        cls = getattr(torch.optim, block['type'])
        check_kwargs(cls, {k: v for k, v in block.items() if k not in ('type', 'params')}, key=key, source=source)
    else:
        cls = getattr(torch.optim.lr_scheduler, block['type'])
        # T_max defaults to train.total_iter when omitted
        check_kwargs(cls, {k: v for k, v in block.items() if k != 'type'}, key=key, source=source)


def _check_datasets(datasets, source):
    if not isinstance(datasets, dict):
        raise OptionError(f'{_where(source, "datasets")}: expected a mapping of train/val*/test* blocks')
    for phase, block in datasets.items():
        key = f'datasets.{phase}'
        if not (phase == 'train' or phase.startswith('val') or phase.startswith('test')):
            raise OptionError(f'{_where(source, key)}: dataset keys must be train, val* or test*')
        if not isinstance(block, dict):
            raise OptionError(f'{_where(source, key)}: expected a block, got {block!r}')
        for k in LOADER_KEYS:
            if k in block and k in LOADER_SCHEMA and k != 'type':
                block[k] = _coerce(block[k], LOADER_SCHEMA[k], source, f'{key}.{k}')
        if block.get('prefetch_mode') is not None:  # BasicSR's cpu/cuda prefetchers: not implemented here
            raise OptionError(f"{_where(source, key + '.prefetch_mode')}: not supported (the loader's workers "
                              'prefetch: set num_worker_per_gpu, prefetch_factor and pin_memory); remove the key '
                              'or set ~')
        _check_block({k: v for k, v in block.items() if k not in LOADER_KEYS or k == 'type'}, DATASET_REGISTRY,
                     source, key)


def validate(opt, schema, source=None, prefix=''):
    """Check ``opt`` against ``schema`` in place (coercing ints to floats where floats are expected).

    Raises:
        OptionError: naming ``source`` and the dotted key of the first problem.
    """
    for k in list(opt):
        key = f'{prefix}{k}'
        if k not in schema:
            known = ', '.join(sorted(schema))
            raise OptionError(f'{_where(source, key)}: unknown option key (known here: {known})')
        spec, value = schema[k], opt[k]
        if value is None:
            continue
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise OptionError(f'{_where(source, key)}: expected a block of keys, got {value!r}')
            validate(value, spec, source, key + '.')
        elif isinstance(spec, Block):
            _check_block(value, spec.registry, source, key)
        elif isinstance(spec, MapOf):
            if not isinstance(value, dict):
                raise OptionError(f'{_where(source, key)}: expected a mapping, got {value!r}')
            for name, sub in value.items():
                if isinstance(spec.spec, Block):
                    _check_block(sub, spec.spec.registry, source, f'{key}.{name}')
        elif isinstance(spec, AnyValue):
            continue
        elif spec == 'datasets':
            _check_datasets(value, source)
        elif spec == 'optim':
            _check_torch_block(value, OPTIM_TYPES, source, key)
        elif spec == 'scheduler':
            _check_torch_block(value, SCHEDULER_TYPES, source, key)
        else:
            opt[k] = _coerce(value, spec, source, key)


def parse_override(text):
    """Split ``'a:b:c=value'`` or ``'a.b.c=value'`` into ``(['a', 'b', 'c'], value)``.

    The value is read as a YAML scalar or list (``yaml.safe_load``), never executed.

    Raises:
        OptionError: on a malformed override.
    """
    if '=' not in text:
        raise OptionError(f"--force_yml '{text}': expected KEY=VALUE with KEY like a:b:c or a.b.c")
    path, raw = text.split('=', 1)
    path = path.strip()
    sep = ':' if ':' in path else '.'
    keys = path.split(sep)
    if not path or any(not k.strip() for k in keys):
        raise OptionError(f"--force_yml '{text}': empty key in '{path}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise OptionError(f"--force_yml '{text}': value is not valid YAML ({str(exc).splitlines()[0]})") from None
    return [k.strip() for k in keys], fix_yaml_floats(value)


def apply_override(opt, text):
    """Apply one ``--force_yml`` override to ``opt`` in place (creating missing blocks)."""
    keys, value = parse_override(text)
    node = opt
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        elif not isinstance(nxt, dict):
            raise OptionError(f"--force_yml '{text}': '{'.'.join(keys[:i + 1])}' is a value, not a block")
        node = nxt
    node[keys[-1]] = value


def merge_options(base, override):
    """``base`` updated by ``override``, recursively for nested blocks (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merge_options(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


#: The package's presets folder (package data: ``basicsr_denoise/presets/*.yml``).
PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'presets')


def preset_file(name):
    """The YAML file of preset ``name`` (``'fast'`` -> ``mpi_fast.yml``; ``'n2s'``; or a file's own name)."""
    stem = name if name.startswith(('mpi_', 'n2s', '_')) else 'mpi_' + name.replace('-', '_')
    return os.path.join(PRESET_DIR, stem + '.yml')


def _base_file(ref, path):
    """The file a ``_base_`` entry names: a preset name (``mpi_fast``) or a path relative to ``path``'s folder."""
    if not isinstance(ref, str) or not ref:
        raise OptionError(f'{path}: _base_: expected a preset name or a file, got {ref!r}')
    if ref.endswith(('.yml', '.yaml')) or '/' in ref or os.sep in ref:
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), ref))
    return preset_file(ref)


def load_yaml(path, _chain=()):
    """Read an option file with ``yaml.safe_load``; errors name the file.

    A top-level ``_base_`` (a name or a list of names) inherits other option files first, and the
    file's own keys override theirs block by block (mmcv's ``_base_``): a bare name such as
    ``mpi_fast`` is a preset of :mod:`basicsr_denoise.presets`, anything ending in ``.yml`` a path
    relative to the file.
    """
    if not os.path.isfile(path):
        raise OptionError(f'option file not found: {path}' + (f' (_base_ of {_chain[-1]})' if _chain else ''))
    try:
        with open(path, encoding='utf-8') as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise OptionError(f'{path}: invalid YAML ({" ".join(str(exc).split())})') from None
    if not isinstance(opt, dict):
        raise OptionError(f'{path}: expected a mapping of option keys at the top level')
    bases = opt.pop('_base_', None)
    merged = {}
    for ref in ([bases] if isinstance(bases, str) else bases or []):
        base = _base_file(ref, path)
        if os.path.abspath(base) in _chain:
            raise OptionError(f'{path}: _base_: {ref} includes itself')
        merged = merge_options(merged, load_yaml(base, _chain + (os.path.abspath(path), )))
    return fix_yaml_floats(merge_options(merged, opt))


def model_schema(opt, source=None):
    """The schema for ``opt``: :data:`BASE_SCHEMA` plus its model class's ``option_schema``."""
    if 'model_type' not in opt:
        raise OptionError(f'{_where(source, "model_type")}: required option key is missing')
    cls = MODEL_REGISTRY.get(opt['model_type'], key='model_type', source=source)
    return merge_schema(BASE_SCHEMA, getattr(cls, 'option_schema', None))


#: Keys BasicSR files carry that this framework does not implement: a one-line error says what to do instead.
UNSUPPORTED = {
    'dist_params.port': 'torchrun sets the rendezvous port (torchrun --master_port P, or --standalone); remove it',
    'logger.wandb': 'Weights & Biases logging is not built in; use logger.use_tb_logger (TensorBoard) and remove it',
}


def check_unsupported(opt, source=None):
    """Refuse the keys of :data:`UNSUPPORTED` and a ``val.metrics.<name>.better`` other than higher/lower."""
    for dotted, hint in UNSUPPORTED.items():
        block, key = dotted.split('.')
        if (opt.get(block) or {}).get(key) is not None:
            raise OptionError(f'{_where(source, dotted)}: not supported: {hint}')
    for name, block in ((opt.get('val') or {}).get('metrics') or {}).items():
        better = (block or {}).get('better', 'higher')
        if better not in ('higher', 'lower'):
            key = f'val.metrics.{name}.better'
            raise OptionError(f'{_where(source, key)}: must be higher or lower, got {better!r}')


def check_options(opt, is_train, source=None):
    """Validate a full option dict (schema, required keys) in place and fill its defaults."""
    import_plugins(opt.get('plugins'))
    if isinstance(opt.get('datasets'), dict):  # `datasets.val_1=~` switches a dataset off
        opt['datasets'] = {k: v for k, v in opt['datasets'].items() if v is not None}
    schema = model_schema(opt, source)
    validate(opt, schema, source)
    check_unsupported(opt, source)
    if opt.get('scale') not in (None, 1):  # BasicSR's super-resolution factor: denoising keeps the size
        raise OptionError(f"{_where(source, 'scale')}: must be 1 (denoising keeps the image size), "
                          f"got {opt['scale']!r}")
    if not opt.get('name'):
        raise OptionError(f'{_where(source, "name")}: required option key is missing')
    if is_train:
        if 'train' not in (opt.get('datasets') or {}):
            raise OptionError(f'{_where(source, "datasets.train")}: required for training')
        if not (opt.get('train') or {}).get('total_iter'):
            raise OptionError(f'{_where(source, "train.total_iter")}: required for training')
    for phase, block in (opt.get('datasets') or {}).items():  # BasicSR: each block knows its phase
        block.setdefault('phase', 'train' if phase == 'train' else ('val' if phase.startswith('val') else 'test'))
    opt.setdefault('num_gpu', 'auto')
    opt.setdefault('manual_seed', 0)
    opt.setdefault('scale', 1)
    for k, v in (('path', {}), ('train', {}), ('val', {}), ('logger', {}), ('datasets', {})):
        if opt.get(k) is None:
            opt[k] = copy.deepcopy(v)
    opt['path'].setdefault('strict_load_g', True)
    opt['path'].setdefault('param_key_g', 'params')
    opt['logger'].setdefault('print_freq', 100)
    opt['logger'].setdefault('save_checkpoint_freq', 5000)
    opt['logger'].setdefault('use_tb_logger', True)
    return opt


def set_paths(opt, is_train, root=None):
    """Fill the BasicSR folder layout into ``opt['path']`` (creates nothing).

    Training: ``experiments/<name>/{models,training_states,visualization}`` and a log
    folder; testing: ``results/<name>/{visualization}``. ``root`` defaults to
    ``path.root`` or the current working directory.
    """
    root = os.path.abspath(root or opt['path'].get('root') or os.getcwd())
    opt['path']['root'] = root
    if is_train:
        exp = opt['path'].get('experiments_root') or os.path.join(root, 'experiments', opt['name'])
        opt['path']['experiments_root'] = exp
        opt['path']['models'] = os.path.join(exp, 'models')
        opt['path']['training_states'] = os.path.join(exp, 'training_states')
        opt['path']['log'] = exp
        opt['path']['visualization'] = os.path.join(exp, 'visualization')
    else:
        res = opt['path'].get('results_root') or os.path.join(root, 'results', opt['name'])
        opt['path']['results_root'] = res
        opt['path']['log'] = res
        opt['path']['visualization'] = os.path.join(res, 'visualization')


def build_arg_parser():
    """The BasicSR command-line flags (``-opt``, ``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``)."""
    parser = argparse.ArgumentParser(description='basicsr_denoise: train or test from an option file.')
    parser.add_argument('-opt', '--opt', required=True, help='Path to the option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help="'pytorch' under torchrun (ranks from RANK/LOCAL_RANK/WORLD_SIZE).")
    parser.add_argument('--auto_resume', action='store_true', help='Resume from the newest training state.')
    parser.add_argument('--debug', action='store_true', help='Tiny logging/validation/checkpoint periods.')
    parser.add_argument('--force_yml', nargs='+', default=None, metavar='KEY=VALUE',
                        help='Override options, e.g. train:total_iter=10 or train.optim_g.lr=1e-4.')
    return parser


def parse_options(is_train=True, argv=None, root=None):
    """Parse the command line and the option file into a validated option dict.

    Args:
        is_train (bool): Training (experiments folder) or testing (results folder).
        argv (list[str] | None): Arguments; None reads ``sys.argv``.
        root (str | None): Folder holding ``experiments/`` and ``results/``. Default:
            ``path.root`` or the current working directory.

    Returns:
        tuple[dict, argparse.Namespace]: the options and the parsed arguments.
    """
    args = build_arg_parser().parse_args(argv)
    opt = load_yaml(args.opt)
    for text in args.force_yml or []:
        apply_override(opt, text)
    opt = check_options(opt, is_train, source=args.opt)
    opt['opt_path'] = os.path.abspath(args.opt)
    opt['is_train'] = is_train
    opt['auto_resume'] = args.auto_resume
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    if args.debug:
        opt['logger']['print_freq'] = 1
        opt['logger']['save_checkpoint_freq'] = 8
        if opt.get('val'):
            opt['val']['val_freq'] = 8
    set_paths(opt, is_train, root)
    return opt, args


def dict2str(opt, indent=1):
    """Readable, indented text of an option dict (for the log)."""
    lines = []
    for k, v in opt.items():
        if isinstance(v, dict):
            lines.append(' ' * (indent * 2) + f'{k}:[')
            lines.append(dict2str(v, indent + 1))
            lines.append(' ' * (indent * 2) + ']')
        else:
            lines.append(' ' * (indent * 2) + f'{k}: {v}')
    return '\n'.join(lines)


__all__ = [
    'parse_options', 'check_options', 'apply_override', 'parse_override', 'load_yaml', 'validate', 'set_paths',
    'dict2str', 'BASE_SCHEMA', 'Block', 'MapOf', 'AnyValue'
]
