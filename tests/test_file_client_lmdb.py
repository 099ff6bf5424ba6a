"""LMDB round trip: tools/create_lmdb.py -> FileClient -> datasets reading the LMDB."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.file_client import FileClient, imfrombytes, read_meta_info
from basicsr_denoise.utils.img_util import imread

from _framework import load_tool  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


@pytest.fixture
def image_tree(tmp_path):
    """Folder with an RGB PNG, a gray PNG in a sub-folder, a 16-bit PNG, a .npy and a corrupt file."""
    root = tmp_path / 'imgs'
    (root / 'sub').mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / 'a.png'), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    cv2.imwrite(str(root / 'sub' / 'g.png'), rng.integers(0, 256, (36, 40), dtype=np.uint8))
    cv2.imwrite(str(root / 'deep16.png'), rng.integers(0, 65536, (34, 35, 3), dtype=np.uint16))
    np.save(root / 'n.npy', rng.normal(0.5, 0.4, (33, 37, 3)).astype(np.float32))
    (root / 'zz_broken.jpg').write_bytes(b'\xff\xd8 garbage')
    (root / 'notes.txt').write_text('not an image')
    return root


def test_create_lmdb_roundtrip(tmp_path, image_tree):
    tool = load_tool('create_lmdb')
    out = tmp_path / 'data.lmdb'
    result = tool.make_lmdb_from_folder(str(image_tree), str(out), progress=False)
    assert result['written'] == 4 and result['unreadable'] == [str(image_tree / 'zz_broken.jpg')]
    meta = (out / 'meta_info.txt').read_text().splitlines()
    assert meta == ['a (40,48,3) orig', 'deep16 (34,35,3) orig', 'n (33,37,3) orig', 'sub/g (36,40,1) orig']
    assert read_meta_info(str(out / 'meta_info.txt'))[3] == ('sub/g', (36, 40, 1))

    client = FileClient('lmdb', db_paths=[str(out)], client_keys=['gt'])
    for key, rel in [('a', 'a.png'), ('sub/g', 'sub/g.png'), ('deep16', 'deep16.png'), ('n', 'n.npy')]:
        content = client.get(key, 'gt')
        assert content == (image_tree / rel).read_bytes()  # original bytes kept
        np.testing.assert_array_equal(imfrombytes(content, key), imread(image_tree / rel))
    with pytest.raises(DataError, match='nokey.*data.lmdb'):
        client.get('nokey', 'gt')

    with pytest.raises(DataError, match='exists'):
        tool.make_lmdb_from_folder(str(image_tree), str(out), progress=False)


def test_create_lmdb_reencode_png_keeps_pixels(tmp_path, image_tree):
    tool = load_tool('create_lmdb')
    out = tmp_path / 'png.lmdb'
    tool.main(['--input', str(image_tree), '--output', str(out), '--compress-level', '1'])
    assert (out / 'meta_info.txt').read_text().splitlines()[0] == 'a (40,48,3) 1'
    client = FileClient('lmdb', db_paths=str(out))
    content = client.get('deep16')
    assert content[:8] == b'\x89PNG\r\n\x1a\n'
    np.testing.assert_array_equal(imfrombytes(content, 'deep16'), imread(image_tree / 'deep16.png'))


def test_missing_lmdb_and_bad_backend_name_the_path(tmp_path):
    missing = tmp_path / 'nothere.lmdb'
    with pytest.raises(DataError, match='nothere.lmdb'):
        FileClient('lmdb', db_paths=[str(missing)], client_keys=['gt'])
    with pytest.raises(OptionError, match='io_backend.type.*ceph'):
        FileClient('ceph')
    with pytest.raises(DataError, match='nofile.png'):
        FileClient('disk').get(str(tmp_path / 'nofile.png'))


def test_image_folder_dataset_reads_lmdb(tmp_path, image_tree):
    from basicsr_denoise.data import build_dataset
    tool = load_tool('create_lmdb')
    out = tmp_path / 'train.lmdb'
    tool.make_lmdb_from_folder(str(image_tree), str(out), progress=False)
    ds = build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(out), 'gt_size': 32, 'phase': 'train',
                        'batch_size_per_gpu': 2, 'min_size': 34})
    assert ds.is_lmdb and ds.paths == ['a', 'deep16', 'sub/g']  # n (33x37) below min_size, filtered up front
    for i in range(len(ds)):
        item = ds[(i, 123)]
        assert item['gt'].shape == (3, 32, 32) and item['gt_path'] == ds.paths[i]
    # the crop of the lmdb sample equals the crop of the same file read from disk
    disk = build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(image_tree), 'gt_size': 32})
    disk_idx = disk.paths.index(str(image_tree / 'a.png'))
    assert (ds[(0, 7)]['gt'] == disk[(disk_idx, 7)]['gt']).all()


@pytest.mark.slow  # a subprocess
def test_cli_runs_as_script(tmp_path, image_tree):
    out = tmp_path / 'cli.lmdb'
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'create_lmdb.py'), '--input',
                           str(image_tree), '--output', str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'wrote 4 images' in proc.stdout
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'create_lmdb.py'), '--input',
                           str(tmp_path / 'none'), '--output', str(tmp_path / 'x.lmdb')],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().startswith('error: --input: no such folder')
