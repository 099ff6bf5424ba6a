"""Random crops and flips/rotations with an explicit random generator.

Every random choice is drawn from a ``np.random.Generator`` handed in by the
caller. Datasets get that generator from :func:`split_index`: the
:class:`~basicsr_denoise.data.sampler.EnlargedSampler` yields ``(idx, sample_seed)``
pairs, so the augmentation of a sample depends only on the sampler's seed, epoch
and position, not on the worker that loads it or on how often the loader was
restarted. This is what keeps resumed training bit-exact for any ``num_workers``.

Images are numpy arrays ``(H, W, C)``, RGB, float32 (any range).
"""

import numbers

import numpy as np

from basicsr_denoise.utils.errors import DataError

_SEED_MAX = 2**63 - 1


def split_index(index):
    """Split a dataset index into the image index and the sample's random generator.

    Args:
        index (int | tuple[int, int]): Either an image index (then the generator is
            seeded from numpy's global RNG with ``np.random.randint``, which the
            training script and ``worker_init_fn`` seed), or ``(idx, sample_seed)``
            as yielded by ``EnlargedSampler`` (then the generator is
            ``np.random.default_rng(sample_seed)``).

    Returns:
        tuple[int, np.random.Generator]: ``(idx, rng)``.
    """
    if isinstance(index, (tuple, list)):
        if len(index) != 2:
            raise ValueError(f'dataset index must be an int or (idx, sample_seed), got {index!r}')
        idx, seed = index
        return int(idx), np.random.default_rng(int(seed))
    if hasattr(index, 'item'):  # numpy / torch scalars
        index = index.item()
    if not isinstance(index, numbers.Integral):
        raise ValueError(f'dataset index must be an int or (idx, sample_seed), got {index!r}')
    seed = np.random.randint(0, _SEED_MAX, dtype=np.int64)
    return int(index), np.random.default_rng(int(seed))


def _crop_origin(h, w, size_h, size_w, rng):
    top = int(rng.integers(0, h - size_h + 1))
    left = int(rng.integers(0, w - size_w + 1))
    return top, left


def random_crop(img, size, rng, path=None):
    """Crop the same random ``size x size`` window from one or several images.

    Args:
        img (np.ndarray | list[np.ndarray]): ``(H, W, C)`` image(s) of equal H, W.
        size (int | tuple[int, int]): Crop size, or ``(height, width)``.
        rng (np.random.Generator): Source of the crop position.
        path (str | None): File named in error messages. Default: None.

    Returns:
        np.ndarray | list[np.ndarray]: The crop(s), matching the input type.

    Raises:
        DataError: if an image is smaller than the crop.
    """
    imgs = img if isinstance(img, list) else [img]
    size_h, size_w = (size, size) if isinstance(size, numbers.Integral) else (int(size[0]), int(size[1]))
    h, w = imgs[0].shape[:2]
    for im in imgs[1:]:
        if im.shape[:2] != (h, w):
            raise DataError(f'{path or "image"}: images to crop together differ in size '
                            f'({h}x{w} vs {im.shape[0]}x{im.shape[1]})')
    if h < size_h or w < size_w:
        raise DataError(f'{path or "image"}: image size {h}x{w} is smaller than the crop size {size_h}x{size_w}')
    top, left = _crop_origin(h, w, size_h, size_w, rng)
    out = [im[top:top + size_h, left:left + size_w, ...] for im in imgs]
    return out if isinstance(img, list) else out[0]


