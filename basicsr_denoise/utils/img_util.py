"""Image input/output and tensor conversion.

Every image inside the framework is an RGB numpy array in HWC layout,
``(H, W, C)``, float32 in [0, 1] (C = 1 for gray, 3 for colour), or a
``(C, H, W)`` torch tensor with the same channel order and range. OpenCV's BGR
order never leaves this module.

Supported files: PNG, JPEG, TIFF and BMP (8-bit and 16-bit, gray, RGB, RGBA), HEIC/HEIF
with the ``heif`` extra, and ``.npy`` arrays (float, kept unclipped because noisy inputs
may leave [0, 1]). Decoding and encoding are :mod:`basicsr_denoise.utils.photo_io`'s:
images are read upright (EXIF orientation applied).
"""

import os
import os.path as osp
import warnings

import cv2
import numpy as np
import torch

from basicsr_denoise.utils.atomic import atomic_write
from basicsr_denoise.utils.errors import DataError
from basicsr_denoise.utils.photo_io import HEIF_EXTENSIONS, decode_photo, read_photo, to_rgb_hwc, write_photo

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.npy') + HEIF_EXTENSIONS
"""File extensions treated as images (compared case-insensitively)."""

_to_rgb_hwc = to_rgb_hwc  # the old private name


class PhotoWarning(UserWarning):
    """A file was read, but part of its metadata was not (e.g. a corrupt EXIF block: orientation not applied)."""


def is_image_file(path):
    """Whether ``path`` has an image extension of :data:`IMG_EXTENSIONS` (case-insensitive).

    Args:
        path (str | os.PathLike): File name or path.

    Returns:
        bool: True for ``.png .jpg .jpeg .bmp .tif .tiff .npy .heic .heif`` in any letter case.
    """
    return str(path).lower().endswith(IMG_EXTENSIONS)


def scandir(dir_path, suffix=None, recursive=False, full_path=False):
    """Yield the files of a folder in sorted order, like BasicSR's ``scandir``.

    Hidden files and folders (name starting with ``.``) are skipped.

    Args:
        dir_path (str | os.PathLike): Folder to scan.
        suffix (str | tuple[str] | None): Only yield files ending with it
            (case-insensitive). Default: None (all files).
        recursive (bool): Descend into sub-folders. Default: False.
        full_path (bool): Yield ``dir_path``-joined paths instead of paths relative
            to ``dir_path`` (relative paths use ``/`` as separator). Default: False.

    Yields:
        str: File path, relative to ``dir_path`` unless ``full_path``.

    Raises:
        DataError: if ``dir_path`` is not a folder.
    """
    dir_path = os.fspath(dir_path)
    if not osp.isdir(dir_path):
        raise DataError(f'cannot scan folder {dir_path}: no such folder')
    if suffix is not None:
        if isinstance(suffix, str):
            suffix = (suffix,)
        suffix = tuple(s.lower() for s in suffix)

    def _scan(path, rel):
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith('.'):
                continue
            rel_name = f'{rel}/{entry.name}' if rel else entry.name
            if entry.is_file():
                if suffix is None or entry.name.lower().endswith(suffix):
                    yield osp.join(dir_path, rel_name) if full_path else rel_name
            elif recursive and entry.is_dir():
                yield from _scan(entry.path, rel_name)

    return _scan(dir_path, '')


def _scale(img, path, float32):
    """Scale integer images to float32 [0, 1]; keep float images as they are."""
    if not float32:
        return np.ascontiguousarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.
    if img.dtype == np.bool_:
        return img.astype(np.float32)
    if np.issubdtype(img.dtype, np.floating):
        img = img.astype(np.float32)
        if not np.isfinite(img).all():
            raise DataError(f'cannot read image {path}: contains NaN or Inf values')
        return img
    raise DataError(f'cannot read image {path}: unsupported dtype {img.dtype}')


