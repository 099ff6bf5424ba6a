"""Image I/O: bit depths, formats, channel order, errors, tensor conversion and comparison panels."""

import os

import cv2
import numpy as np
import pytest
import torch

from basicsr_denoise.utils.errors import DataError
from basicsr_denoise.utils.img_util import (IMG_EXTENSIONS, img2tensor, imread, imwrite, is_image_file,
                                            make_comparison, scandir, tensor2img)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def _rgb8(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png8_rgb_order_and_scale(tmp_path):
    rgb = _rgb8()
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, rgb[..., ::-1])  # OpenCV writes BGR
    img = imread(path)
    assert img.dtype == np.float32 and img.shape == (5, 7, 3)
    np.testing.assert_array_equal(img, rgb.astype(np.float32) / 255.)
    np.testing.assert_array_equal(imread(path, float32=False), rgb)


@pytest.mark.parametrize('ext', ['.png', '.tif', '.tiff'])
def test_16bit_read_and_write(tmp_path, ext):
    rgb16 = np.random.default_rng(1).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    path = str(tmp_path / f'a{ext}')
    cv2.imwrite(path, rgb16[..., ::-1])
    img = imread(path)
    np.testing.assert_allclose(img, rgb16.astype(np.float32) / 65535., rtol=0, atol=1e-7)
    out = str(tmp_path / f'b{ext}')
    imwrite(img, out, bit_depth=16)
    np.testing.assert_array_equal(cv2.imread(out, cv2.IMREAD_UNCHANGED)[..., ::-1], rgb16)


