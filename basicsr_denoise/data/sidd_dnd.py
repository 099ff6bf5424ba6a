"""Read and write the SIDD and DND benchmark files (MATLAB ``.mat``), and denoise arrays of blocks.

Ma et al., "Masked Pre-training Enables Universal Zero-shot Denoiser", NeurIPS 2024, report
SIDD and DND sRGB results; both benchmarks are scored on their servers from files in a
fixed layout. This module is used by ``benchmarks/sidd_benchmark.py`` and ``benchmarks/dnd_benchmark.py``,
which denoise through :class:`basicsr_denoise.inference.MPIDenoiser`.

SIDD (Abdelhamed et al., CVPR 2018), sRGB validation/benchmark blocks:

* input ``ValidationNoisyBlocksSrgb.mat`` / ``BenchmarkNoisyBlocksSrgb.mat`` (and
  ``ValidationGtBlocksSrgb.mat``): one MATLAB array ``(40, 32, 256, 256, 3)`` uint8
  (images x blocks x H x W x RGB) named like the file. MATLAB v5 (``scipy.io.loadmat``);
  a v7.3 (HDF5) file is read with h5py as a fallback.
* submission ``SubmitSrgb.mat`` (what the SIDD site's MATLAB demo ``save``s), written by
  :func:`write_sidd_submission`:

  - ``DenoisedBlocksSrgb``: cell array ``40 x 32`` (a numpy object array of shape
    ``(40, 32)``), each cell ``256 x 256 x 3`` uint8 (round, then clip to [0, 255]);
  - ``TimeMPSrgb``: double scalar, seconds per megapixel;
  - ``OptionalData``: struct (a dict) with char fields ``MethodName``, ``Authors``,
    ``PaperTitle``, ``Venue``.

DND (Pl\u00f6tz & Roth, CVPR 2017), sRGB track, following the official ``dnd_denoise.py`` and
``bundle_submissions.py`` of the DND submission kit:

* ``info.mat`` (MATLAB v7.3 = HDF5): group ``info`` whose field ``boundingboxes`` is an
  array of object references, one per image, each to a MATLAB ``20 x 4`` double array
  (HDF5 shape ``(4, 20)``, transposed back here). Rows are 1-based inclusive boxes; as in
  the official code, columns 1 and 3 index the first image axis (rows) and columns 2 and 4
  the second: ``crop = image[b[0]-1:b[2], b[1]-1:b[3]]``.
* ``images_srgb/NNNN.mat`` (v7.3): dataset ``InoisySRGB``, MATLAB ``H x W x 3`` double in
  [0, 1] (HDF5 shape ``(3, W, H)``, transposed back here).
* per-block results ``NNNN_BB.mat`` (1-based), variable ``Idenoised_crop`` (float32
  ``H x W x 3``), and the bundle ``bundled/NNNN.mat`` with ``Idenoised`` (cell ``1 x 20`` of
  the blocks), ``israw`` (False) and ``eval_version`` (``'1.0'``), which is what the DND
  site takes (zip the ``bundled`` folder).
"""

import os
import os.path as osp
import re

import numpy as np

from basicsr_denoise.utils.atomic import atomic_write
from basicsr_denoise.utils.errors import DataError
from basicsr_denoise.utils.logger import progress

SIDD_KEYS = ('ValidationNoisyBlocksSrgb', 'BenchmarkNoisyBlocksSrgb', 'ValidationGtBlocksSrgb')
SIDD_SUBMISSION_KEY = 'DenoisedBlocksSrgb'
DEFAULT_OPTIONAL_DATA = {
    'MethodName': 'MPI (zero-shot iterative filling)',
    'Authors': '',
    'PaperTitle': 'Masked Pre-training Enables Universal Zero-shot Denoiser',
    'Venue': 'NeurIPS 2024',
}
DND_BLOCK_RE = re.compile(r'^(\d{4})_(\d{2})\.mat$')


