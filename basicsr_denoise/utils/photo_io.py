"""Photo input/output: upright pixels, EXIF and ICC profile kept, HEIC/HEIF read, PNG/JPEG/TIFF written.

Every image read and write of the package goes through this module: :func:`~basicsr_denoise.utils.img_util.imread`
and :func:`~basicsr_denoise.utils.img_util.imfrombytes` (the API for file paths, ``test.py``'s datasets) and the
``basicsr-denoise`` command. The work is shared between well-kept libraries:

* pixels: OpenCV (it keeps 16 bits, which Pillow does not for RGB), or pillow-heif for HEIC/HEIF;
* orientation, EXIF and ICC profile: Pillow (``Image.getexif``, ``info['icc_profile']``); no EXIF parsing here;
* writing with metadata: OpenCV's ``imencodeWithMetadata`` (JPEG, PNG, 8 and 16 bits) and Pillow (8-bit TIFF).

Arrays are ``(H, W, C)``, RGB, C in {1, 3}, in the file's dtype (uint8, uint16, or float for ``.npy``), upright:
the EXIF orientation is applied on read (OpenCV applies a TIFF's own orientation tag; libheif applies HEIF's
``irot``/``imir``, which the HEIF specification puts before EXIF), and the kept EXIF says orientation 1.

Note:
    A 16-bit TIFF is written with OpenCV, which cannot store EXIF or ICC in TIFF: it keeps its 16 bits but not
    the metadata (:func:`encode_photo` says so in its notes; a 16-bit PNG keeps both).
"""

import io
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from typing import List, Optional

import cv2
import numpy as np

from basicsr_denoise.utils.atomic import atomic_write
from basicsr_denoise.utils.errors import DataError, OptionError

HEIF_EXTENSIONS = ('.heic', '.heif')
"""HEIC/HEIF file extensions; reading them needs the ``heif`` extra (pillow-heif)."""

HEIF_HINT = "pip install 'basicsr_denoise[heif]' (pillow-heif)"

OUTPUT_FORMATS = {'png': '.png', 'jpg': '.jpg', 'tif': '.tif'}
"""``--format`` value -> extension of the written file."""

DEFAULT_JPEG_QUALITY = 95

_NPY_MAGIC = b'\x93NUMPY'
_HEIF_BRANDS = (b'heic', b'heix', b'hevc', b'hevx', b'heim', b'heis', b'hevm', b'hevs', b'mif1', b'msf1')
_EXT_FORMAT = {'.png': 'png', '.jpg': 'jpg', '.jpeg': 'jpg', '.jpe': 'jpg', '.tif': 'tif', '.tiff': 'tif'}
_SIXTEEN_BIT_EXTS = ('.png', '.tif', '.tiff')
_ORIENTATION = 0x0112
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
# TIFF tags that describe the photo (kept); the others of a TIFF's IFD0 describe its own layout (dropped)
_TIFF_DESCRIPTIVE = (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298)
_ORIENT = {  # EXIF orientation -> the transform that makes stored pixels upright, as Pillow's exif_transpose
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: a.swapaxes(0, 1)[::-1],
}


@dataclass
class PhotoInfo:
    """What a read keeps of a file besides its pixels, for :func:`write_photo`.

    Args:
        format (str): ``'jpeg'``, ``'png'``, ``'tiff'``, ``'bmp'``, ``'heif'``, ``'npy'``, ... Default: ``''``.
        orientation (int): The file's EXIF orientation (1-8), already applied to the pixels. Default: 1.
        exif (bytes | None): The EXIF block (TIFF header first, no ``Exif\\0\\0``) with orientation 1.
        icc_profile (bytes | None): The ICC colour profile.
        warnings (list[str]): One-line warnings of the read (e.g. corrupt EXIF ignored).
    """
    format: str = ''
    orientation: int = 1
    exif: Optional[bytes] = None
    icc_profile: Optional[bytes] = None
    warnings: List[str] = field(default_factory=list)