def imfrombytes(content, path_for_errors='<bytes>', float32=True):
    """Decode an encoded image (PNG/JPEG/TIFF/BMP/HEIC bytes, or ``.npy`` bytes), upright like :func:`imread`.

    ``.npy`` content is recognised by its magic number, not by a file name.

    Args:
        content (bytes | memoryview | np.ndarray): The encoded file content.
        path_for_errors (str): File name or LMDB key named in error messages.
            Default: ``'<bytes>'``.
        float32 (bool): Return float32 in [0, 1] (integer images are divided by 255
            or 65535; float data is kept unclipped). If False, return the stored
            dtype (uint8 / uint16 / float) unscaled. Default: True.

    Returns:
        np.ndarray: ``(H, W, C)``, RGB, C in {1, 3}, float32 in [0, 1] when ``float32``.
            An alpha channel is dropped.

    Raises:
        DataError: ``cannot read image <path>: <reason>`` when it cannot be decoded,
            has an unsupported layout or holds NaN/Inf values.
    """
    img, info = decode_photo(content, path_for_errors)
    for message in info.warnings:
        warnings.warn(message, PhotoWarning, stacklevel=2)
    return _scale(img, path_for_errors, float32)


def imread(path, float32=True):
    """Read an image file as an RGB HWC array.

    Supports PNG, JPEG, TIFF and BMP, 8-bit and 16-bit, gray, RGB and RGBA, HEIC/HEIF
    with the ``heif`` extra, and ``.npy`` arrays of shape (H, W) or (H, W, C). The file
    is read with ``np.fromfile`` and decoded by :func:`~basicsr_denoise.utils.photo_io.decode_photo`
    (OpenCV's pixels), so non-ASCII paths work. The EXIF orientation is applied: the
    array is upright, as a viewer shows the photo. A corrupt EXIF block is a
    :class:`PhotoWarning` (the pixels are still returned, not rotated).

    Note:
        The alpha channel of RGBA (and gray+alpha) images is dropped; it is not
        composited onto a background. ``.npy`` arrays are assumed to be RGB
        already, and float values are kept unclipped (noisy inputs may leave
        [0, 1]); uint8/uint16 arrays are scaled like image files.

    Args:
        path (str | os.PathLike): Image file.
        float32 (bool): Return float32 in [0, 1] (8-bit divided by 255, 16-bit by
            65535). If False, return the stored dtype unscaled. Default: True.

    Returns:
        np.ndarray: ``(H, W, C)``, RGB, C in {1, 3} (gray is ``(H, W, 1)``),
            float32 in [0, 1] when ``float32``.

    Raises:
        DataError: ``cannot read image <path>: <reason>`` for a missing, unreadable
            or corrupt file, or NaN/Inf values.
    """
    img, info = read_photo(path)
    for message in info.warnings:
        warnings.warn(message, PhotoWarning, stacklevel=2)
    return _scale(img, os.fspath(path), float32)


def imwrite(img, path, bit_depth=8):
    """Write an RGB (or gray) float image to a file atomically (never seen half-written), creating parent folders.

    Values are clipped to [0, 1], scaled to the bit depth and rounded. ``.npy``
    files store the float32 array as given (no clipping, no scaling).

    Args:
        img (np.ndarray | torch.Tensor): ``(H, W, 3)`` RGB, ``(H, W)`` or
            ``(H, W, 1)`` gray, float in [0, 1]. A uint8 (uint16) array is written
            unchanged when ``bit_depth`` is 8 (16). A tensor is converted with
            :func:`tensor2img` first.
        path (str | os.PathLike): Output file; the extension picks the format.
        bit_depth (int): 8 or 16 (16 only for PNG and TIFF). Default: 8.

    Raises:
        ValueError: for an unsupported bit depth / format or image shape.
        DataError: if the file cannot be encoded or written.
    """
    path = os.fspath(path)
    if isinstance(img, torch.Tensor):
        img = tensor2img(img)
    img = np.asarray(img)
    ext = osp.splitext(path)[1].lower()
    parent = osp.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if ext == '.npy':
        try:
            atomic_write(path, lambda f: np.save(f, img.astype(np.float32), allow_pickle=False))
        except OSError as exc:
            raise DataError(f'cannot write image {path}: {exc.strerror or exc}') from exc
        return
    write_photo(img, path, bit_depth=bit_depth)


def img2tensor(img):
    """Convert HWC numpy image(s) to ``(C, H, W)`` float32 tensor(s).

    Args:
        img (np.ndarray | list[np.ndarray]): ``(H, W, C)`` or ``(H, W)``, RGB.

    Returns:
        torch.Tensor | list[torch.Tensor]: ``(C, H, W)``, float32, same values.
    """
    if isinstance(img, (list, tuple)):
        return [img2tensor(i) for i in img]
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


