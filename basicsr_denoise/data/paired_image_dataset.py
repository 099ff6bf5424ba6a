"""Paired noisy / clean images (real-noise benchmarks such as PolyU or SIDD crops)."""

import os.path as osp

from torch.utils import data

from basicsr_denoise.data.transforms import augment, paired_random_crop, split_index
from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.file_client import imfrombytes, list_images, lmdb_keys, make_file_client, read_meta_info
from basicsr_denoise.utils.img_util import img2tensor
from basicsr_denoise.utils.registry import DATASET_REGISTRY

_SHOW = 3  # unmatched names listed in errors


def _key_of(rel):
    """Match key of a relative path: the path without its extension."""
    return osp.splitext(rel)[0]


def _lq_key(gt_key, tmpl):
    folder, base = osp.split(gt_key)
    name = tmpl.format(base)
    return f'{folder}/{name}' if folder else name


def _index_names(names, root, key):
    """Map match key -> relative name, refusing two files with the same key."""
    out = {}
    for n in names:
        k = _key_of(n)
        if k in out:
            raise DataError(f'{key}: {root} holds two files with the base name {k!r} ({out[k]}, {n})')
        out[k] = n
    return out


def _first(names):
    names = sorted(names)
    more = ', ...' if len(names) > _SHOW else ''
    return ', '.join(names[:_SHOW]) + more