def _require(module):
    """Import ``scipy.io`` or ``h5py`` (the ``bench`` extra) with an installation hint."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{module} is needed for the SIDD/DND .mat files: pip install scipy h5py "
                          "(or pip install -e '.[bench]')") from None


def _one_line(exc):
    return ' '.join(str(exc).split()) or type(exc).__name__


def _is_hdf5(path):
    h5py = _require('h5py')
    try:
        return h5py.is_hdf5(path)
    except Exception:  # noqa: BLE001 - any failure means "not readable as HDF5"
        return False


def _loadmat(path):
    """``scipy.io.loadmat`` with one-line :class:`DataError` for missing or corrupt files."""
    scipy_io = _require('scipy.io')
    if not osp.isfile(path):
        raise DataError(f'{path}: file not found')
    try:
        return scipy_io.loadmat(path)
    except NotImplementedError:  # MATLAB v7.3: the caller falls back to h5py
        raise
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for corrupt files
        raise DataError(f'{path}: not a readable MATLAB .mat file ({_one_line(exc)})') from None


def _h5_open(path):
    h5py = _require('h5py')
    if not osp.isfile(path):
        raise DataError(f'{path}: file not found')
    try:
        return h5py.File(path, 'r')
    except Exception as exc:  # noqa: BLE001
        raise DataError(f'{path}: not a readable MATLAB v7.3 (HDF5) file ({_one_line(exc)})') from None


# ----------------------------------------------------------------------------------------------- SIDD


def read_sidd_blocks(path, key=None):
    """Read a SIDD sRGB block file (``ValidationNoisyBlocksSrgb.mat`` and the like).

    Args:
        path (str): The ``.mat`` file (MATLAB v5; v7.3 is read with h5py).
        key (str | None): Variable name. Default: None (the one 5-D uint8 array in the file,
            preferring the official names).

    Returns:
        ndarray: ``(images, blocks, H, W, 3)`` (``(40, 32, 256, 256, 3)`` for SIDD), RGB,
        float32 in [0, 1].

    Raises:
        DataError: missing/corrupt file, missing key or no (or several) 5-D uint8 arrays.
    """
    def read_h5():  # MATLAB v7.3: HDF5 with the dimensions reversed
        with _h5_open(path) as f:
            return {k: np.array(f[k]).transpose() for k in f.keys()
                    if not k.startswith('#') and hasattr(f[k], 'shape')}

    if osp.isfile(path) and _is_hdf5(path):
        arrays = read_h5()
    else:
        try:
            arrays = {k: v for k, v in _loadmat(path).items() if not k.startswith('__')}
        except NotImplementedError:  # a v7.3 header that h5py did not recognise
            arrays = read_h5()
    candidates = [k for k, v in arrays.items()
                  if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 5]
    if key is None:
        official = [k for k in SIDD_KEYS if k in candidates]
        if len(official) == 1 or len(candidates) == 1:
            key = official[0] if official else candidates[0]
        elif not candidates:
            found = ', '.join(f'{k} {getattr(v, "shape", "?")} {getattr(v, "dtype", "?")}'
                              for k, v in arrays.items()) or 'nothing'
            raise DataError(f'{path}: no 5-D uint8 array of SIDD blocks (found: {found})')
        else:
            raise DataError(f'{path}: several 5-D uint8 arrays ({", ".join(candidates)}); pass the key')
    if key not in arrays:
        raise DataError(f'{path}: no variable {key} (found: {", ".join(arrays) or "nothing"})')
    blocks = arrays[key]
    if not isinstance(blocks, np.ndarray) or blocks.ndim != 5 or blocks.shape[-1] != 3:
        raise DataError(f'{path}: {key} has shape {getattr(blocks, "shape", "?")}, '
                        'expected (images, blocks, H, W, 3)')
    if blocks.dtype == np.uint8:
        return blocks.astype(np.float32) / 255.0
    return np.clip(blocks.astype(np.float32), 0.0, 1.0)  # a float export, already in [0, 1]


def to_uint8(img):
    """Float in [0, 1] -> uint8 (round, then clip); uint8 input is returned as it is."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    return np.clip(np.round(img.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def write_sidd_submission(denoised, out_path, key=SIDD_SUBMISSION_KEY, time_mp=0.0, optional_data=None,
                          as_cell=True):
    """Write the SIDD sRGB submission file (``SubmitSrgb.mat``).

    Args:
        denoised (ndarray): ``(images, blocks, H, W, 3)``, RGB, float in [0, 1] (rounded and
            clipped to uint8 here) or uint8.
        out_path (str): Output ``.mat`` file (its folder is created).
        key (str): Variable name of the blocks. Default: ``'DenoisedBlocksSrgb'``.
        time_mp (float): ``TimeMPSrgb``, seconds per megapixel. Default: 0.0.
        optional_data (dict | None): ``OptionalData`` struct (char fields). Default: None
            (:data:`DEFAULT_OPTIONAL_DATA`).
        as_cell (bool): Write the blocks as a ``images x blocks`` cell array of
            ``H x W x 3`` uint8 (the official layout); False writes one 5-D uint8 array of
            the input's shape instead. Default: True.

    Returns:
        str: ``out_path``.

    Note:
        The file is written with ``scipy.io.savemat`` (MATLAB v5, zlib-compressed, as
        MATLAB's own ``save``); a numpy object array becomes a cell array, a dict a struct.
    """
    scipy_io = _require('scipy.io')
    denoised = np.asarray(denoised)
    if denoised.ndim != 5 or denoised.shape[-1] != 3:
        raise ValueError(f'expected (images, blocks, H, W, 3), got {denoised.shape}')
    q = to_uint8(denoised)
    if as_cell:
        blocks = np.empty(q.shape[:2], dtype=object)
        for i in range(q.shape[0]):
            for j in range(q.shape[1]):
                blocks[i, j] = np.ascontiguousarray(q[i, j])
    else:
        blocks = q
    optional = dict(DEFAULT_OPTIONAL_DATA if optional_data is None else optional_data)
    folder = osp.dirname(osp.abspath(out_path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(out_path, lambda f: scipy_io.savemat(
        f, {key: blocks, 'TimeMPSrgb': float(time_mp), 'OptionalData': optional}, do_compression=True))
    return out_path


def read_sidd_submission(path, key=SIDD_SUBMISSION_KEY):
    """Read a submission written by :func:`write_sidd_submission` back as ``(images, blocks, H, W, 3)`` uint8."""
    mat = _loadmat(path)
    if key not in mat:
        raise DataError(f'{path}: no variable {key}')
    cells = mat[key]
    if cells.dtype == object:
        return np.stack([np.stack(list(row)) for row in cells])
    return cells


# ------------------------------------------------------------------------------------------------ DND


def _deref(f, value, path):
    """Resolve an HDF5 object reference (or return a numeric array as it is)."""
    h5py = _require('h5py')
    if isinstance(value, h5py.Reference):
        if not value:
            raise DataError(f'{path}: null object reference in info.boundingboxes')
        return np.array(f[value])
    return np.asarray(value)


def read_dnd_info(info_mat):
    """Read the per-image bounding boxes of DND's ``info.mat``.

    Args:
        info_mat (str): ``info.mat`` (MATLAB v7.3; a v5 file is read with scipy as a fallback).

    Returns:
        list[ndarray]: One ``(blocks, 4)`` int64 array per image (50 x ``(20, 4)`` for DND):
        MATLAB's 1-based inclusive ``boundingboxes`` rows, as stored (see :func:`dnd_blocks`).

    Raises:
        DataError: missing/corrupt file or no ``info.boundingboxes``.
    """
    h5py = _require('h5py')
    if not osp.isfile(info_mat):
        raise DataError(f'{info_mat}: file not found')
    if not _is_hdf5(info_mat):
        mat = _loadmat_simple(info_mat)
        info = mat.get('info')
        entries = info if isinstance(info, list) else [info]
        try:
            boxes = [np.asarray(e['boundingboxes']) for e in entries]
        except (TypeError, KeyError, IndexError):
            raise DataError(f'{info_mat}: no struct info with a field boundingboxes') from None
        return [_check_boxes(b, info_mat) for b in boxes]
    with _h5_open(info_mat) as f:
        try:
            bb = f['info']['boundingboxes']
        except (KeyError, TypeError):
            raise DataError(f'{info_mat}: no struct info with a field boundingboxes') from None
        if not isinstance(bb, h5py.Dataset):
            raise DataError(f'{info_mat}: info.boundingboxes is not an array')
        refs = bb[()]
        if refs.dtype == h5py.ref_dtype or refs.dtype == object:
            boxes = [_deref(f, r, info_mat).transpose() for r in np.asarray(refs).ravel()]
        else:  # a single image's numeric boxes
            boxes = [np.asarray(refs).transpose()]
    return [_check_boxes(b, info_mat) for b in boxes]


def _loadmat_simple(path):
    scipy_io = _require('scipy.io')
    try:
        return scipy_io.loadmat(path, simplify_cells=True)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f'{path}: not a readable MATLAB .mat file ({_one_line(exc)})') from None


def _check_boxes(boxes, path):
    boxes = np.atleast_2d(np.asarray(boxes))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f'{path}: bounding boxes of shape {boxes.shape}, expected (blocks, 4)')
    if not np.all(np.isfinite(boxes)):
        raise DataError(f'{path}: non-finite bounding boxes')
    return np.round(boxes).astype(np.int64)


