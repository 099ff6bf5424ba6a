"""Clean images with synthetic noise drawn from a registered noise model."""

import os.path as osp

import cv2
import numpy as np
import torch
from torch.utils import data

from basicsr_denoise.data.transforms import augment, paired_random_crop, split_index
from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.file_client import dataroot_folders, imfrombytes, list_images, lmdb_keys, make_file_client
from basicsr_denoise.utils.img_util import img2tensor
from basicsr_denoise.utils.registry import DATASET_REGISTRY, NOISE_REGISTRY

_SEED_PRIME = 100003
_SEED_MAX = 2**63 - 1


def convert_color(img, color, path=None):
    """Convert an ``(H, W, C)`` RGB image to the requested channel count.

    Args:
        img (np.ndarray): ``(H, W, 1)`` or ``(H, W, 3)``, RGB, float32.
        color (str | None): None keeps the channels; ``'gray'`` gives ``(H, W, 1)``
            with OpenCV's weights ``0.299 R + 0.587 G + 0.114 B`` (as ``cv2.COLOR_RGB2GRAY``,
            i.e. BGR2GRAY semantics applied to RGB data; not re-quantised);
            ``'rgb'`` repeats a gray image to ``(H, W, 3)``.
        path (str | None): File named in error messages. Default: None.

    Returns:
        np.ndarray: The converted image, float32.
    """
    if color is None:
        return img
    if color == 'gray':
        if img.shape[2] == 1:
            return img
        return cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2GRAY)[..., None]
    if color == 'rgb':
        return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
    raise OptionError(f"color: must be null, 'gray' or 'rgb', got {color!r}")


def _hwc(t):
    """(C, H, W) tensor -> (H, W, C) numpy view."""
    return t.numpy().transpose(1, 2, 0)


@DATASET_REGISTRY.register()
class SyntheticNoisyDataset(data.Dataset):
    """Clean images and noisy versions drawn from a noise model (synthetic benchmarks).

    Used to evaluate on CBSD68 / Kodak24 / Set12 / BSD68 with a fixed noise draw,
    and to train Noise2Score (Kim & Ye, NeurIPS 2021) on noisy images only.

    The noise of image ``index`` is drawn with a ``torch.Generator`` seeded with
    ``seed * 100003 + index``, so an evaluation repeats exactly, independently of
    the order, the batch size and the number of workers. With ``fixed_noise`` the
    same draw is used in every epoch (the Noise2Score setting): when cropping, the
    noise is drawn on the full image and then the same window is cropped from the
    clean and the noisy image. With ``fixed_noise=False`` a fresh draw per call is
    seeded from the sample's generator (see ``split_index``), after cropping.

    Args:
        dataroot_gt (str | list[str]): Folder of clean images (searched recursively), a list
            of such folders (their images in the order given), or an LMDB folder ending with
            ``.lmdb``.
        noise (dict): Noise option block, e.g. ``{'type': 'Gaussian', 'sigma': 25}``,
            built with ``NOISE_REGISTRY``; its model must provide
            ``sample(x, generator)`` for ``x`` of shape ``(C, H, W)`` in [0, 1].
            An already-built model object is accepted too.
        seed (int): Noise seed. Default: 0.
        io_backend (dict | None): File back-end options. Default: None (``{'type': 'disk'}``).
        gt_size (int | None): Random crop size; no crop when None. Default: None.
        use_hflip (bool): Random horizontal flips. Default: False.
        use_rot (bool): Random vertical flips and 90-degree rotations. Default: False.
        fixed_noise (bool): Same noise draw for an image in every epoch. Default: True.
        color (str | None): None keeps the stored channels, ``'gray'`` converts to
            one channel (``cv2`` gray weights), ``'rgb'`` makes three. Default: None.

    Items:
        ``gt``: ``(C, H, W)``, RGB (or gray), float32 in [0, 1];
        ``lq``: ``(C, H, W)`` noisy, float32, not clipped (as returned by the noise model);
        ``gt_path``, ``lq_path``: the clean file's path (LMDB key for LMDB); both
        name the clean file because the noisy image only exists in memory.
    """

    def __init__(self, dataroot_gt=None, noise=None, seed=0, io_backend=None, gt_size=None, use_hflip=False,
                 use_rot=False, fixed_noise=True, color=None):
        super().__init__()
        if dataroot_gt is None:
            raise OptionError('dataroot_gt: required option of SyntheticNoisyDataset is missing')
        if noise is None:
            raise OptionError("noise: required option of SyntheticNoisyDataset is missing (e.g. {type: Gaussian, "
                              "sigma: 25})")
        if color not in (None, 'gray', 'rgb'):
            raise OptionError(f"color: must be null, 'gray' or 'rgb', got {color!r}")
        folders = dataroot_folders(dataroot_gt, io_backend)
        self.gt_folder = folders[0]
        self.noise_model = NOISE_REGISTRY.build(noise, key='noise') if isinstance(noise, dict) else noise
        if not callable(getattr(self.noise_model, 'sample', None)):
            raise OptionError(f'noise: {type(self.noise_model).__name__} has no sample(x, generator) method')
        self.seed, self.fixed_noise, self.color = int(seed), fixed_noise, color
        self.gt_size, self.use_hflip, self.use_rot = gt_size, use_hflip, use_rot
        self.file_client, self.is_lmdb = make_file_client(io_backend, {'gt': self.gt_folder})
        if self.is_lmdb:
            self.paths = [k for k, _ in lmdb_keys(self.gt_folder)]
        else:
            self.paths = [osp.join(f, n) for f in folders for n in list_images(f, recursive=True, key='dataroot_gt')]

    def noise_generator(self, idx):
        """The generator of the fixed noise draw of image ``idx`` (seed ``seed * 100003 + idx``)."""
        return torch.Generator().manual_seed((self.seed * _SEED_PRIME + int(idx)) % (2**63))

    def _add_noise(self, img, generator):
        x = img2tensor(img)  # (C, H, W), RGB, float32 in [0, 1]
        with torch.no_grad():
            y = self.noise_model.sample(x, generator)
        if y.shape != x.shape:
            raise DataError(f'noise model {type(self.noise_model).__name__} changed the shape '
                            f'{tuple(x.shape)} -> {tuple(y.shape)}')
        return y.float().contiguous()

    def __getitem__(self, index):
        idx, rng = split_index(index)
        gt_path = self.paths[idx]
        img_gt = imfrombytes(self.file_client.get(gt_path, 'gt'), gt_path)  # (H, W, C), RGB, float32 in [0, 1]
        img_gt = convert_color(img_gt, self.color, gt_path)
        crop = self.gt_size is not None
        flip = self.use_hflip or self.use_rot
        if self.fixed_noise:
            img_lq = _hwc(self._add_noise(img_gt, self.noise_generator(idx)))  # noise on the full image
            if crop:
                img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.gt_size, rng, gt_path)
            if flip:
                img_gt, img_lq = augment([img_gt, img_lq], self.use_hflip, self.use_rot, rng)
            gt, lq = img2tensor([img_gt, img_lq])
        else:
            if crop:
                img_gt, _ = paired_random_crop(img_gt, img_gt, self.gt_size, rng, gt_path)
            if flip:
                img_gt = augment(img_gt, self.use_hflip, self.use_rot, rng)
            generator = torch.Generator().manual_seed(int(rng.integers(0, _SEED_MAX)))
            lq = self._add_noise(img_gt, generator)
            gt = img2tensor(img_gt)
        return {'lq': lq, 'gt': gt, 'lq_path': gt_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.paths)