@DATASET_REGISTRY.register()
class PairedImageDataset(data.Dataset):
    """Pairs of noisy (lq) and clean (gt) images matched by file name.

    Files are matched by base name without extension: the lq file of gt
    ``name.png`` is the one whose base name is ``filename_tmpl.format('name')``
    (any extension). Folders are not searched recursively. With an LMDB back-end
    (``io_backend.type: lmdb`` or both roots ending with ``.lmdb``) the keys come
    from each LMDB's ``meta_info.txt``.

    Args:
        dataroot_gt (str): Folder (or LMDB) of clean images.
        dataroot_lq (str): Folder (or LMDB) of noisy images.
        io_backend (dict | None): File back-end options. Default: None (``{'type': 'disk'}``).
        gt_size (int | None): Random crop size; no crop when None. Default: None.
        use_hflip (bool): Random horizontal flips. Default: False.
        use_rot (bool): Random vertical flips and 90-degree rotations. Default: False.
        phase (str): ``'train'``, ``'val'`` or ``'test'`` (informational; cropping and
            flipping follow ``gt_size`` / ``use_hflip`` / ``use_rot``). Default: ``'train'``.
        filename_tmpl (str): Template of lq base names from gt base names. Default: ``'{}'``.
        meta_info_file (str | None): Text file listing the gt files (relative paths,
            or BasicSR ``name (h,w,c) level`` lines); the lq file has the templated
            base name and the same extension. Default: None (scan the folders).

    Items:
        ``lq``, ``gt``: ``(C, H, W)``, RGB, float32 in [0, 1] (``.npy`` inputs unclipped);
        ``lq_path``, ``gt_path``: file paths (LMDB keys for LMDB).

    Raises:
        DataError: for missing folders, unmatched names (count and first names on
            each side, in one line) or missing files.
    """

    def __init__(self, dataroot_gt=None, dataroot_lq=None, io_backend=None, gt_size=None, use_hflip=False,
                 use_rot=False, phase='train', filename_tmpl='{}', meta_info_file=None):
        super().__init__()
        for k, v in (('dataroot_gt', dataroot_gt), ('dataroot_lq', dataroot_lq)):
            if v is None:
                raise OptionError(f'{k}: required option of PairedImageDataset is missing')
        if '{}' not in filename_tmpl:
            raise OptionError(f"filename_tmpl: must contain '{{}}', got {filename_tmpl!r}")
        self.gt_folder, self.lq_folder = str(dataroot_gt), str(dataroot_lq)
        self.gt_size = gt_size
        self.use_hflip = use_hflip
        self.use_rot = use_rot
        self.phase = phase
        self.filename_tmpl = filename_tmpl
        self.file_client, self.is_lmdb = make_file_client(io_backend, {'lq': self.lq_folder, 'gt': self.gt_folder})
        self.paths = self._pair(meta_info_file)

    def _pair(self, meta_info_file):
        tmpl = self.filename_tmpl
        if self.is_lmdb:
            gt_names = [k for k, _ in lmdb_keys(self.gt_folder, meta_info_file)]
            lq_names = [k for k, _ in lmdb_keys(self.lq_folder)]
        elif meta_info_file is not None:
            if not osp.isdir(self.gt_folder):
                raise DataError(f'dataroot_gt: no such folder {self.gt_folder}')
            if not osp.isdir(self.lq_folder):
                raise DataError(f'dataroot_lq: no such folder {self.lq_folder}')
            pairs, missing = [], []
            for name, _ in read_meta_info(meta_info_file):
                stem, ext = osp.splitext(name)
                lq_name = _lq_key(stem, tmpl) + ext
                gt_path, lq_path = osp.join(self.gt_folder, name), osp.join(self.lq_folder, lq_name)
                for p in (gt_path, lq_path):
                    if not osp.isfile(p):
                        missing.append(p)
                pairs.append({'gt_path': gt_path, 'lq_path': lq_path})
            if missing:
                raise DataError(f'meta_info_file {meta_info_file}: {len(missing)} listed files do not exist '
                                f'(first: {_first(missing)})')
            return pairs
        else:
            gt_names = list_images(self.gt_folder, key='dataroot_gt')
            lq_names = list_images(self.lq_folder, key='dataroot_lq')
        gt_map = _index_names(gt_names, self.gt_folder, 'dataroot_gt')
        lq_map = _index_names(lq_names, self.lq_folder, 'dataroot_lq')
        expected = {_lq_key(k, tmpl): k for k in gt_map}
        bad_gt = [gt_map[k] for lk, k in expected.items() if lk not in lq_map]
        bad_lq = [lq_map[lk] for lk in lq_map if lk not in expected]
        if bad_gt or bad_lq:
            raise DataError(
                f'PairedImageDataset: unmatched file names (filename_tmpl {tmpl!r}): '
                f'{len(bad_gt)} of {len(gt_map)} gt images in {self.gt_folder} have no lq partner'
                f"{' (first: ' + _first(bad_gt) + ')' if bad_gt else ''}; "
                f'{len(bad_lq)} of {len(lq_map)} lq images in {self.lq_folder} have no gt partner'
                f"{' (first: ' + _first(bad_lq) + ')' if bad_lq else ''}")
        pairs = []
        for lk, k in sorted(expected.items(), key=lambda kv: kv[1]):
            if self.is_lmdb:
                pairs.append({'gt_path': k, 'lq_path': lk})
            else:
                pairs.append({'gt_path': osp.join(self.gt_folder, gt_map[k]),
                              'lq_path': osp.join(self.lq_folder, lq_map[lk])})
        return pairs

    def __getitem__(self, index):
        idx, rng = split_index(index)
        gt_path = self.paths[idx]['gt_path']
        lq_path = self.paths[idx]['lq_path']
        img_gt = imfrombytes(self.file_client.get(gt_path, 'gt'), gt_path)  # (H, W, C), RGB, float32 [0, 1]
        img_lq = imfrombytes(self.file_client.get(lq_path, 'lq'), lq_path)
        if img_gt.shape[:2] != img_lq.shape[:2]:
            raise DataError(f'{gt_path}: size {img_gt.shape[0]}x{img_gt.shape[1]} differs from its lq '
                            f'{lq_path} ({img_lq.shape[0]}x{img_lq.shape[1]})')
        if self.gt_size is not None:
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.gt_size, rng, gt_path)
        if self.use_hflip or self.use_rot:
            img_gt, img_lq = augment([img_gt, img_lq], self.use_hflip, self.use_rot, rng)
        img_gt, img_lq = img2tensor([img_gt, img_lq])  # (C, H, W), RGB
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.paths)
