"""Photo I/O (utils/photo_io.py): EXIF orientation 1-8 on read, EXIF and ICC kept on write, HEIC with and
without the extra, the bit-depth and format rules, and the command's bad inputs as one-line errors."""

import io
import os
import sys

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from basicsr_denoise.cli import denoise_files, main
from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.img_util import PhotoWarning, imfrombytes, imread, imwrite
from basicsr_denoise.utils.photo_io import (PhotoInfo, check_quality, decode_photo, output_bit_depth,
                                            output_extension, read_photo, write_photo)

EXIF_IFD = 0x8769


def _heif():
    """pillow-heif, or a skip (CI installs the ``heif`` extra, so there a missing one fails)."""
    try:
        import pillow_heif
    except ImportError:
        if os.environ.get('CI') == 'true':
            raise
        pytest.skip("pillow-heif is not installed (pip install 'basicsr_denoise[heif]')")
    return pillow_heif


def _gradient(h=48, w=64):
    """Smooth RGB uint8 (JPEG keeps it within a few levels) with no symmetry, so every orientation differs."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + 2 * y) * 255 // (w + 2 * h - 3)],
                    axis=2).astype(np.uint8)


def _exif(orientation=1):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = 'PhoneCo', 'Phone 15'
    if orientation is not None:
        exif[0x0112] = orientation
    exif.get_ifd(EXIF_IFD)[0x829A] = 1 / 120  # ExposureTime
    exif.get_ifd(EXIF_IFD)[0x9003] = '2024:05:01 12:00:00'  # DateTimeOriginal
    return exif


def _p3_like_icc():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()


def _save(arr, fmt, orientation=None, icc=None, **kwargs):
    bio = io.BytesIO()
    extra = {'exif': _exif(orientation)} if orientation is not None else {}
    if icc:
        extra['icc_profile'] = icc
    Image.fromarray(arr).save(bio, format=fmt, **extra, **kwargs)
    return bio.getvalue()


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'TIFF'])
@pytest.mark.parametrize('orientation', range(1, 9))
def test_every_orientation_is_applied_on_read_as_pillow_shows_it(tmp_path, fmt, orientation):
    data = _save(_gradient(), fmt, orientation, quality=95)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert('RGB'))
    path = tmp_path / f'o{orientation}.{fmt.lower()}'
    path.write_bytes(data)
    img, info = read_photo(path)
    assert info.orientation == orientation and not info.warnings
    assert img.shape == expected.shape  # stored 64 x 48; 5-8 show 48 wide, 64 tall
    err = np.abs(img.astype(int) - expected).max()
    assert err <= (4 if fmt == 'JPEG' else 0)  # the two libjpeg builds may round differently
    assert imread(path).shape == expected.shape  # the API for file paths
    assert imfrombytes(data, str(path)).shape == expected.shape  # test.py's datasets
    kept = Image.Exif()
    kept.load(info.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == 'PhoneCo'


@pytest.mark.parametrize('orientation, warned', [(0, False), (9, True)])
def test_an_undefined_orientation_is_no_rotation_and_a_bad_one_a_warning(tmp_path, orientation, warned):
    path = tmp_path / 'a.jpg'
    path.write_bytes(_save(_gradient(), 'JPEG', orientation, quality=95))
    img, info = read_photo(path)
    assert img.shape == (48, 64, 3) and info.orientation == 1
    assert bool(info.warnings) == warned and all('orientation 9 is not 1-8' in w for w in info.warnings)


def test_phone_jpeg_orientation_6_comes_out_upright_with_exif_and_icc(tmp_path):
    icc = _p3_like_icc()
    src = tmp_path / 'phone.jpg'
    src.write_bytes(_save(_gradient(48, 64), 'JPEG', 6, icc, quality=95))  # stored 64 wide, 48 tall
    img, info = read_photo(src)
    assert img.shape == (64, 48, 3) and info.icc_profile == icc
    out = tmp_path / 'out.jpg'
    assert write_photo(img, out, info, quality=90) == []
    with Image.open(out) as pil:
        exif = pil.getexif()
        assert pil.size == (48, 64) and pil.info['icc_profile'] == icc
        assert exif[0x0112] == 1 and exif[0x0110] == 'Phone 15'
        assert exif.get_ifd(EXIF_IFD)[0x9003] == '2024:05:01 12:00:00'
        assert float(exif.get_ifd(EXIF_IFD)[0x829A]) == pytest.approx(1 / 120)


@pytest.mark.parametrize('ext,depth', [('.jpg', 8), ('.png', 8), ('.png', 16), ('.tif', 8)])
def test_exif_and_icc_round_trip(tmp_path, ext, depth):
    icc = _p3_like_icc()
    src = tmp_path / 'src.jpg'
    src.write_bytes(_save(_gradient(), 'JPEG', 3, icc))
    _, info = read_photo(src)
    img = np.random.default_rng(0).random((12, 10, 3)).astype(np.float32)
    out = tmp_path / f'out{ext}'
    assert write_photo(img, out, info, bit_depth=depth) == []
    with Image.open(out) as pil:
        exif = pil.getexif()
        assert pil.info.get('icc_profile') == icc
        assert exif[0x0112] == 1 and exif[0x010F] == 'PhoneCo'
        assert exif.get_ifd(EXIF_IFD)[0x9003] == '2024:05:01 12:00:00'
    back, info2 = read_photo(out)
    assert back.dtype == (np.uint16 if depth == 16 else np.uint8) and info2.icc_profile == icc
    if ext != '.jpg':  # lossless: the pixels are the ones written
        peak = 65535 if depth == 16 else 255
        assert np.array_equal(back, np.rint(img.astype(np.float64) * peak).astype(back.dtype))


def test_gray_output_drops_an_rgb_icc_profile_and_keeps_exif(tmp_path):
    info = PhotoInfo(exif=read_photo_exif(tmp_path), icc_profile=_p3_like_icc())
    write_photo(np.full((4, 5), 0.5, np.float32), tmp_path / 'g.png', info)
    with Image.open(tmp_path / 'g.png') as pil:
        assert pil.mode == 'L' and 'icc_profile' not in pil.info and pil.getexif()[0x010F] == 'PhoneCo'


def read_photo_exif(tmp_path):
    (tmp_path / 'e.jpg').write_bytes(_save(_gradient(), 'JPEG', 1))
    return read_photo(tmp_path / 'e.jpg')[1].exif


def test_sixteen_bit_reads_stay_exact_and_16_bit_tiff_says_it_drops_metadata(tmp_path):
    rgb16 = np.random.default_rng(1).integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    for ext in ('.png', '.tif'):
        cv2.imwrite(str(tmp_path / f'a{ext}'), rgb16[..., ::-1])
        img, info = read_photo(tmp_path / f'a{ext}')
        assert img.dtype == np.uint16 and np.array_equal(img, rgb16) and not info.warnings
    info = PhotoInfo(exif=read_photo_exif(tmp_path), icc_profile=_p3_like_icc())
    notes = write_photo(rgb16, tmp_path / 'b.tif', info, bit_depth=16)
    assert len(notes) == 1 and '16-bit TIFF' in notes[0] and '--format png' in notes[0]
    assert np.array_equal(read_photo(tmp_path / 'b.tif')[0], rgb16)


def test_bit_depth_and_format_rules():
    assert [output_extension(p) for p in ('a.JPG', 'a.jpeg', 'a.png', 'a.tiff', 'a.bmp', 'a.heic', 'a.npy')] == \
        ['.jpg', '.jpg', '.png', '.tif', '.png', '.png', '.png']
    assert output_extension('a.png', 'jpg') == '.jpg' and output_extension('a.jpg', 'tif') == '.tif'
    assert output_bit_depth(16, '.png') == (16, None) and output_bit_depth(16, '.tif') == (16, None)
    depth, note = output_bit_depth(16, '.jpg')
    assert depth == 8 and '\n' not in note and '16-bit input written as 8-bit JPEG' in note
    assert output_bit_depth(8, '.jpg') == (8, None)
    assert check_quality(None) == 95 and check_quality(1) == 1 and check_quality(100) == 100
    for bad in (0, 101, -5, 9.5, True):
        with pytest.raises(OptionError, match='--quality'):
            check_quality(bad)
    with pytest.raises(OptionError, match="unknown format 'webp'"):
        output_extension('a.png', 'webp')
    with pytest.raises(ValueError, match='16-bit'):
        write_photo(np.zeros((2, 2, 3), np.float32), '/nonexistent/x.jpg', bit_depth=16)


def test_jpeg_quality_changes_the_file(tmp_path):
    img = np.random.default_rng(2).random((32, 32, 3)).astype(np.float32)
    write_photo(img, tmp_path / 'q30.jpg', quality=30)
    write_photo(img, tmp_path / 'q95.jpg')
    assert os.path.getsize(tmp_path / 'q30.jpg') < os.path.getsize(tmp_path / 'q95.jpg')


def _corrupt_exif_jpeg():
    data = _save(_gradient(), 'JPEG', 6)
    i = data.find(b'Exif\x00\x00')
    seg = int.from_bytes(data[i - 2:i], 'big')
    bad = (b'Exif\x00\x00MM\x00*\x00\x00\xff\xff').ljust(seg - 2, b'\x00')  # IFD offset past the end
    return data[:i] + bad + data[i + seg - 2:]


def test_corrupt_exif_keeps_the_pixels_with_a_one_line_warning(tmp_path):
    path = tmp_path / 'bad_exif.jpg'
    path.write_bytes(_corrupt_exif_jpeg())
    img, info = read_photo(path)
    assert img.shape == (48, 64, 3) and info.exif is None and info.orientation == 1
    assert len(info.warnings) == 1 and 'corrupt EXIF ignored' in info.warnings[0] and '\n' not in info.warnings[0]
    with pytest.warns(PhotoWarning, match='corrupt EXIF'):
        assert imread(path).shape == (48, 64, 3)


def _heic(pillow_heif, arr, orientation=None):
    heif = pillow_heif.from_pillow(Image.fromarray(arr))
    bio = io.BytesIO()
    heif.save(bio, quality=90, **({'exif': _exif(orientation).tobytes()} if orientation else {}))
    return bio.getvalue()


def test_heic_is_read_with_the_extra(tmp_path):
    pillow_heif = _heif()
    (tmp_path / 'p.heic').write_bytes(_heic(pillow_heif, _gradient(), orientation=1))
    img, info = read_photo(tmp_path / 'p.heic')
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and info.format == 'heif'
    assert np.abs(img.astype(int) - _gradient()).mean() < 4
    kept = Image.Exif()
    kept.load(info.exif)
    assert kept[0x010F] == 'PhoneCo' and kept[0x0112] == 1
    assert imread(tmp_path / 'p.heic').shape == (48, 64, 3)


def test_truncated_heic_is_a_one_line_error(tmp_path):
    pillow_heif = _heif()
    data = _heic(pillow_heif, _gradient())
    (tmp_path / 't.heic').write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError) as err:
        read_photo(tmp_path / 't.heic')
    assert str(err.value).startswith(f"cannot read image {tmp_path / 't.heic'}: ") and '\n' not in str(err.value)


def test_heic_without_the_extra_names_it_in_one_line(tmp_path, monkeypatch):
    # a real HEIC where pillow-heif is there; the magic number alone where it is not
    (tmp_path / 'p.heic').write_bytes(b'\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic')
    monkeypatch.setitem(sys.modules, 'pillow_heif', None)  # `import pillow_heif` raises ImportError
    with pytest.raises(DataError) as err:
        decode_photo((tmp_path / 'p.heic').read_bytes(), 'p.heic')
    msg = str(err.value)
    assert '\n' not in msg and "pip install 'basicsr_denoise[heif]'" in msg
    assert msg.startswith('cannot read image p.heic')


def test_imwrite_still_writes_plain_files(tmp_path):
    imwrite(np.full((3, 4, 3), 0.5, np.float32), tmp_path / 'x.png')
    with Image.open(tmp_path / 'x.png') as pil:
        assert 'icc_profile' not in pil.info and not pil.getexif()


# ------------------------------------------------------------------------------------------- the command


@pytest.mark.parametrize('argv,match', [(['--format', 'jpg', '--quality', '0'], '--quality: JPEG quality must be'),
                                        (['--format', 'png', '--quality', '80'], '--quality applies to JPEG')])
def test_bad_quality_is_a_one_line_error(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), '-o', str(tmp_path / 'out')] + argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith('error: ') and match in err and err.count('\n') == 1


def test_batch_keeps_orientation_metadata_and_loses_nothing_to_bad_files(tmp_path, weights, capsys):
    icc = _p3_like_icc()
    inp = tmp_path / 'in'
    inp.mkdir()
    (inp / 'phone.jpg').write_bytes(_save(_gradient(48, 64), 'JPEG', 6, icc, quality=95))
    (inp / 'bad_exif.jpg').write_bytes(_corrupt_exif_jpeg())
    (inp / 'trunc.heic').write_bytes(b'\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1')  # truncated after ftyp
    cv2.imwrite(str(inp / 'deep.png'), np.random.default_rng(3).integers(0, 65536, (24, 28, 3), dtype=np.uint16))
    out = tmp_path / 'out'
    res = denoise_files(sorted(str(p) for p in inp.iterdir()), str(out), weights=weights, preset='fast',
                        iterations=2, device='cpu', format=None)
    err = capsys.readouterr().err
    assert res['count'] == 3 and res['failed'] == [str(inp / 'trunc.heic')]
    lines = [ln for ln in err.splitlines() if ln.startswith(('error:', 'warning:', 'note:'))]
    assert sum(ln.startswith('error:') and 'trunc.heic' in ln for ln in lines) == 1
    assert sum(ln.startswith('warning:') and 'corrupt EXIF' in ln for ln in lines) == 1
    with Image.open(out / 'phone_denoised.jpg') as pil:
        assert pil.size == (48, 64) and pil.info['icc_profile'] == icc and pil.getexif()[0x0112] == 1
        assert pil.getexif()[0x0110] == 'Phone 15'
    assert imread(out / 'bad_exif_denoised.jpg').shape == (48, 64, 3)
    assert imread(out / 'deep_denoised.png', float32=False).dtype == np.uint16
    # --format jpg: the 16-bit input is written as 8 bits, said once; --skip-existing finds the .jpg outputs
    res = denoise_files([str(inp / 'deep.png')], str(out), weights=weights, preset='fast', iterations=2,
                        device='cpu', format='jpg', quality=80)
    err = capsys.readouterr().err
    assert err.count('note: 16-bit input written as 8-bit JPEG') == 1
    assert imread(out / 'deep_denoised.jpg', float32=False).dtype == np.uint8
    res = denoise_files([str(inp / 'deep.png')], str(out), weights=weights, preset='fast', iterations=2,
                        device='cpu', format='jpg', skip_existing=True)
    assert 'skipped (output exists)' in capsys.readouterr().out and res['images'][0]['output'].endswith('.jpg')
