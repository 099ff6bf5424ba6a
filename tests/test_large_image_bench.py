"""benchmarks/large_image_bench.py: mosaic photo, the denoise command in a child process, the per-tile crop."""

import json

import numpy as np
import pytest

from basicsr_denoise.cli import read_input
from basicsr_denoise.utils.img_util import imwrite

from _framework import load_tool  # noqa: E402

tool = load_tool('large_image_bench')


@pytest.fixture
def images(tmp_path):
    """Three small 'Kodak' images, one of them portrait."""
    rng = np.random.default_rng(0)
    folder = tmp_path / 'kodak'
    folder.mkdir()
    for i, shape in enumerate([(48, 64, 3), (64, 48, 3), (48, 64, 3)]):
        imwrite((rng.random(shape) * 255).astype(np.uint8), str(folder / f'k{i}.png'))
    return folder


def test_mosaic_tiles_the_images_row_by_row_turning_portraits(images):
    mosaic = tool.build_mosaic(str(images), 150, 70)
    assert mosaic.shape == (70, 150, 3) and mosaic.dtype == np.float32
    first = read_input(str(images / 'k0.png'))[0]
    second = np.rot90(read_input(str(images / 'k1.png'))[0])
    assert np.array_equal(mosaic[:48, :64], first) and np.array_equal(mosaic[:48, 64:128], second)
    assert np.array_equal(mosaic[48:, :64], first[:22])  # the fourth tile wraps round to the first image


def test_photo_through_the_command_and_the_per_tile_crop(images, tmp_path):
    out = tmp_path / 'out'
    argv = ['--images', str(images), '--out', str(out), '--size', '96x80', '--crop', '64', '--iterations', '2',
            '--preset', 'fast']
    rep = tool.main(argv)
    photo = read_input(str(out / 'photo.png'))
    assert photo[1] == 16 and photo[0].shape == (80, 96, 3)  # a 16-bit photo, as a camera would hand it over
    assert read_input(str(out / 'photo' / 'photo_denoised.png'))[0].shape == (80, 96, 3)
    assert '-m basicsr_denoise.cli' in rep['photo']['command'] and '--preset fast' in rep['photo']['command']
    assert rep['photo']['seconds'] > 0 and 0 < rep['photo']['peak_rss_gb'] < 64
    assert rep['crop_per_tile']['fill']['large_mode'] == 'tiles' and rep['crop_per_tile']['fill']['tile_size'] == 64
    for value in (rep['photo']['psnr'], rep['photo']['crop_psnr'], rep['crop_per_tile']['psnr']):
        assert 5 < value < 60
    assert rep['crop_gain_db'] == pytest.approx(rep['photo']['crop_psnr'] - rep['crop_per_tile']['psnr'])
    assert json.loads((out / 'large_image.json').read_text()) == rep
    # a rerun keeps the finished steps (no second child process)
    (out / 'photo' / 'photo_denoised.png').unlink()
    assert tool.main(argv)['photo'] == rep['photo']
    with pytest.raises(SystemExit, match='holds a run with other arguments'):  # never mixed with another set-up
        tool.main(argv[:-1] + ['gauss'])


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match='--images: no images in'):
        tool.main(['--images', str(tmp_path), '--out', str(tmp_path / 'o')])
    with pytest.raises(SystemExit, match="--size: expected WIDTHxHEIGHT"):
        tool.main(['--images', str(tmp_path), '--size', '4000', '--out', str(tmp_path / 'o')])
    with pytest.raises(SystemExit, match='--crop: 1024 is larger than the photo'):
        tool.main(['--images', str(tmp_path), '--size', '800x600', '--out', str(tmp_path / 'o')])
