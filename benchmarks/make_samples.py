"""Write the small clean sample images of ``datasets/samples/`` from the benchmark sets.

Usage::

    python benchmarks/make_samples.py /path/to/datasets [--output datasets/samples]

The data root must contain ``Kodak24/kodimNN.png``. The crop boxes are fixed below
so the samples can be regenerated bit-exactly; they were chosen for texture
(spokes, feathers, facades, a lighthouse). The gray sample is a Kodak crop converted
with OpenCV's BGR2GRAY weights (Kodak images are released for unrestricted use).
"""

import argparse
import os
import os.path as osp
import sys

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from basicsr_denoise.utils.errors import exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.img_util import imread  # noqa: E402

# (output name, source relative to the data root, left x, top y, width, height); *_gray crops are converted
CROPS = [
    ('kodim05_crop.png', 'Kodak24/kodim05.png', 448, 320, 128, 128),  # motorbike wheels and spokes
    ('kodim08_crop.png', 'Kodak24/kodim08.png', 96, 320, 128, 128),  # half-timbered facade, windows
    ('kodim23_crop.png', 'Kodak24/kodim23.png', 128, 192, 128, 128),  # parrot head: feathers, smooth areas
    ('kodim19_gray_crop.png', 'Kodak24/kodim19.png', 192, 96, 128, 96),  # lighthouse, fence (gray)
]


def make_samples(data_root, output):
    """Crop the sample images and write them as 8-bit PNG (bytes copied, no re-quantisation).

    Args:
        data_root (str): Folder holding ``Kodak24/`` and ``Set12/``.
        output (str): Output folder.

    Returns:
        list[str]: The written files.
    """
    import cv2
    import numpy as np

    os.makedirs(output, exist_ok=True)
    written = []
    for name, src, x, y, w, h in CROPS:
        img = imread(osp.join(data_root, src), float32=False)  # (H, W, C), RGB, uint8
        if img.shape[0] < y + h or img.shape[1] < x + w:
            raise SystemExit(f'error: {src} is {img.shape[1]}x{img.shape[0]}, too small for the crop {x},{y},{w},{h}')
        crop = img[y:y + h, x:x + w]
        crop = crop[..., ::-1] if crop.shape[2] == 3 else crop[..., 0]  # RGB -> BGR for OpenCV
        if '_gray' in name:
            crop = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2GRAY)
        ok, buf = cv2.imencode('.png', np.ascontiguousarray(crop), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise SystemExit(f'error: cannot encode {name}')
        path = osp.join(output, name)
        buf.tofile(path)
        written.append(path)
        print(f'{path}: {src} box x={x} y={y} w={w} h={h}')
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description='Write datasets/samples/ from Kodak24.')
    parser.add_argument('data_root', help='folder holding Kodak24/')
    parser.add_argument('--output', default=osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                                                     'datasets', 'samples'))
    args = parser.parse_args(argv)
    return make_samples(args.data_root, args.output)


if __name__ == '__main__':
    exit_on_user_error(main)