def paired_random_crop(img_gts, img_lqs, gt_size, rng, gt_path=None):
    """Crop the same random window from ground-truth and noisy images (scale 1).

    Args:
        img_gts (np.ndarray | list[np.ndarray]): ``(H, W, C)`` ground-truth image(s).
        img_lqs (np.ndarray | list[np.ndarray]): ``(H, W, C)`` noisy image(s), same H, W.
        gt_size (int): Crop size.
        rng (np.random.Generator): Source of the crop position.
        gt_path (str | None): File named in error messages. Default: None.

    Returns:
        tuple: ``(img_gts, img_lqs)`` cropped, each a list if given as a list.

    Raises:
        DataError: if the sizes differ or are smaller than ``gt_size``, naming ``gt_path``.
    """
    gts = img_gts if isinstance(img_gts, list) else [img_gts]
    lqs = img_lqs if isinstance(img_lqs, list) else [img_lqs]
    h, w = gts[0].shape[:2]
    bad = next((im for im in lqs if im.shape[:2] != (h, w)), None)
    if bad is not None:
        raise DataError(f'{gt_path or "image"}: gt size {h}x{w} differs from lq size {bad.shape[0]}x{bad.shape[1]}')
    if h < gt_size or w < gt_size:
        raise DataError(f'{gt_path or "image"}: image size {h}x{w} is smaller than gt_size {gt_size}')
    out = random_crop(gts + lqs, gt_size, rng, gt_path)  # one window for all
    gts, lqs = out[:len(gts)], out[len(gts):]
    return (gts if isinstance(img_gts, list) else gts[0]), (lqs if isinstance(img_lqs, list) else lqs[0])


def augment(imgs, hflip=True, rotation=True, rng=None, return_status=False):
    """Random horizontal flip, vertical flip and 90-degree rotation, as in BasicSR.

    The same transform is applied to every image. Three uniform numbers are always
    drawn (in the order hflip, vflip, rot90), whatever the flags, so the draws
    that follow do not depend on the options.

    Args:
        imgs (np.ndarray | list[np.ndarray]): ``(H, W, C)`` image(s).
        hflip (bool): Allow a horizontal flip. Default: True.
        rotation (bool): Allow a vertical flip and a transpose (rot90). Default: True.
        rng (np.random.Generator | None): Source of the choices. Default: None
            (a generator seeded from numpy's global RNG).
        return_status (bool): Also return ``(hflip, vflip, rot90)``. Default: False.

    Returns:
        np.ndarray | list[np.ndarray]: Transformed image(s), matching the input
            type (plus the status tuple when ``return_status``).
    """
    if rng is None:
        rng = np.random.default_rng(int(np.random.randint(0, _SEED_MAX, dtype=np.int64)))
    u = rng.random(3)
    do_h = bool(hflip and u[0] < 0.5)
    do_v = bool(rotation and u[1] < 0.5)
    do_r = bool(rotation and u[2] < 0.5)

    def _aug(img):
        if do_h:
            img = img[:, ::-1, ...]
        if do_v:
            img = img[::-1, :, ...]
        if do_r:
            img = img.transpose(1, 0, 2) if img.ndim == 3 else img.T
        return np.ascontiguousarray(img)

    out = [_aug(i) for i in imgs] if isinstance(imgs, list) else _aug(imgs)
    if return_status:
        return out, (do_h, do_v, do_r)
    return out


def pad_to_size(img, size):
    """Reflect-pad an ``(H, W, C)`` image at the bottom/right to at least ``size x size``.

    Padding uses ``np.pad(mode='reflect')`` repeatedly, so images much smaller
    than ``size`` are tiled by mirroring; a 1-pixel side is repeated.

    Args:
        img (np.ndarray): ``(H, W, C)`` image.
        size (int): Minimum height and width.

    Returns:
        np.ndarray: ``(max(H, size), max(W, size), C)``; the original is the top-left part.
    """
    while img.shape[0] < size or img.shape[1] < size:
        h, w = img.shape[:2]
        ph = min(size - h, h - 1) if h < size else 0
        pw = min(size - w, w - 1) if w < size else 0
        if (h < size and h == 1) or (w < size and w == 1):
            img = np.pad(img, ((0, max(size - h, 0)), (0, max(size - w, 0)), (0, 0)), mode='edge')
            continue
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode='reflect')
    return img