def _first_line(exc):
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if isinstance(exc, cv2.error) and lines else (lines[0] if lines else type(exc).__name__)


def apply_orientation(img, orientation):
    """Make ``(H, W, ...)`` pixels stored with EXIF ``orientation`` (1-8) upright, as a viewer shows them."""
    return _ORIENT[orientation](img)


def to_rgb_hwc(img, path):
    """Normalise an OpenCV-decoded array (BGR/BGRA/gray) to RGB HWC with 1 or 3 channels (alpha dropped)."""
    if img.ndim == 2:
        return img[..., None]
    if img.ndim != 3:
        raise DataError(f'cannot read image {path}: unsupported array shape {tuple(img.shape)}')
    c = img.shape[2]
    if c == 1:
        return img
    if c == 2:  # gray + alpha
        return img[..., :1]
    if c in (3, 4):
        return img[..., 2::-1]  # BGR(A) -> RGB, alpha dropped
    raise DataError(f'cannot read image {path}: unsupported number of channels {c}')


def _decode_npy(buf, path):
    try:
        img = np.load(io.BytesIO(buf.tobytes()), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any failure is a bad file
        raise DataError(f'cannot read image {path}: invalid .npy data ({exc})') from exc
    if img.ndim == 3 and img.shape[2] not in (1, 3):
        raise DataError(f'cannot read image {path}: .npy array must be (H, W), (H, W, 1) or (H, W, 3), '
                        f'got {tuple(img.shape)}')
    if img.ndim == 2:
        img = img[..., None]
    elif img.ndim != 3:
        raise DataError(f'cannot read image {path}: .npy array must be (H, W) or (H, W, C), got {tuple(img.shape)}')
    if np.issubdtype(img.dtype, np.floating) and not np.isfinite(img).all():
        raise DataError(f'cannot read image {path}: contains NaN or Inf values')
    return img  # .npy is stored RGB already


def is_heif(head, path=''):
    """Whether a file starting with ``head`` (its first 12 bytes or more) or named ``path`` is HEIC/HEIF."""
    return (head[4:8] == b'ftyp' and head[8:12] in _HEIF_BRANDS) or str(path).lower().endswith(HEIF_EXTENSIONS)


def _exif_of(exif, fmt, path, info):
    """Orientation and portable EXIF bytes (orientation 1) of Pillow's ``Exif``; warnings go to ``info``."""
    orientation = exif.get(_ORIENTATION, 1)
    if orientation == 0:  # 'undefined', as some software writes it: no rotation, nothing to warn about
        orientation = 1
    if orientation not in _ORIENT:
        info.warnings.append(f'{path}: EXIF orientation {orientation!r} is not 1-8, ignored')
        orientation = 1
    if fmt == 'tiff':  # IFD0 is the TIFF's own: keep the tags that describe the photo
        from PIL import Image
        kept = Image.Exif()
        for tag in _TIFF_DESCRIPTIVE:
            if tag in exif:
                kept[tag] = exif[tag]
        for ifd in (_EXIF_IFD, _GPS_IFD):
            sub = exif.get_ifd(ifd)
            if sub:
                kept.get_ifd(ifd).update(sub)
        exif = kept
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    data = exif.tobytes() if len(exif) else b''
    return orientation, (data[6:] if data.startswith(b'Exif\x00\x00') else data) or None


def _read_metadata(content, path, info):
    """Fill ``info`` with the format, orientation, EXIF and ICC profile that Pillow finds in ``content``."""
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            pil = Image.open(io.BytesIO(content))
    except Exception as exc:  # noqa: BLE001 - OpenCV decoded it; Pillow only adds metadata
        info.warnings.append(f'{path}: orientation, EXIF and ICC profile not read (Pillow: {_first_line(exc)})')
        return
    with pil:
        info.format = (pil.format or '').lower()
        icc = pil.info.get('icc_profile')
        info.icc_profile = bytes(icc) if icc else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                exif, problem = pil.getexif(), None
            except Exception as exc:  # noqa: BLE001 - a corrupt EXIF block must not lose the pixels
                exif, problem = None, _first_line(exc)
        if problem is None and caught:
            problem = _first_line(caught[0].message)
        if problem is None and pil.info.get('exif') and not len(exif):
            problem = 'no readable entry'
        if problem is not None:
            info.warnings.append(f'{path}: corrupt EXIF ignored ({problem}); orientation not applied, EXIF not kept')
            return
        try:
            info.orientation, info.exif = _exif_of(exif, info.format, path, info)
        except Exception as exc:  # noqa: BLE001
            info.warnings.append(f'{path}: corrupt EXIF ignored ({_first_line(exc)}); EXIF not kept')


def _decode_heif(content, path):
    try:
        import pillow_heif
    except ImportError:
        raise DataError(f'cannot read image {path}: HEIC/HEIF needs the optional extra: {HEIF_HINT}') from None
    try:
        heif = pillow_heif.open_heif(io.BytesIO(content), convert_hdr_to_8bit=False)
        img = np.asarray(heif)  # RGB(A) or gray; 10/12-bit images come as uint16 using the full range
    except Exception as exc:  # noqa: BLE001 - libheif's errors are ValueError/RuntimeError
        raise DataError(f'cannot read image {path}: not a decodable HEIC/HEIF (corrupt or truncated: '
                        f'{_first_line(exc)})') from exc
    if img.ndim == 2:
        img = img[..., None]
    elif img.shape[2] in (2, 4):
        img = img[..., :img.shape[2] - 1]  # alpha dropped
    info = PhotoInfo(format='heif')
    icc = heif.info.get('icc_profile')
    info.icc_profile = bytes(icc) if icc else None
    if heif.info.get('exif'):
        from PIL import Image
        try:
            exif = Image.Exif()
            exif.load(heif.info['exif'])
            _, info.exif = _exif_of(exif, 'heif', path, info)  # libheif applied irot/imir; EXIF's is ignored
        except Exception as exc:  # noqa: BLE001
            info.warnings.append(f'{path}: corrupt EXIF ignored ({_first_line(exc)}); EXIF not kept')
    return img, info


def decode_photo(content, path_for_errors='<bytes>'):
    """Decode an encoded image (PNG/JPEG/TIFF/BMP/WebP, HEIC/HEIF with the extra, or ``.npy`` bytes), upright.

    Args:
        content (bytes | memoryview | np.ndarray): The encoded file content.
        path_for_errors (str): File name or LMDB key named in messages. Default: ``'<bytes>'``.

    Returns:
        tuple: ``(img, info)``: ``img`` is ``(H, W, C)``, RGB, C in {1, 3}, in the stored dtype (uint8, uint16,
        or the ``.npy`` dtype), the EXIF orientation applied; ``info`` a :class:`PhotoInfo`.

    Raises:
        DataError: ``cannot read image <path>: <reason>`` for an undecodable file (a HEIC without the extra
            names it), an unsupported layout, or NaN/Inf values in a ``.npy``.
    """
    path = path_for_errors
    if isinstance(content, np.ndarray):
        buf = content.reshape(-1).view(np.uint8)
    else:
        buf = np.frombuffer(content, dtype=np.uint8)
    if buf.size == 0:
        raise DataError(f'cannot read image {path}: empty file')
    head = buf[:16].tobytes()
    if head[:6] == _NPY_MAGIC:
        return _decode_npy(buf, path), PhotoInfo(format='npy')
    if is_heif(head, path):
        return _decode_heif(buf.tobytes(), path)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # keeps 16 bits; ignores EXIF orientation (not TIFF's)
    except cv2.error as exc:
        raise DataError(f'cannot read image {path}: {_first_line(exc)}') from exc
    if img is None:
        raise DataError(f'cannot read image {path}: not a decodable image (corrupt, truncated or unsupported format)')
    info = PhotoInfo()
    _read_metadata(buf.tobytes(), path, info)
    img = to_rgb_hwc(img, path)
    if info.format != 'tiff':  # OpenCV applies a TIFF's orientation tag itself
        img = apply_orientation(img, info.orientation)
    return img, info


def read_photo(path):
    """Read an image file with :func:`decode_photo`: ``(img, info)``, the pixels upright in the stored dtype.

    Raises:
        DataError: ``cannot read image <path>: <reason>`` for a missing, unreadable or undecodable file.
    """
    path = os.fspath(path)
    try:
        content = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataError(f'cannot read image {path}: no such file') from exc
    except OSError as exc:
        raise DataError(f'cannot read image {path}: {exc.strerror or exc}') from exc
    return decode_photo(content, path)


# ------------------------------------------------------------------------------------------------ writing
def check_quality(quality):
    """``quality`` if it is a JPEG quality 1-100 (None: the default, 95); an :class:`OptionError` otherwise."""
    if quality is None:
        return DEFAULT_JPEG_QUALITY
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise OptionError(f'--quality: JPEG quality must be an integer 1-100, got {quality!r}')
    return int(quality)


def output_extension(input_path, fmt=None):
    """The extension of an output of ``input_path``: ``fmt``'s (png, jpg, tif), else the input's format where
    it can be written (PNG, JPEG, TIFF), else ``.png`` (BMP, HEIC, WebP, ``.npy``, ...)."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise OptionError(f"--format: unknown format {fmt!r} (known: {', '.join(OUTPUT_FORMATS)})")
        return OUTPUT_FORMATS[fmt]
    return OUTPUT_FORMATS[_EXT_FORMAT.get(osp.splitext(str(input_path))[1].lower(), 'png')]


def output_bit_depth(bit_depth, ext):
    """``(bit depth written, note)``: 16 bits where ``ext`` holds them (PNG, TIFF), else 8 and a one-line note."""
    if bit_depth == 16 and ext.lower() not in _SIXTEEN_BIT_EXTS:
        kind = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.jpe': 'JPEG'}.get(ext.lower(), ext.lstrip('.').upper())
        return 8, f'16-bit input written as 8-bit {kind} (use --format png or tif to keep 16 bits)'
    return bit_depth, None


def _quantize(img, path, bit_depth):
    if bit_depth not in (8, 16):
        raise ValueError(f'imwrite {path}: bit_depth must be 8 or 16, got {bit_depth}')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f'imwrite {path}: expected (H, W), (H, W, 1) or (H, W, 3), got {tuple(img.shape)}')
    out_dtype = np.uint8 if bit_depth == 8 else np.uint16
    if img.dtype != out_dtype:
        peak = 255. if bit_depth == 8 else 65535.
        img = np.rint(np.clip(np.nan_to_num(img.astype(np.float64)), 0., 1.) * peak).astype(out_dtype)
    return img


def _icc_fits(icc, channels):
    """An ICC profile's colour space (header bytes 16-19) fits the image's channels."""
    return icc is not None and len(icc) >= 20 and icc[16:20] == (b'GRAY' if channels == 1 else b'RGB ')


def encode_photo(img, ext, info=None, quality=None, bit_depth=8, path_for_errors='<bytes>'):
    """Encode an RGB (or gray) image, with ``info``'s EXIF and ICC profile where the format can hold them.

    Args:
        img (np.ndarray): ``(H, W, 3)`` RGB, ``(H, W)`` or ``(H, W, 1)`` gray, float in [0, 1] (clipped, scaled
            to the bit depth and rounded), or uint8 (uint16) written unchanged at bit depth 8 (16).
        ext (str): ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff`` (also ``.bmp`` and the other OpenCV
            formats, without metadata).
        info (PhotoInfo | None): EXIF and ICC profile to keep; None for none. Default: None.
        quality (int | None): JPEG quality 1-100; None: 95. Default: None.
        bit_depth (int): 8 or 16 (16 only for PNG and TIFF). Default: 8.
        path_for_errors (str): Named in messages. Default: ``'<bytes>'``.

    Returns:
        tuple: ``(data, notes)``: the encoded bytes and one-line notes on metadata that was not kept.
    """
    path, ext = path_for_errors, (ext or '.png').lower()
    if bit_depth == 16 and ext not in _SIXTEEN_BIT_EXTS:
        raise ValueError(f'imwrite {path}: 16-bit output needs .png, .tif or .tiff, got {ext or "no extension"}')
    img = _quantize(np.asarray(img), path, bit_depth)
    channels = 1 if img.ndim == 2 else 3
    exif = info.exif if info is not None else None
    icc = info.icc_profile if info is not None and _icc_fits(info.icc_profile, channels) else None
    notes = []
    params = [cv2.IMWRITE_JPEG_QUALITY, check_quality(quality)] if ext in ('.jpg', '.jpeg', '.jpe') else []
    if ext in ('.tif', '.tiff') and (exif or icc) and bit_depth == 8:
        return _encode_tiff_pillow(img, exif, icc, path), notes
    if ext not in ('.png', '.jpg', '.jpeg', '.jpe') and (exif or icc):
        notes.append(f'{path}: EXIF and ICC profile not kept ({"16-bit TIFF" if bit_depth == 16 else ext} '
                     'cannot hold them here; use --format png to keep them)')
        exif = icc = None
    bgr = np.ascontiguousarray(img[..., ::-1]) if img.ndim == 3 else img  # RGB -> BGR for OpenCV
    types = [t for t, d in ((cv2.IMAGE_METADATA_EXIF, exif), (cv2.IMAGE_METADATA_ICCP, icc)) if d]
    chunks = [np.frombuffer(d, np.uint8) for d in (exif, icc) if d]
    try:
        if types:
            ok, buf = cv2.imencodeWithMetadata(ext, bgr, types, chunks, params)
        else:
            ok, buf = cv2.imencode(ext, bgr, params)
    except cv2.error as exc:
        raise DataError(f'cannot write image {path}: {_first_line(exc)}') from exc
    if not ok:
        raise DataError(f'cannot write image {path}: encoding failed')
    return buf.tobytes(), notes


def _encode_tiff_pillow(img, exif, icc, path):
    from PIL import Image
    kwargs = {}  # uncompressed: Pillow's own TIFF writer keeps the EXIF sub-IFD, libtiff's (compressed) refuses it
    if exif:
        kwargs['exif'] = b'Exif\x00\x00' + exif
    if icc:
        kwargs['icc_profile'] = icc
    bio = io.BytesIO()
    try:
        Image.fromarray(img).save(bio, format='TIFF', **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f'cannot write image {path}: {_first_line(exc)}') from exc
    return bio.getvalue()


def write_photo(img, path, info=None, quality=None, bit_depth=8):
    """Write an image atomically (never seen half-written) with :func:`encode_photo`, creating parent folders.

    Args:
        img, info, quality, bit_depth: As in :func:`encode_photo`.
        path (str | os.PathLike): Output file; the extension picks the format.

    Returns:
        list[str]: One-line notes on metadata that was not kept.

    Raises:
        ValueError: for an unsupported bit depth / format or image shape.
        DataError: if the file cannot be encoded or written.
    """
    path = os.fspath(path)
    data, notes = encode_photo(img, osp.splitext(path)[1], info, quality, bit_depth, path_for_errors=path)
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as exc:
        raise DataError(f'cannot write image {path}: {exc.strerror or exc}') from exc
    return notes


__all__ = ['PhotoInfo', 'HEIF_EXTENSIONS', 'OUTPUT_FORMATS', 'DEFAULT_JPEG_QUALITY', 'apply_orientation',
           'decode_photo', 'read_photo', 'encode_photo', 'write_photo', 'output_extension', 'output_bit_depth',
           'check_quality', 'is_heif', 'to_rgb_hwc']
