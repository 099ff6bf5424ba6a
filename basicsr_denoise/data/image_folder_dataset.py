"""Clean images for masked pre-training (MPI) and score training (Noise2Score)."""

import logging
import os.path as osp

import numpy as np
from torch.utils import data

from basicsr_denoise.data.transforms import augment, pad_to_size, random_crop, split_index
from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.file_client import (dataroot_folders, imfrombytes, list_images, lmdb_keys, make_file_client,
                                              read_meta_info)
from basicsr_denoise.utils.img_util import img2tensor
from basicsr_denoise.utils.registry import DATASET_REGISTRY

logger = logging.getLogger('basicsr_denoise')

_MAX_RETRIES = 100


@DATASET_REGISTRY.register()
class ImageFolderDataset(data.Dataset):
    """Clean images from a folder tree or an LMDB, randomly cropped.

    Used for the masked pre-training of MPI (Ma et al., "Masked Pre-trained Model
    Enables Universal Zero-shot Denoiser") on ImageNet-like data and for training
    the score network of Noise2Score (Kim & Ye, NeurIPS 2021).

    An unreadable image (or one below ``min_size``) is skipped: a warning is logged
    once per file on logger ``basicsr_denoise``, ``self.num_skipped`` is increased,
    the path is added to ``self.skipped`` and another image, chosen with the
    sample's generator, is returned instead. With DataLoader workers each worker
    keeps its own counter and set.

    Note:
        Images smaller than ``gt_size`` are reflect-padded at the bottom/right up
        to ``gt_size`` before cropping (instead of being dropped as in BasicSR).
        Use ``min_size`` (or ``tools/data_gen.py --min-size``) to exclude them.

    Args:
        dataroot_gt (str | list[str]): Folder searched recursively, a list of such folders (their images
            in the order given), or an LMDB folder whose name ends with ``.lmdb`` (keys from its
            ``meta_info.txt``).
        meta_info_file (str | None): Text file of image paths relative to
            ``dataroot_gt`` (e.g. from ``tools/data_gen.py --mode list``) or of
            LMDB keys. Default: None (scan the folder).
        io_backend (dict | None): File back-end options. Default: None (``{'type': 'disk'}``).
        gt_size (int | None): Random crop size; full images when None. Default: 256.
        use_hflip (bool): Random horizontal flips. Default: False.
        use_rot (bool): Random vertical flips and 90-degree rotations. Default: False.
        gray_to_rgb (bool): Repeat gray images to three channels. Default: True.
        min_size (int | None): Skip images whose shorter side is below it (filtered
            up front for LMDBs with shapes in meta_info, else when read). Default: None.

    Items:
        ``gt``: ``(C, H, W)``, RGB, float32 in [0, 1]; ``gt_path``: file path (LMDB key for LMDB);
        ``skipped``: how many unusable files were passed over to produce this item.
    """

    def __init__(self, dataroot_gt=None, meta_info_file=None, io_backend=None, gt_size=256, use_hflip=False,
                 use_rot=False, gray_to_rgb=True, min_size=None):
        super().__init__()
        if dataroot_gt is None:
            raise OptionError('dataroot_gt: required option of ImageFolderDataset is missing')
        folders = dataroot_folders(dataroot_gt, io_backend)
        if len(folders) > 1 and meta_info_file is not None:
            raise OptionError('dataroot_gt: a meta_info_file lists the images of one folder, not of a list')
        self.gt_folder = folders[0]
        self.gt_size, self.min_size, self.gray_to_rgb = gt_size, min_size, gray_to_rgb
        self.use_hflip, self.use_rot = use_hflip, use_rot
        self.num_skipped = 0
        self.skipped = set()
        self.skip_reasons = {}
        self.file_client, self.is_lmdb = make_file_client(io_backend, {'gt': self.gt_folder})
        if self.is_lmdb:
            entries = lmdb_keys(self.gt_folder, meta_info_file)
            if min_size is not None:
                entries = [(k, s) for k, s in entries if s is None or min(s[:2]) >= min_size]
            self.paths = [k for k, _ in entries]
            if not self.paths:
                raise DataError(f'dataroot_gt: lmdb {self.gt_folder} has no image of at least min_size {min_size}')
        elif meta_info_file is not None:
            if not osp.isdir(self.gt_folder):
                raise DataError(f'dataroot_gt: no such folder {self.gt_folder}')
            self.paths = [osp.join(self.gt_folder, n) for n, _ in read_meta_info(meta_info_file)]
        else:
            self.paths = [osp.join(f, n) for f in folders for n in list_images(f, recursive=True, key='dataroot_gt')]

    def _skip(self, path, reason):
        self.num_skipped += 1
        if path not in self.skipped:
            self.skipped.add(path)
            self.skip_reasons[path] = reason
            logger.warning('ImageFolderDataset: skipped %s (%s)', path, reason)

    def _load(self, path):
        img = imfrombytes(self.file_client.get(path, 'gt'), path)  # (H, W, C), RGB, float32 in [0, 1]
        if self.min_size is not None and min(img.shape[:2]) < self.min_size:
            raise DataError(f'{path}: size {img.shape[0]}x{img.shape[1]} is below min_size {self.min_size}')
        return img

    def __getitem__(self, index):
        idx, rng = split_index(index)
        path = self.paths[idx]
        skipped_before = self.num_skipped
        for _ in range(_MAX_RETRIES):
            if path in self.skipped:  # known bad: do not read it again
                self.num_skipped += 1
            else:
                try:
                    img = self._load(path)
                    break
                except DataError as exc:
                    self._skip(path, str(exc))
            if len(self.skipped) >= len(self.paths):
                raise DataError(f'dataroot_gt: none of the {len(self.paths)} images in {self.gt_folder} '
                                f'can be used (last: {self.skip_reasons[path]})')
            path = self.paths[int(rng.integers(len(self.paths)))]
        else:
            raise DataError(f'dataroot_gt: {_MAX_RETRIES} images in a row could not be used in {self.gt_folder}')
        if self.gray_to_rgb and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        if self.gt_size is not None:
            img = random_crop(pad_to_size(img, self.gt_size), self.gt_size, rng, path)
        if self.use_hflip or self.use_rot:
            img = augment(img, self.use_hflip, self.use_rot, rng)
        # gt: (C, H, W), RGB, float32 in [0, 1]; skipped: unusable files passed over for this item, so the
        # training loop can count them across workers and ranks
        return {'gt': img2tensor(img), 'gt_path': path, 'skipped': self.num_skipped - skipped_before}

    def __len__(self):
        return len(self.paths)
