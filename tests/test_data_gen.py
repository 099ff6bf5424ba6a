"""tools/data_gen.py: size filter with corrupt files, non-images, resumable runs and list mode."""

import importlib.util
import os
import sys

import cv2
import numpy as np
import pytest

from basicsr_denoise.utils.errors import DataError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def _tool():
    name = '_tools_data_gen'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, 'tools', 'data_gen.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # importable by name, so worker processes can unpickle its functions
        spec.loader.exec_module(module)
    return sys.modules[name]


def _img(path, h, w):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / 'src'
    _img(src / 'n01' / 'good_a.JPEG', 40, 36)
    _img(src / 'n01' / 'deep' / 'good_b.png', 32, 32)
    _img(src / 'n02' / 'good_c.jpg', 33, 50)
    _img(src / 'n02' / 'small.png', 31, 64)  # one side below 32
    ok, buf = cv2.imencode('.jpg', np.full((40, 40, 3), 128, np.uint8))
    (src / 'n02' / 'truncated.jpg').write_bytes(buf.tobytes()[:len(buf) // 2])
    (src / 'n01' / 'garbage.jpg').write_bytes(b'this is not a jpeg')
    (src / 'n01' / 'labels.txt').write_text('not an image')
    return src


KEPT = ['n01/deep/good_b.png', 'n01/good_a.JPEG', 'n02/good_c.jpg']


def _files(root):
    out = []
    for dirpath, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, '/') for f in files]
    return sorted(out)


def test_copy_mode_counts_and_resume(tree, tmp_path, capsys):
    tool = _tool()
    out = tmp_path / 'out'
    counts = tool.main(['--input', str(tree), '--output', str(out), '--min-size', '32', '--workers', '2', '--quiet'])
    assert counts == {'kept': 3, 'existing': 0, 'too_small': 1, 'unreadable': 2, 'not_image': 1, 'total': 7}
    assert _files(out) == KEPT  # relative structure kept, nothing else copied
    for rel in KEPT:
        assert (out / rel).read_bytes() == (tree / rel).read_bytes()
    printed = capsys.readouterr().out
    assert 'kept 3' in printed and 'too small 1' in printed and 'unreadable 2' in printed

    # resumable: a second run skips what is already there and re-checks only the rest
    (out / 'n01' / 'good_a.JPEG').unlink()
    counts = tool.main(['--input', str(tree), '--output', str(out), '--min-size', '32', '--workers', '1', '--quiet'])
    assert counts == {'kept': 1, 'existing': 2, 'too_small': 1, 'unreadable': 2, 'not_image': 1, 'total': 7}
    assert _files(out) == KEPT


def test_symlink_mode(tree, tmp_path):
    out = tmp_path / 'links'
    counts = _tool().main(['--input', str(tree), '--output', str(out), '--min-size', '32', '--mode', 'symlink',
                           '--workers', '1', '--quiet'])
    assert counts['kept'] == 3
    assert all(os.path.islink(out / rel) and os.path.samefile(out / rel, tree / rel) for rel in KEPT)


def test_list_mode_feeds_image_folder_dataset(tree, tmp_path):
    from basicsr_denoise.data import build_dataset
    tool = _tool()
    list_file = tmp_path / 'lists' / 'kept.txt'
    counts = tool.main(['--input', str(tree), '--mode', 'list', '--list-file', str(list_file), '--min-size', '33',
                        '--workers', '1', '--quiet'])
    assert counts['kept'] == 2 and counts['too_small'] == 2  # good_b (32x32) is now too small
    assert list_file.read_text().splitlines() == ['n01/good_a.JPEG', 'n02/good_c.jpg']
    counts = tool.main(['--input', str(tree), '--mode', 'list', '--list-file', str(list_file), '--min-size', '33',
                        '--workers', '1', '--quiet'])
    assert counts['existing'] == 2 and counts['kept'] == 0
    assert list_file.read_text().splitlines() == ['n01/good_a.JPEG', 'n02/good_c.jpg']
    ds = build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(tree), 'meta_info_file': str(list_file),
                        'gt_size': 32})
    assert len(ds) == 2 and ds[(1, 0)]['gt'].shape == (3, 32, 32) and ds.num_skipped == 0


def test_missing_input_is_an_error(tmp_path):
    with pytest.raises(DataError, match='--input: no such folder'):
        _tool().main(['--input', str(tmp_path / 'none'), '--output', str(tmp_path / 'o'), '--quiet'])
