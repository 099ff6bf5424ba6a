"""Option files: validation, required keys, both override syntaxes, safe parsing, no side effects."""

import os

import pytest
import yaml

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.options import apply_override, parse_options, parse_override

from _framework import REPO as REPO_ROOT, train_options, write_options, write_plugin  # noqa: E402


@pytest.fixture
def opt_file(tmp_path, monkeypatch):
    write_plugin(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    return write_options(train_options(tmp_path), tmp_path / 'train.yml')


def test_parse_fills_paths_and_has_no_side_effects(opt_file, tmp_path):
    before = sorted(os.listdir(tmp_path))
    opt, args = parse_options(True, ['-opt', opt_file])
    assert sorted(os.listdir(tmp_path)) == before  # no folder created, nothing written
    assert opt['path']['models'] == str(tmp_path / 'experiments' / 'tiny' / 'models')
    assert opt['path']['training_states'].endswith(os.path.join('tiny', 'training_states'))
    assert opt['is_train'] and not opt['auto_resume'] and args.launcher == 'none'


def test_both_override_syntaxes(opt_file):
    opt, _ = parse_options(True, ['-opt', opt_file, '--force_yml', 'train:total_iter=11',
                                  'train.optim_g.lr=3e-4', 'train.scheduler.T_max=[5]', 'path.pretrain_network_g=~'])
    assert opt['train']['total_iter'] == 11
    assert opt['train']['optim_g']['lr'] == pytest.approx(3e-4) and isinstance(opt['train']['optim_g']['lr'], float)
    assert opt['path']['pretrain_network_g'] is None


def test_override_values_are_yaml_not_code():
    keys, value = parse_override('a:b=__import__("os").system("echo hacked")')
    assert keys == ['a', 'b'] and value == '__import__("os").system("echo hacked")'
    assert parse_override('x.y=[1, 2]') == (['x', 'y'], [1, 2])
    assert parse_override('x=true') == (['x'], True)
    assert parse_override('x=~') == (['x'], None)


@pytest.mark.parametrize('text,match', [
    ('train:total_iter', 'expected KEY=VALUE'),
    ('a::b=1', 'empty key'),
    ('a=[1, 2', 'not valid YAML'),
])
def test_bad_override_syntax(text, match):
    with pytest.raises(OptionError, match=match):
        apply_override({}, text)


def test_override_through_a_value_is_an_error():
    with pytest.raises(OptionError, match="'train.total_iter' is a value, not a block"):
        apply_override({'train': {'total_iter': 5}}, 'train.total_iter.x=1')


def test_unknown_key_names_file_and_key(opt_file):
    with pytest.raises(OptionError) as err:
        parse_options(True, ['-opt', opt_file, '--force_yml', 'train.totl_iter=3'])
    msg = str(err.value)
    assert msg.startswith(opt_file + ': train.totl_iter: unknown option key') and '\n' not in msg


@pytest.mark.parametrize('override,match', [
    ('network_g.num_feats=3', 'network_g.num_feats: unknown option key for TinyPluginNet'),
    ('network_g.type=NoSuchNet', "network_g.type: unknown arch type 'NoSuchNet'"),
    ('datasets.train.dataroot_gtt=x', 'datasets.train.dataroot_gtt: unknown option key for PairedImageDataset'),
    ('datasets.train.batch_size_per_gpu=two', 'datasets.train.batch_size_per_gpu: expected int'),
    ('train.pixel_opt.type=L3Loss', "train.pixel_opt.type: unknown loss type 'L3Loss'"),
    ('train.optim_g.type=Adamm', "train.optim_g.type: unknown type 'Adamm'"),
    ('train.optim_g.lrr=1', 'train.optim_g.lrr: unknown option key for Adam'),
    ('train.total_iter=1.5', 'train.total_iter: expected int'),
    ('model_type=NoModel', "model_type: unknown model type 'NoModel'"),
    ('datasets.foo={type: PairedImageDataset}', 'datasets.foo: dataset keys must be train, val'),
])
def test_bad_options_give_one_line_errors(opt_file, override, match):
    with pytest.raises(OptionError, match=match) as err:
        parse_options(True, ['-opt', opt_file, '--force_yml', override])
    assert '\n' not in str(err.value) and opt_file in str(err.value)


def test_required_keys(tmp_path, opt_file):
    opt = yaml.safe_load(open(opt_file))
    del opt['train']['total_iter']
    path = write_options(opt, tmp_path / 'noiter.yml')
    with pytest.raises(OptionError, match='train.total_iter: required for training'):
        parse_options(True, ['-opt', path])
    opt = yaml.safe_load(open(opt_file))
    del opt['model_type']
    path = write_options(opt, tmp_path / 'nomodel.yml')
    with pytest.raises(OptionError, match='model_type: required option key is missing'):
        parse_options(True, ['-opt', path])


def test_tilde_is_none_and_yaml11_floats(tmp_path, opt_file):
    text = open(opt_file).read() + '\nval: ~\n'
    text = text.replace('lr: 0.01', 'lr: 2e-3')
    path = tmp_path / 'floats.yml'
    path.write_text(text)
    opt, _ = parse_options(True, ['-opt', str(path)])
    assert opt['train']['optim_g']['lr'] == 2e-3 and opt['val'] == {}


def test_unsafe_yaml_is_refused(tmp_path):
    path = tmp_path / 'evil.yml'
    path.write_text('name: !!python/object/apply:os.system ["echo hacked"]\nmodel_type: DenoiseModel\n')
    with pytest.raises(OptionError, match='invalid YAML'):
        parse_options(True, ['-opt', str(path)])


def test_missing_option_file():
    with pytest.raises(OptionError, match='option file not found: nope.yml'):
        parse_options(True, ['-opt', 'nope.yml'])


def test_debug_flag(opt_file):
    opt, _ = parse_options(True, ['-opt', opt_file, '--debug'])
    assert opt['name'] == 'debug_tiny' and opt['logger']['print_freq'] == 1


@pytest.mark.parametrize('path', sorted(
    os.path.relpath(os.path.join(d, f), REPO_ROOT) for d, _, fs in os.walk(os.path.join(REPO_ROOT, 'options'))
    for f in fs if f.endswith('.yml')))
def test_every_shipped_option_file_validates(path):
    """Each option file in options/ passes the full schema check (keys, types, registry blocks)."""
    from basicsr_denoise.utils.options import check_options, load_yaml
    full = os.path.join(REPO_ROOT, path)
    opt = check_options(load_yaml(full), is_train=path.startswith(os.path.join('options', 'train')), source=full)
    assert opt['name'] and opt['model_type'] in ('IterativeFillModel', 'MaskedPretrainModel',
                                                 'ScoreModel')