def read_dnd_image(path):
    """Read one DND sRGB image (``images_srgb/NNNN.mat``).

    Args:
        path (str): The ``.mat`` file (v7.3 with dataset ``InoisySRGB``; v5 also accepted).

    Returns:
        ndarray: ``(H, W, 3)``, RGB, float32 (noisy, in [0, 1]).

    Raises:
        DataError: missing/corrupt file or no ``InoisySRGB``.
    """
    if not osp.isfile(path):
        raise DataError(f'{path}: file not found')
    if _is_hdf5(path):
        with _h5_open(path) as f:
            if 'InoisySRGB' not in f:
                raise DataError(f'{path}: no dataset InoisySRGB (found: {", ".join(f.keys()) or "nothing"})')
            img = np.array(f['InoisySRGB']).transpose()  # HDF5 (3, W, H) -> MATLAB (H, W, 3)
    else:
        mat = _loadmat(path)
        if 'InoisySRGB' not in mat:
            raise DataError(f'{path}: no variable InoisySRGB')
        img = mat['InoisySRGB']
    if img.ndim != 3 or img.shape[-1] != 3:
        raise DataError(f'{path}: InoisySRGB has shape {img.shape}, expected (H, W, 3)')
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return img.astype(np.float32)


def dnd_blocks(image, boxes):
    """Crop the blocks of one DND image, as the official ``denoise_srgb`` does.

    Args:
        image (ndarray): ``(H, W, 3)`` image.
        boxes (ndarray): ``(blocks, 4)`` 1-based inclusive boxes from :func:`read_dnd_info`;
            block ``k`` is ``image[b[k, 0]-1:b[k, 2], b[k, 1]-1:b[k, 3]]``.

    Returns:
        list[ndarray]: The ``(h, w, 3)`` crops (copies; 512x512 for DND).

    Raises:
        DataError: a box outside the image or empty.
    """
    h, w = image.shape[:2]
    out = []
    for k, b in enumerate(np.asarray(boxes, dtype=np.int64)):
        r0, c0, r1, c1 = int(b[0]) - 1, int(b[1]) - 1, int(b[2]), int(b[3])
        if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
            raise DataError(f'bounding box {k + 1} {b.tolist()} does not fit an image of {h}x{w}')
        out.append(image[r0:r1, c0:c1].copy())
    return out


