"""The inference layer and the public API: self-describing checkpoints, shipped weights, presets, image API,
one implementation behind test.py, the command and the API."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import basicsr_denoise as bd
from basicsr_denoise.archs import build_network
from basicsr_denoise.checkpoint import export_checkpoint, load_network, network_difference
from basicsr_denoise.inference import MPIDenoiser, N2SDenoiser, image_to_tensor
from basicsr_denoise.utils.errors import CheckpointError, OptionError
from basicsr_denoise.utils.img_util import imread, imwrite
from basicsr_denoise.utils.options import check_options, load_yaml
from basicsr_denoise.weights import SOURCE_DIR, resolve_weights

from _framework import REPO

TINY = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
        'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}}
TINY_FILL = {'iterations': 4, 'beta': 0.9, 'mask_ratio': [30, 30], 'pad_multiple': 1, 'progress': False}
ENV = {**os.environ, 'PYTHONPATH': REPO, 'OMP_NUM_THREADS': '1'}


@pytest.fixture
def tiny_weights(tmp_path):
    """A tiny masked network saved old-style (``{'params'}`` only) and self-describing."""
    torch.manual_seed(0)
    net = build_network(TINY)
    old = tmp_path / 'old.pth'
    torch.save({'params': net.state_dict()}, old)
    new = tmp_path / 'new.pth'
    export_checkpoint(str(old), str(new), network_g=TINY, fill=TINY_FILL)
    return str(old), str(new)


# ------------------------------------------------------------------------------ self-describing checkpoints
def test_self_describing_checkpoint_loads_without_options_and_matches_the_old_format(tiny_weights):
    old, new = tiny_weights
    assert set(torch.load(new, weights_only=True)) == {'params', 'network_g', 'fill'}
    x = torch.rand(1, 3, 20, 24)
    a = MPIDenoiser.from_pretrained(None, new, device='cpu')(x, 'img')  # architecture and fill from the file
    b = MPIDenoiser.from_pretrained(None, old, network_g=TINY, fill=TINY_FILL, device='cpu')(x, 'img')
    assert torch.equal(a, b)


def test_a_new_step_count_scales_the_large_image_steps_alike(tiny_weights, tmp_path):
    old, _ = tiny_weights
    path = tmp_path / 'shared.pth'
    export_checkpoint(old, str(path), network_g=TINY, fill={**TINY_FILL, 'adapt_iterations': 16})
    f = MPIDenoiser.from_pretrained(None, str(path), fill={'iterations': 2}, device='cpu').filler
    assert (f.iterations, f.adapt_iterations) == (2, 8)  # half the steps, half the adaptation
    f = MPIDenoiser.from_pretrained(None, str(path), fill={'iterations': 2, 'adapt_iterations': 5}, device='cpu').filler
    assert (f.iterations, f.adapt_iterations) == (2, 5)  # unless it is given too
    assert MPIDenoiser.from_pretrained(None, str(path), device='cpu').filler.adapt_iterations == 16
    quick = MPIDenoiser.from_pretrained('quick', device='cpu')  # the command's first line says what large images get
    f = quick.filler
    assert f'above {f.tile_size} px: {f.adapt_iterations} steps on {f.adapt_size}-px crops, {f.tile_passes} passes' \
        in quick.summary
    assert f"75 steps (200 from {f.by_area['pixels'][1]} px)" in quick.summary
    half = MPIDenoiser.from_pretrained('quick', fill={'iterations': 30}, device='cpu').filler  # photos: 200 -> 80
    assert (half.iterations, half.by_area['iterations'], half.for_area(10**6).iterations) == (30, 80, 80)
    own = MPIDenoiser.from_pretrained('quick', fill={'iterations': 30, 'by_area': None}, device='cpu').filler
    assert own.by_area is None and own.for_area(10**6).iterations == 30
    assert 'above' not in MPIDenoiser.from_pretrained('fast', device='cpu').summary  # the authors' tiles


def test_old_format_checkpoint_without_an_architecture_is_a_one_line_error(tiny_weights):
    old, _ = tiny_weights
    with pytest.raises(CheckpointError) as exc:
        load_network(old)
    msg = str(exc.value)
    assert old in msg and 'stores no network_g' in msg and '\n' not in msg
    with pytest.raises(CheckpointError, match='stores no network_g'):
        N2SDenoiser.from_pretrained(old, device='cpu')  # Noise2Score never guesses from key names


@pytest.mark.slow  # a subprocess
def test_mismatched_network_g_is_a_one_line_error(tiny_weights, tmp_path):
    _, new = tiny_weights
    other = {**TINY, 'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 4}}
    with pytest.raises(CheckpointError) as exc:
        load_network(new, network_g=other)
    msg = str(exc.value)
    assert new in msg and 'network_g.backbone.num_layers' in msg and '\n' not in msg
    assert network_difference(TINY, {**TINY, 'in_ch': 3}) is None  # defaults written out are the same network
    # through test.py: the option file's network_g against the checkpoint's
    data = tmp_path / 'lq'
    imwrite(np.full((24, 24, 3), 0.5, np.float32), str(data / 'a.png'))
    opt = {'name': 'mismatch', 'model_type': 'IterativeFillModel', 'num_gpu': 0, 'network_g': other,
           'path': {'pretrain_network_g': new}, 'fill': TINY_FILL,
           'datasets': {'test_1': {'name': 't', 'type': 'SingleImageDataset', 'dataroot_lq': str(data)}}}
    (tmp_path / 'm.yml').write_text(yaml.safe_dump(opt))
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'basicsr_denoise', 'test.py'), '-opt',
                           str(tmp_path / 'm.yml')], cwd=str(tmp_path), env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]  # the log precedes it; the error is one line
    assert last.startswith('error: ') and new in last and 'num_layers' in last and 'Traceback' not in proc.stderr


def test_training_checkpoints_describe_themselves(tmp_path):
    from basicsr_denoise.models import build_model
    opt = check_options({'name': 't', 'model_type': 'MaskedPretrainModel', 'num_gpu': 0, 'network_g': TINY,
                         'train': {'mask': {'mask_ratio': [40, 40]}}}, False)
    opt['path'].update(models=str(tmp_path))
    model = build_model(opt)
    model.save_network(model.net_g, 'net_g', 1)
    ckpt = torch.load(tmp_path / 'net_g_1.pth', weights_only=True)
    assert ckpt['network_g'] == TINY and ckpt['fill'] == {'mask_ratio': [40, 40]}
    den = MPIDenoiser.from_pretrained(None, str(tmp_path / 'net_g_1.pth'), fill={'iterations': 1}, device='cpu')
    assert den.filler.sampler.ratio == (40, 40)  # the pre-training ratio is the filling default


def test_tampered_shipped_checkpoint_fails_its_sha256(tmp_path, monkeypatch):
    src = os.path.join(SOURCE_DIR, 'N2S_gauss25_color_ours.pth')
    bad = tmp_path / 'N2S_gauss25_color_ours.pth'
    data = bytearray(open(src, 'rb').read())
    data[-100] ^= 0xFF  # one flipped byte inside the weights
    bad.write_bytes(bytes(data))
    monkeypatch.setenv('BASICSR_DENOISE_WEIGHTS', str(tmp_path))  # searched first
    with pytest.raises(CheckpointError) as exc:
        resolve_weights('N2S_gauss25_color_ours.pth')
    msg = str(exc.value)
    assert str(bad) in msg and 'sha256' in msg and 'does not match' in msg and '\n' not in msg
    with pytest.raises(CheckpointError, match='sha256'):
        bd.denoise(np.zeros((40, 40, 3), np.uint8), method='n2s', sigma=25, device='cpu')
    monkeypatch.delenv('BASICSR_DENOISE_WEIGHTS')
    assert resolve_weights('N2S_gauss25_color_ours.pth') == src  # the intact one


# ------------------------------------------------------------------------------ presets and options
def test_presets_are_defined_once_and_the_option_files_inherit_them():
    from basicsr_denoise.presets import MPI_PRESETS, load_preset
    expected = {'quick': (75, 0.9, 30, 1), 'gauss': (1000, 0.99, 30, 1), 'fast': (200, 0.9, 30, 1),
                'real': (1000, 0.99, 85, 1), 'real-fast': (200, 0.9, 85, 1), 'sidd': (800, 0.99, 90, 2),
                'sidd-fast': (200, 0.9, 90, 2)}
    assert set(MPI_PRESETS) == set(expected)
    for name, (it, beta, ratio, shuffle) in expected.items():
        f = load_preset(name)['fill']
        assert (f['iterations'], f['beta'], f['mask_ratio'], f['shuffle']) == (it, beta, [ratio, ratio], shuffle)
    folder = os.path.join(REPO, 'options', 'test', 'MPI')
    for name in os.listdir(folder):
        raw = yaml.safe_load(open(os.path.join(folder, name)))
        assert raw['_base_'].startswith('mpi_') and not {'network_g', 'fill'} & set(raw), name  # nothing repeated
        opt = load_yaml(os.path.join(folder, name))
        assert opt['fill'] == load_preset(raw['_base_'])['fill']


def test_base_inheritance_overrides_block_by_block_and_refuses_loops(tmp_path):
    (tmp_path / 'a.yml').write_text('_base_: mpi_sidd\nfill: {iterations: 7}\n')
    opt = load_yaml(str(tmp_path / 'a.yml'))
    assert opt['fill']['iterations'] == 7 and opt['fill']['shuffle'] == 2 and opt['network_g']['type'] == 'MaskedNet'
    (tmp_path / 'b.yml').write_text('_base_: c.yml\n')
    (tmp_path / 'c.yml').write_text('_base_: b.yml\n')
    with pytest.raises(OptionError, match='includes itself'):
        load_yaml(str(tmp_path / 'b.yml'))
    with pytest.raises(OptionError, match='unknown preset'):
        bd.load_denoiser('mpi', preset='nope')


@pytest.mark.parametrize('key,value,match', [
    ('dist_params', {'port': 4500}, 'dist_params.port: not supported: torchrun sets'),
    ('logger', {'wandb': {'project': 'x'}}, 'logger.wandb: not supported'),
    ('val', {'metrics': {'psnr': {'type': 'calculate_psnr', 'better': 'smaller'}}}, 'val.metrics.psnr.better'),
])
def test_accepted_but_unused_keys_are_refused(key, value, match):
    with pytest.raises(OptionError, match=match):
        check_options({'name': 'x', 'model_type': 'IterativeFillModel', key: value}, False, source='f.yml')


def test_metric_better_lower_is_tracked():
    from basicsr_denoise.models.base_model import BaseModel

    model = BaseModel.__new__(BaseModel)
    model.best_metric_results, model.logger = {}, type('L', (), {'info': lambda self, m: None})()
    metrics = {'dist': {'type': 'calculate_psnr', 'better': 'lower'}, 'psnr': {'type': 'calculate_psnr'}}
    for it, (d, p) in enumerate([(5.0, 20.0), (3.0, 19.0), (4.0, 21.0)]):
        model._log_validation('v', it, {'dist': d, 'psnr': p}, metrics, None)
    assert model.best_metric_results['v']['dist'] == {'val': 3.0, 'iter': 1}
    assert model.best_metric_results['v']['psnr'] == {'val': 21.0, 'iter': 2}


@pytest.mark.parametrize('key,value', [('bn_mode', 'training'), ('autocast', 'fp8')])
def test_bad_fill_option_is_a_one_line_error(tmp_path, tiny_weights, key, value):
    _, new = tiny_weights
    with pytest.raises(OptionError) as exc:
        MPIDenoiser.from_pretrained(None, new, fill={key: value}, device='cpu')
    assert f'fill.{key}' in str(exc.value) and new in str(exc.value) and '\n' not in str(exc.value)


@pytest.mark.slow  # a subprocess
def test_a_broken_noise_or_loss_module_breaks_only_itself():
    code = ('import sys; sys.modules["basicsr_denoise.noise.speckle"] = None; '
            'sys.modules["basicsr_denoise.losses.masked_loss"] = None\n'
            'from basicsr_denoise.noise import Gaussian, build_noise\n'
            'from basicsr_denoise.losses import L1Loss, build_loss\n'
            'print(build_noise({"type": "Gaussian", "sigma": 5}).param, type(build_loss({"type": "L1Loss"})).__name__)')
    proc = subprocess.run([sys.executable, '-c', code], env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['5.0', 'L1Loss']
    assert 'skipped module basicsr_denoise.noise.speckle' in proc.stderr


# ------------------------------------------------------------------------------ the image API
@pytest.mark.parametrize('kind', ['uint8_hwc', 'uint16_hw', 'float_chw', 'tensor_chw', 'rgba_uint8'])
def test_image_api_returns_the_input_type_layout_and_range(kind):
    rng = np.random.default_rng(0)
    img = {'uint8_hwc': rng.integers(0, 256, (36, 44, 3), dtype=np.uint8),
           'uint16_hw': rng.integers(0, 65536, (36, 44), dtype=np.uint16),
           'float_chw': rng.random((3, 36, 44), dtype=np.float32),
           'tensor_chw': torch.rand(3, 36, 44, dtype=torch.float64),
           'rgba_uint8': rng.integers(0, 256, (36, 44, 4), dtype=np.uint8)}[kind]
    x, restore = image_to_tensor(img)
    assert x.shape == ((1, 1, 36, 44) if kind == 'uint16_hw' else (1, 3, 36, 44)) and x.dtype == torch.float32
    back = restore(x)  # the identity round trip is exact
    if torch.is_tensor(img):
        assert torch.is_tensor(back) and back.dtype == img.dtype and torch.allclose(back, img, atol=1e-6)
    else:
        assert back.dtype == img.dtype and back.shape == img.shape
        np.testing.assert_allclose(back, img, atol=1e-6 if back.dtype.kind == 'f' else 0)
    gray = kind == 'uint16_hw'  # the shipped Noise2Score network is colour; MPI fills gray images too
    out = bd.denoise(img, method='mpi' if gray else 'n2s', sigma=None if gray else 25, iterations=1 if gray else None,
                     device='cpu')
    assert type(out) is type(img) and out.shape == img.shape and out.dtype == img.dtype
    if kind == 'rgba_uint8':
        np.testing.assert_array_equal(out[..., 3], img[..., 3])  # alpha passes through


def test_image_api_refuses_bad_arrays_in_one_line():
    for bad, match in ((np.zeros((5, 6, 7), np.uint8), 'expected'), (np.zeros((8, 8), np.int32), 'dtype'),
                       (np.full((8, 8), np.nan, np.float32), 'NaN')):
        with pytest.raises(Exception, match=match) as exc:
            image_to_tensor(bad)
        assert '\n' not in str(exc.value)


@pytest.mark.slow  # a subprocess
def test_import_adds_no_logging_handler_and_the_api_logs_nothing():
    code = ('import logging, numpy as np, basicsr_denoise as bd\n'
            'out = bd.denoise(np.full((40, 40, 3), 128, np.uint8), iterations=1, device="cpu")\n'
            'print(len(logging.getLogger("basicsr_denoise").handlers), len(logging.getLogger().handlers), out.dtype)')
    proc = subprocess.run([sys.executable, '-c', code], env=ENV, capture_output=True, text=True, timeout=300,
                          cwd='/')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['0', '0', 'uint8'] and proc.stderr == ''


# ------------------------------------------------------------------------------ one implementation
def test_test_py_command_and_api_give_the_same_output_bit_for_bit(tmp_path, tiny_weights):
    """The same image, weights and seed through test.py, basicsr-denoise and bd.denoise: identical pixels."""
    from basicsr_denoise.test import test_pipeline
    _, weights = tiny_weights
    rng = np.random.default_rng(3)
    noisy = rng.integers(0, 256, (30, 34, 3), dtype=np.uint8)
    folder = tmp_path / 'noisy'
    folder.mkdir()
    import cv2
    cv2.imwrite(str(folder / 'photo.png'), noisy[..., ::-1])
    opt = {'name': 'same', 'model_type': 'IterativeFillModel', 'num_gpu': 0,
           'datasets': {'test_1': {'name': 't', 'type': 'SingleImageDataset', 'dataroot_lq': str(folder)}},
           'path': {'pretrain_network_g': weights}, 'network_g': TINY, 'fill': {**TINY_FILL, 'seed': 5},
           'val': {'save_img': True, 'save_format': 'png'}}
    (tmp_path / 'o.yml').write_text(yaml.safe_dump(opt))
    test_pipeline(root_path=str(tmp_path), argv=['-opt', str(tmp_path / 'o.yml')])
    from_test = imread(tmp_path / 'results' / 'same' / 'visualization' / 't' / 'photo.png', float32=False)
    from basicsr_denoise.cli import main
    main([str(folder), '-o', str(tmp_path / 'cli'), '--weights', weights, '--seed', '5', '--device', 'cpu',
          '--preset', 'fast', '--iterations', '4'])
    from_cli = imread(tmp_path / 'cli' / 'photo_denoised.png', float32=False)
    from_api = bd.denoise(noisy, weights=weights, preset=None, seed=5, name='photo', device='cpu')
    np.testing.assert_array_equal(from_test, from_cli)
    np.testing.assert_array_equal(from_cli, from_api)
    assert from_api.dtype == np.uint8 and not np.array_equal(from_api, noisy)


def test_score_model_and_api_agree(tmp_path):
    from basicsr_denoise.models import build_model
    src = os.path.join(SOURCE_DIR, 'N2S_gauss25_color_ours.pth')
    opt = check_options(load_yaml(os.path.join(REPO, 'options', 'test', 'Noise2Score', 'test_N2S_gauss25.yml')),
                        False)
    opt['num_gpu'] = 0
    model = build_model(opt)
    y = torch.rand(1, 3, 40, 52)
    model.feed_data({'lq': y})
    model.test()
    den = bd.load_denoiser('n2s', weights=src, sigma=25, device='cpu')
    assert torch.equal(den(y), model.output)


# ------------------------------------------------------------------------------ the README's Python examples
def _readme_python_blocks():
    text = open(os.path.join(REPO, 'README.md'), encoding='utf-8').read()
    section = text.split('### From Python', 1)[1].split('\n## ', 1)[0]
    return [b.split('```', 1)[0] for b in section.split('```python\n')[1:]]


@pytest.mark.slow  # a subprocess
def test_readme_from_python_examples_run(tmp_path):
    blocks = _readme_python_blocks()
    assert len(blocks) >= 2
    shutil.copy(os.path.join(REPO, 'datasets', 'samples', 'kodim05_crop.png'), tmp_path / 'photo.png')
    for block in blocks:
        # the examples' step counts stay as written; only the device is pinned so the test runs anywhere
        code = block.replace("device='auto'", "device='cpu'")
        proc = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), env=ENV, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f'{block}\n{proc.stderr[-2000:]}'


@pytest.mark.slow  # a subprocess
def test_package_exports_the_api_lazily():
    code = 'import sys, basicsr_denoise as bd; print("torch" in sys.modules, callable(bd.denoise), bd.MPIDenoiser)'
    proc = subprocess.run([sys.executable, '-c', code], env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split()[:2] == ['False', 'True'] and 'MPIDenoiser' in proc.stdout
    assert json.loads(json.dumps(sorted(bd.__all__)))[:2] == ['Denoiser', 'MPIDenoiser']


def test_api_docstring_examples_run():
    import doctest

    from basicsr_denoise import inference
    result = doctest.testmod(inference, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6 and result.failed == 0


def test_export_ships_the_ema_weights_of_a_training_checkpoint(tmp_path):
    from basicsr_denoise.checkpoint import read_checkpoint
    torch.manual_seed(0)
    a, b = build_network(TINY).state_dict(), build_network(TINY).state_dict()
    torch.save({'params': a, 'params_ema': b}, tmp_path / 'net_g_10.pth')  # what training writes with ema_decay
    sha = export_checkpoint(str(tmp_path / 'net_g_10.pth'), str(tmp_path / 'out.pth'), network_g=TINY,
                            score=None, fill={'iterations': 5})
    sd, meta = read_checkpoint(str(tmp_path / 'out.pth'))
    assert all(torch.equal(sd[k], b[k]) for k in b) and meta == {'network_g': TINY, 'fill': {'iterations': 5}}
    from basicsr_denoise.weights import sha256_of
    assert sha == sha256_of(str(tmp_path / 'out.pth'))
    with pytest.raises(CheckpointError, match='not plain data'):
        export_checkpoint(str(tmp_path / 'net_g_10.pth'), str(tmp_path / 'bad.pth'), network_g=TINY,
                          fill={'lr': torch.tensor(1.0)})
    with pytest.raises(CheckpointError, match='does not fit'):
        export_checkpoint(str(tmp_path / 'net_g_10.pth'), str(tmp_path / 'bad.pth'),
                          network_g={**TINY, 'in_ch': 1})


def test_ship_checkpoint_tool_writes_file_registry_and_readme_row(tmp_path):
    from _framework import load_tool
    tool = load_tool('ship_checkpoint')
    from basicsr_denoise.weights import REGISTRY_FILE
    registry_file, readme = tmp_path / 'registry.json', tmp_path / 'README.md'
    shutil.copy(REGISTRY_FILE, registry_file)
    shutil.copy(os.path.join(SOURCE_DIR, 'README.md'), readme)
    torch.manual_seed(0)
    net = {'type': 'N2NUNet', 'num_in_ch': 1, 'num_out_ch': 1}
    torch.save({'params': build_network(net).state_dict()}, tmp_path / 'net_g_5.pth')
    opt = tmp_path / 'opt.yml'
    opt.write_text(yaml.safe_dump({'network_g': net, 'score': {'noise': {'type': 'Gaussian', 'sigma': 15},
                                                               'tile_size': 0}}))
    sha = tool.ship(str(tmp_path / 'net_g_5.pth'), 'N2S_gray_new.pth', str(opt), recipe='train.yml',
                    dest_dir=str(tmp_path), registry_file=str(registry_file), readme=str(readme))
    assert json.load(open(registry_file))['N2S_gray_new.pth'] == {'sha256': sha, 'recipe': 'train.yml'}
    assert f'| `N2S_gray_new.pth` | `{sha}` |' in readme.read_text()
    meta = torch.load(tmp_path / 'N2S_gray_new.pth', weights_only=True)
    assert meta['network_g'] == net and meta['score'] == {'noise': {'type': 'Gaussian', 'sigma': 15}}
    den = N2SDenoiser.from_pretrained(str(tmp_path / 'N2S_gray_new.pth'), sigma=15, device='cpu')
    assert den.channels == 1 and den.noise.sigma == 15


@pytest.mark.slow  # a subprocess
def test_readme_command_examples_run(tmp_path):
    """Every command of "Denoise your own photos", on two small photos; MPI with 2 steps instead of its preset's."""
    import shlex
    text = open(os.path.join(REPO, 'README.md'), encoding='utf-8').read()
    section = text.split('## Denoise your own photos', 1)[1].split('### From Python', 1)[0]
    lines = ' '.join(b.split('```', 1)[0] for b in section.split('```bash\n')[1:]).replace('\\\n', ' ')
    commands = [shlex.split(line.split('  #')[0]) for line in lines.split('\n') if line.strip()]
    assert len(commands) >= 8
    photos = tmp_path / 'photos'
    rng = np.random.default_rng(0)
    for name in ('a', 'b'):
        imwrite(rng.random((40, 48, 3)).astype(np.float32), str(photos / f'{name}.png'))
    imwrite(rng.random((40, 48, 3)).astype(np.float32), str(tmp_path / 'IMG_0042.png'))
    reference = os.path.join(os.environ.get('BASICSR_DENOISE_SHARED', os.path.join(REPO, os.pardir, 'shared')),
                             'reference', 'mpi_official')
    ran = 0
    for k, cmd in enumerate(commands):
        argv = []
        for tok in cmd:
            if tok == 'basicsr-denoise':
                argv += [sys.executable, '-m', 'basicsr_denoise']
            elif tok == 'torchrun':
                argv += [sys.executable, '-m', 'torch.distributed.run']
            elif tok.startswith('--nproc_per_node='):
                argv.append('--nproc_per_node=2')  # a 2-core machine
            elif tok in ('my_photos/', 'phone_shots/'):
                argv.append(str(photos))
            elif tok == 'denoised/':
                argv.append(str(tmp_path / ('out' if '--skip-existing' in cmd else f'out{k}')))
            elif tok.startswith('imgnet_'):
                argv.append(os.path.join(reference, tok))
            else:
                argv.append(tok)
        if any(tok.startswith(reference) and not os.path.isfile(tok) for tok in argv):
            continue  # the authors' weights are not here
        if '--skip-existing' in cmd:  # a first run to continue from
            subprocess.run(argv[:argv.index('--skip-existing')] + ['--iterations', '2'], cwd=str(tmp_path), env=ENV,
                           capture_output=True, timeout=300, check=True)
        if 'n2s' not in cmd:
            argv += ['--iterations', '2']
        proc = subprocess.run(argv, cwd=str(tmp_path), env=ENV, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f'{cmd}\n{proc.stderr[-2000:]}'
        assert 'done: ' in proc.stdout, cmd
        ran += 1
    assert ran >= 6


def test_unknown_keys_of_fill_and_score_blocks_are_one_line_errors(tiny_weights):
    _, new = tiny_weights
    with pytest.raises(OptionError, match=r'fill\.iteration: unknown option key'):
        MPIDenoiser.from_pretrained(None, new, fill={'iteration': 3}, device='cpu')
    with pytest.raises(OptionError, match=r'score\.blind_metod: unknown option key'):
        N2SDenoiser.from_pretrained(score={'blind_metod': 'mad'}, device='cpu')


def test_n2s_without_sigma_estimates_it_even_if_the_checkpoint_was_saved_with_a_known_level():
    den = bd.load_denoiser('n2s', device='cpu')  # the shipped file's score block says blind: false
    assert den.level is None and 'estimated per image' in den.summary
    y = torch.rand(1, 3, 48, 48)
    _, record = den.process(y, 'x')
    assert record['model'] == 'N2S_gauss25_color_ours.pth' and 5 <= record['sigma_hat'] <= 55
    assert set(record) <= {'model', 'sigma_hat', 'warning'}
    inner = den.denoiser_for(den.models[0])
    assert inner.blind and inner.blind_method == 'tv_golden'
    known = bd.load_denoiser('n2s', sigma=30, device='cpu')
    inner = known.denoiser_for(known.models[0])
    assert known.level == 30 and not inner.blind and inner.noise.sigma == 30
