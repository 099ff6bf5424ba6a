"""Strict means strict: every key that an option schema accepts is read somewhere in the package (outside the
schema definitions), or is rejected when set."""

import ast
import os
import re

import pytest

from _framework import REPO

_SCHEMA_NAME = re.compile(r'(_SCHEMA|FIELDS|_DOCS|option_schema)$')


def _leaves(schema, prefix=''):
    for k, v in schema.items():
        yield f'{prefix}{k}', k
        if isinstance(v, dict):
            yield from _leaves(v, f'{prefix}{k}.')


def _uses():
    """Every string constant, attribute name and keyword name of the package, outside schema definitions."""
    seen = set()
    for folder, _, files in os.walk(os.path.join(REPO, 'basicsr_denoise')):
        for f in files:
            if not f.endswith('.py'):
                continue
            tree = ast.parse(open(os.path.join(folder, f), encoding='utf-8').read())
            skip = set()
            for node in ast.walk(tree):
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(isinstance(t, ast.Name) and _SCHEMA_NAME.search(t.id) for t in targets):
                        skip.update(id(n) for n in ast.walk(node.value))
            for node in ast.walk(tree):
                if id(node) in skip:
                    continue
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    seen.update([node.value, *node.value.split('.')])  # 'logger.wandb' reads wandb too
                elif isinstance(node, ast.Attribute):
                    seen.add(node.attr)
                elif isinstance(node, ast.keyword) and node.arg:
                    seen.add(node.arg)
    return seen


def _schemas():
    from basicsr_denoise.inference import SCORE_SCHEMA
    from basicsr_denoise.models.masked_pretrain_model import PRETRAIN_SCHEMA
    from basicsr_denoise.mpi.fill_config import FILL_SCHEMA
    from basicsr_denoise.utils.options import BASE_SCHEMA, LOADER_SCHEMA
    return {'options': BASE_SCHEMA, 'datasets.<phase>': LOADER_SCHEMA, 'fill': FILL_SCHEMA, 'score': SCORE_SCHEMA,
            'train.mask': PRETRAIN_SCHEMA}


def test_every_schema_key_is_read_somewhere():
    uses = _uses()
    unread = [f'{name}: {dotted}' for name, schema in _schemas().items() for dotted, key in _leaves(schema)
              if key not in uses]
    assert not unread, 'accepted but never read: ' + ', '.join(unread)


@pytest.mark.parametrize('override, match', [('scale=4', 'scale: must be 1'),
                                             ('datasets.test_1.prefetch_mode=cpu', 'prefetch_mode: not supported')])
def test_keys_that_are_not_implemented_are_rejected(override, match):
    from basicsr_denoise.utils.errors import OptionError
    from basicsr_denoise.utils.options import parse_options
    opt_file = os.path.join(REPO, 'options', 'test', 'Noise2Score', 'test_N2S_gauss25.yml')
    with pytest.raises(OptionError, match=match) as exc:
        parse_options(False, ['-opt', opt_file, '--force_yml', override])
    assert '\n' not in str(exc.value)
    opt, _ = parse_options(False, ['-opt', opt_file, '--force_yml', 'scale=1', 'datasets.test_1.prefetch_mode=~'])
    assert opt['scale'] == 1