def tensor2img(tensor, out_type=np.float32, min_max=(0, 1)):
    """Convert a ``(C, H, W)`` or ``(1, C, H, W)`` tensor to an HWC numpy image.

    The values are mapped from ``min_max`` to [0, 1] first.

    Args:
        tensor (torch.Tensor): ``(C, H, W)`` or ``(1, C, H, W)``, RGB, in ``min_max``.
        out_type (type): ``np.float32`` (values kept unclipped) or ``np.uint8``
            (clipped to [0, 1], times 255, rounded). Default: np.float32.
        min_max (tuple[float, float]): Value range of the input. Default: (0, 1).

    Returns:
        np.ndarray: ``(H, W, C)``, RGB, float32 (unclipped) or uint8 in [0, 255].
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f'tensor2img expects a torch.Tensor, got {type(tensor).__name__}')
    t = tensor.detach().cpu().float()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f'tensor2img expects a batch of one, got shape {tuple(t.shape)}')
        t = t[0]
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ValueError(f'tensor2img expects (C, H, W) or (1, C, H, W), got shape {tuple(t.shape)}')
    lo, hi = float(min_max[0]), float(min_max[1])
    if (lo, hi) != (0., 1.):
        t = (t - lo) / (hi - lo)
    img = t.numpy().transpose(1, 2, 0)
    if out_type == np.uint8:
        return np.rint(np.clip(img, 0., 1.) * 255.).astype(np.uint8)
    if out_type in (np.float32, float):
        return np.ascontiguousarray(img, dtype=np.float32)
    raise ValueError(f'tensor2img: out_type must be np.float32 or np.uint8, got {out_type}')


def make_comparison(images, labels=None, label_height=None, gap=2):
    """Put images side by side with a text label above each panel.

    Typical use: ``make_comparison([noisy, denoised, clean], ['noisy', 'ours', 'clean'])``.
    Gray panels are repeated to three channels, shorter panels are padded with
    black at the bottom, and values are clipped to [0, 1] for display.

    Args:
        images (list[np.ndarray | torch.Tensor]): ``(H, W, C)`` / ``(H, W)`` RGB or
            gray float images in [0, 1], or ``(C, H, W)`` tensors.
        labels (list[str] | None): One label per image; None for no label strip.
            Default: None.
        label_height (int | None): Height of the label strip in pixels. Default:
            None (chosen from the panel width, 12 to 24 px).
        gap (int): White gap between panels in pixels. Default: 2.

    Returns:
        np.ndarray: ``(H', W', 3)``, RGB, float32 in [0, 1].
    """
    if not images:
        raise ValueError('make_comparison needs at least one image')
    if labels is not None and len(labels) != len(images):
        raise ValueError(f'make_comparison: {len(images)} images but {len(labels)} labels')
    panels = []
    for img in images:
        if isinstance(img, torch.Tensor):
            img = tensor2img(img)
        img = np.asarray(img, dtype=np.float32)
        if img.ndim == 2:
            img = img[..., None]
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        elif img.shape[2] == 4:
            img = img[..., :3]
        panels.append(np.clip(img, 0., 1.))
    height = max(p.shape[0] for p in panels)
    if labels is not None and label_height is None:
        label_height = int(np.clip(min(p.shape[1] for p in panels) // 10, 12, 24))
    columns = []
    for i, p in enumerate(panels):
        h, w = p.shape[:2]
        if h < height:
            p = np.concatenate([p, np.zeros((height - h, w, 3), np.float32)], axis=0)
        if labels is not None:
            strip = np.full((label_height, w, 3), 38, np.uint8)  # putText needs 8-bit images
            text = str(labels[i])
            font = cv2.FONT_HERSHEY_SIMPLEX
            scale = label_height / 30.
            (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
            if tw > w - 4 and tw > 0:
                scale *= (w - 4) / tw
                (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
            org = (max((w - tw) // 2, 2), (label_height + th) // 2)
            cv2.putText(strip, text, org, font, scale, (255, 255, 255), 1, cv2.LINE_AA)
            p = np.concatenate([strip.astype(np.float32) / 255., p], axis=0)
        columns.append(p)
        if gap > 0 and i < len(panels) - 1:
            columns.append(np.ones((p.shape[0], gap, 3), np.float32))
    return np.clip(np.concatenate(columns, axis=1), 0., 1.)