def test_gray_and_bmp_jpeg(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    cv2.imwrite(str(tmp_path / 'g.png'), gray)
    img = imread(tmp_path / 'g.png')
    assert img.shape == (4, 5, 1)
    np.testing.assert_array_equal(img[..., 0], gray / np.float32(255.))
    cv2.imwrite(str(tmp_path / 'c.bmp'), _rgb8()[..., ::-1])
    np.testing.assert_array_equal(imread(tmp_path / 'c.bmp', float32=False), _rgb8())
    flat = np.full((16, 16, 3), (200, 40, 10), np.uint8)  # RGB; JPEG keeps a flat colour almost exactly
    cv2.imwrite(str(tmp_path / 'c.JPG'), flat[..., ::-1])
    got = imread(tmp_path / 'c.JPG', float32=False).astype(int)
    assert np.abs(got - flat).max() <= 3


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 0  # RGB values, fully transparent
    cv2.imwrite(str(tmp_path / 'a.png'), rgba[..., [2, 1, 0, 3]])  # BGRA
    img = imread(tmp_path / 'a.png', float32=False)
    assert img.shape == (3, 4, 3)
    np.testing.assert_array_equal(img[0, 0], [10, 20, 30])


def test_npy_float_unclipped_and_layouts(tmp_path):
    arr = np.array([[-0.5, 0.25], [1.5, 1.0]], dtype=np.float64)
    np.save(tmp_path / 'hw.npy', arr)
    img = imread(tmp_path / 'hw.npy')
    assert img.shape == (2, 2, 1) and img.dtype == np.float32
    np.testing.assert_array_equal(img[..., 0], arr.astype(np.float32))  # kept unclipped
    hwc = np.random.default_rng(0).normal(0.5, 0.3, (3, 4, 3)).astype(np.float32)
    imwrite(hwc, tmp_path / 'sub' / 'x.npy')
    np.testing.assert_array_equal(imread(tmp_path / 'sub' / 'x.npy'), hwc)


def test_npy_nan_names_file(tmp_path):
    np.save(tmp_path / 'bad.npy', np.array([[0.1, np.nan]], np.float32))
    with pytest.raises(DataError, match=r'bad\.npy.*NaN'):
        imread(tmp_path / 'bad.npy')


@pytest.mark.parametrize('content', [b'', b'not an image at all', None])
def test_unreadable_errors_name_the_file(tmp_path, content):
    path = tmp_path / 'broken.png'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        imread(path)
    msg = str(info.value)
    assert msg.startswith(f'cannot read image {path}:') and '\n' not in msg


def test_truncated_jpeg_is_an_error(tmp_path):
    ok, buf = cv2.imencode('.jpg', _rgb8(32, 32))
    (tmp_path / 't.jpg').write_bytes(buf.tobytes()[:len(buf) // 2])
    with pytest.raises(DataError, match='t.jpg'):
        imread(tmp_path / 't.jpg')


def test_unicode_path_roundtrip(tmp_path):
    img = _rgb8().astype(np.float32) / 255.
    path = tmp_path / 'bilder_äöü' / 'größe.png'
    imwrite(img, path)
    np.testing.assert_array_equal(imread(path), img)


def test_imwrite_clips_rounds_and_gray(tmp_path):
    img = np.array([[[-0.2, 0.5, 1.3], [0.001, 0.999, 0.5 / 255.]]], np.float32)  # (1, 2, 3) RGB
    imwrite(img, tmp_path / 'c.png')
    got = cv2.imread(str(tmp_path / 'c.png'))[..., ::-1]
    np.testing.assert_array_equal(got, [[[0, 128, 255], [0, 255, 1]]])
    imwrite(np.full((2, 3, 1), 0.5, np.float32), tmp_path / 'g.png')
    assert cv2.imread(str(tmp_path / 'g.png'), cv2.IMREAD_UNCHANGED).shape == (2, 3)
    with pytest.raises(ValueError, match='16-bit'):
        imwrite(img, tmp_path / 'c.jpg', bit_depth=16)


def test_tensor_roundtrip():
    img = np.random.default_rng(0).normal(0.5, 0.5, (4, 5, 3)).astype(np.float32)
    t = img2tensor(img)
    assert t.shape == (3, 4, 5) and t.dtype == torch.float32
    np.testing.assert_array_equal(tensor2img(t), img)  # float: unclipped
    np.testing.assert_array_equal(tensor2img(t[None]), img)
    u8 = tensor2img(t, out_type=np.uint8)
    np.testing.assert_array_equal(u8, np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8))
    np.testing.assert_allclose(tensor2img(t * 2 - 1, min_max=(-1, 1)), img, atol=1e-6)
    assert img2tensor(np.zeros((2, 3), np.float32)).shape == (1, 2, 3)


def test_scandir_and_extensions(tmp_path):
    for rel in ['b.PNG', 'a.npy', 'sub/c.tif', 'sub/d.txt', '.hidden.png']:
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b'x')
    assert list(scandir(tmp_path, IMG_EXTENSIONS)) == ['a.npy', 'b.PNG']
    assert list(scandir(tmp_path, IMG_EXTENSIONS, recursive=True)) == ['a.npy', 'b.PNG', 'sub/c.tif']
    assert list(scandir(tmp_path, '.txt', recursive=True, full_path=True)) == [os.path.join(str(tmp_path), 'sub/d.txt')]
    assert is_image_file('X.JPEG') and is_image_file('a.bmp') and not is_image_file('a.txt')


def test_make_comparison_mixes_gray_and_colour():
    col = np.full((20, 30, 3), 0.5, np.float32)
    gray = np.zeros((16, 30, 1), np.float32)
    out = make_comparison([col, gray, img2tensor(col)], ['noisy', 'denoised', 'clean'], label_height=12, gap=2)
    assert out.shape == (12 + 20, 30 * 3 + 2 * 2, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out[12:, :30], col)  # first panel unchanged below the strip
    assert out[:12, :30].max() > 0.9  # label text drawn in white on the strip
    np.testing.assert_array_equal(out[12 + 16:, 32:62], 0)  # shorter gray panel padded with black
    np.testing.assert_array_equal(out[:, 30:32], 1)  # white gap


def test_samples_are_small_clean_pngs():
    folder = os.path.join(REPO, 'datasets', 'samples')
    names = sorted(f for f in os.listdir(folder) if f.endswith('.png'))
    assert len(names) == 4
    assert sum(os.path.getsize(os.path.join(folder, n)) for n in names) < 2 * 1024 * 1024
    shapes = sorted(imread(os.path.join(folder, n)).shape for n in names)
    assert shapes == [(96, 128, 1), (128, 128, 3), (128, 128, 3), (128, 128, 3)]