def dnd_block_name(image_index, block_index):
    """``'%04d_%02d.mat'`` of 0-based indices (the file names are 1-based)."""
    return '%04d_%02d.mat' % (image_index + 1, block_index + 1)


def write_dnd_block(denoised, out_dir, image_index, block_index):
    """Write one denoised DND block as the official kit does.

    Args:
        denoised (ndarray): ``(h, w, 3)``, RGB, float in [0, 1] (clipped to [0, 1] here).
        out_dir (str): Output folder (created).
        image_index (int): 0-based image index.
        block_index (int): 0-based block index.

    Returns:
        str: The file ``<out_dir>/%04d_%02d.mat`` (1-based) holding ``Idenoised_crop``,
        float32 ``(h, w, 3)``.

    Note:
        The official kit stores the denoiser output as it is; here it is clipped to [0, 1].
    """
    scipy_io = _require('scipy.io')
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, dnd_block_name(image_index, block_index))
    crop = np.clip(np.asarray(denoised, dtype=np.float32), 0.0, 1.0)
    atomic_write(path, lambda f: scipy_io.savemat(f, {'Idenoised_crop': crop}))
    return path


def bundle_dnd_submission(out_dir, n_images=None, n_blocks=None):
    """Bundle the per-block files into ``<out_dir>/bundled/NNNN.mat`` (DND's ``bundle_submissions_srgb``).

    Args:
        out_dir (str): Folder holding the ``NNNN_BB.mat`` files.
        n_images (int | None): Images (50 for DND). Default: None (the largest image index found).
        n_blocks (int | None): Blocks per image (20 for DND). Default: None (the largest block index found).

    Returns:
        list[str]: The bundled files. Each holds ``Idenoised`` (cell ``1 x n_blocks`` of the
        ``Idenoised_crop`` arrays), ``israw`` = False and ``eval_version`` = ``'1.0'``.

    Raises:
        DataError: no block files, a missing or unreadable block file.
    """
    scipy_io = _require('scipy.io')
    found = [DND_BLOCK_RE.match(n) for n in os.listdir(out_dir)] if osp.isdir(out_dir) else []
    found = [(int(m.group(1)), int(m.group(2))) for m in found if m]
    if not found:
        raise DataError(f'{out_dir}: no NNNN_BB.mat block files to bundle')
    n_images = n_images or max(i for i, _ in found)
    n_blocks = n_blocks or max(b for _, b in found)
    bundled = osp.join(out_dir, 'bundled')
    os.makedirs(bundled, exist_ok=True)
    paths = []
    for i in range(n_images):
        cells = np.empty((n_blocks,), dtype=object)
        for b in range(n_blocks):
            path = osp.join(out_dir, dnd_block_name(i, b))
            mat = _loadmat(path)
            if 'Idenoised_crop' not in mat:
                raise DataError(f'{path}: no variable Idenoised_crop')
            cells[b] = mat['Idenoised_crop']
        path = osp.join(bundled, '%04d.mat' % (i + 1))
        scipy_io.savemat(path, {'Idenoised': cells, 'israw': False, 'eval_version': '1.0'})
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------- denoising


