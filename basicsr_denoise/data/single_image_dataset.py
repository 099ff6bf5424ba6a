"""A folder of noisy images without ground truth (zero-shot denoising, real noise)."""

import os.path as osp

from torch.utils import data

from basicsr_denoise.data.transforms import split_index
from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.file_client import imfrombytes, list_images, lmdb_keys, make_file_client, read_meta_info
from basicsr_denoise.utils.img_util import img2tensor
from basicsr_denoise.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class SingleImageDataset(data.Dataset):
    """Noisy images only; items have no ``gt``.

    The folder is not searched recursively. With an LMDB back-end
    (``io_backend.type: lmdb`` or a root ending with ``.lmdb``) the keys come from
    its ``meta_info.txt``.

    Args:
        dataroot_lq (str): Folder (or LMDB) of noisy images.
        io_backend (dict | None): File back-end options. Default: None (``{'type': 'disk'}``).
        meta_info_file (str | None): Text file listing the images (relative paths).
            Default: None (scan the folder).

    Items:
        ``lq``: ``(C, H, W)``, RGB, float32 in [0, 1] (``.npy`` inputs unclipped);
        ``lq_path``: the file path (LMDB key for LMDB).
    """

    def __init__(self, dataroot_lq=None, io_backend=None, meta_info_file=None):
        super().__init__()
        if dataroot_lq is None:
            raise OptionError('dataroot_lq: required option of SingleImageDataset is missing')
        self.lq_folder = str(dataroot_lq)
        self.file_client, self.is_lmdb = make_file_client(io_backend, {'lq': self.lq_folder})
        if self.is_lmdb:
            self.paths = [k for k, _ in lmdb_keys(self.lq_folder, meta_info_file)]
        elif meta_info_file is not None:
            if not osp.isdir(self.lq_folder):
                raise DataError(f'dataroot_lq: no such folder {self.lq_folder}')
            self.paths = [osp.join(self.lq_folder, n) for n, _ in read_meta_info(meta_info_file)]
        else:
            self.paths = [osp.join(self.lq_folder, n) for n in list_images(self.lq_folder, key='dataroot_lq')]

    def __getitem__(self, index):
        idx, _ = split_index(index)
        lq_path = self.paths[idx]
        img_lq = imfrombytes(self.file_client.get(lq_path, 'lq'), lq_path)  # (H, W, C), RGB, float32
        return {'lq': img2tensor(img_lq), 'lq_path': lq_path}

    def __len__(self):
        return len(self.paths)
