"""Ship a checkpoint with the package: self-describing file, sha256 registry entry and README row, in one step.

Usage::

    # a new Noise2Score checkpoint from a training run (params_ema when it has one, else params)
    python tools/ship_checkpoint.py experiments/N2S_gauss25_color/models/net_g_2000.pth \\
        --name N2S_gauss25_color_ours.pth -opt options/test/Noise2Score/test_N2S_gauss25.yml \\
        --recipe options/train/Noise2Score/train_N2S_gauss25.yml
    # re-save a shipped file in place (it already describes itself)
    python tools/ship_checkpoint.py experiments/pretrained_models/MPI_syn_ours.pth --name MPI_syn_ours.pth

What it does (:func:`ship`):

1. :func:`basicsr_denoise.checkpoint.export_checkpoint` writes
   ``experiments/pretrained_models/<name>`` as ``{'params', 'network_g', 'fill' | 'score'}``: the
   ``network_g`` block and the ``fill`` (MPI) or ``score`` (Noise2Score) defaults come from ``-opt``
   (a training or test option file, ``_base_`` resolved), else from ``--network``/``--fill``/``--score``
   (YAML blocks), else from the source file itself;
2. the sha256 goes into ``basicsr_denoise/weights/registry.json`` (checked whenever the package loads
   the file by name) together with ``--recipe``;
3. the row of ``experiments/pretrained_models/README.md`` gets the new sha256 and size
   (``tests/test_archs.py`` checks that the three agree).

The setup.py build copies every registered file into the package, so a wheel or a non-editable
``pip install .`` carries it.
"""

import argparse
import json
import os
import os.path as osp
import re
import sys

import yaml

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.checkpoint import export_checkpoint  # noqa: E402
from basicsr_denoise.utils.errors import OptionError, exit_on_user_error  # noqa: E402
from basicsr_denoise.weights import REGISTRY_FILE, SOURCE_DIR  # noqa: E402

README = osp.join(SOURCE_DIR, 'README.md')


def _block(text, flag):
    if text is None:
        return None
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise OptionError(f'{flag}: expected a YAML block, got {text!r}')
    return value


def update_readme(name, sha, size, readme=README):
    """Set ``name``'s row of the shipped-weights table (``| `name` | `sha256` | size |``), adding it if missing."""
    text = open(readme, encoding='utf-8').read()
    row = f'| `{name}` | `{sha}` | {size / 2**20:.1f} MB |'
    pattern = re.compile(r'^\| `' + re.escape(name) + r'` \|.*\|$', re.M)
    if pattern.search(text):
        text = pattern.sub(row, text)
    else:
        rows = list(re.finditer(r'^\| `[\w.]+\.pth` \| `[0-9a-f]{64}` \|.*\|$', text, re.M))
        if not rows:
            raise OptionError(f'{readme}: no table of shipped checkpoints to add {name} to')
        end = rows[-1].end()
        text = text[:end] + '\n' + row + text[end:]
    with open(readme, 'w', encoding='utf-8') as f:
        f.write(text)


def update_registry(name, sha, recipe=None, path=REGISTRY_FILE):
    """Set ``name``'s sha256 (and recipe) in ``registry.json``."""
    with open(path, encoding='utf-8') as f:
        reg = json.load(f)
    entry = reg.setdefault(name, {})
    entry['sha256'] = sha
    entry['recipe'] = recipe or entry.get('recipe')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(reg, f, indent=2)
        f.write('\n')


def ship(src, name, opt_path=None, network_g=None, fill=None, score=None, recipe=None, dest_dir=SOURCE_DIR,
         registry_file=REGISTRY_FILE, readme=README, param_key=None):
    """Export ``src`` as the shipped ``name`` into ``dest_dir`` and register it; returns its sha256."""
    from basicsr_denoise.utils.options import load_yaml
    if opt_path:
        opt = load_yaml(opt_path)
        network_g = network_g or opt.get('network_g')
        if opt.get('score') and score is None:
            score = {k: v for k, v in opt['score'].items() if k not in ('tile_size', 'tile_overlap')}
        if opt.get('fill') and fill is None:
            fill = {k: v for k, v in opt['fill'].items() if k != 'progress'}
    dst = osp.join(dest_dir, name)
    # src may be dst: it is read whole before dst is replaced atomically
    sha = export_checkpoint(src, dst, network_g=network_g, fill=fill, score=score, param_key=param_key)
    update_registry(name, sha, recipe, registry_file)
    update_readme(name, sha, os.path.getsize(dst), readme)
    return sha


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='Training checkpoint (experiments/<name>/models/net_g_<iter>.pth) '
                        'or a shipped one.')
    parser.add_argument('--name', required=True, help='File name to ship, e.g. N2S_gauss25_color_ours.pth.')
    parser.add_argument('-opt', '--opt', default=None, help='Option file giving network_g and the fill/score block.')
    parser.add_argument('--network', default=None, help='network_g as a YAML block (instead of -opt).')
    parser.add_argument('--fill', default=None, help='MPI fill defaults as a YAML block.')
    parser.add_argument('--score', default=None, help='Noise2Score score defaults as a YAML block.')
    parser.add_argument('--recipe', default=None, help='The training option file (kept in the registry).')
    parser.add_argument('--param-key', default=None, choices=['params', 'params_ema'],
                        help='Weights to ship. Default: params_ema when the checkpoint has them, else params.')
    args = parser.parse_args(argv)
    sha = exit_on_user_error(ship, args.src, args.name, args.opt, _block(args.network, '--network'),
                             _block(args.fill, '--fill'), _block(args.score, '--score'), args.recipe,
                             param_key=args.param_key)
    print(f'{args.name}: sha256 {sha} (registry and README updated)')
    return sha


if __name__ == '__main__':
    main()