def denoise_blocks(blocks, denoise_fn, desc='blocks', limit=None, show_progress=None):
    """Denoise every block of an array of blocks, with a progress bar.

    Args:
        blocks (ndarray): ``(..., H, W, C)`` float blocks, e.g. SIDD's ``(40, 32, 256, 256, 3)``.
        denoise_fn (callable): ``denoise_fn(block, index) -> denoised``: ``block`` is one
            ``(H, W, C)`` float32 block, ``index`` its tuple of leading indices (e.g.
            ``(i, j)``, for per-block seeds); returns ``(H, W, C)`` float.
        desc (str): Label of the progress bar. Default: ``'blocks'``.
        limit (int | None): Denoise only the first ``limit`` blocks in C order; the others
            are copied through unchanged. Default: None (all).
        show_progress (bool | None): None = tqdm on a terminal. Default: None.

    Returns:
        ndarray: float32, the shape of ``blocks``.
    """
    blocks = np.asarray(blocks)
    lead = blocks.shape[:-3]
    out = blocks.astype(np.float32, copy=True)
    indices = list(np.ndindex(*lead))
    if limit is not None:
        indices = indices[:max(int(limit), 0)]
    bar = progress(indices, desc=desc, unit='block', disable=None if show_progress is None else not show_progress)
    for idx in bar:
        res = np.asarray(denoise_fn(out[idx].copy(), idx), dtype=np.float32)
        if res.shape != out[idx].shape:
            raise ValueError(f'denoise_fn returned {res.shape} for a block of {out[idx].shape}')
        out[idx] = res
    bar.close()
    return out
