"""Package metadata for basicsr_denoise (``pip install .``, ``pip install -e .[test]``, wheels).

The shipped checkpoints live in ``experiments/pretrained_models/`` of the source tree; the build copies
every one that ``basicsr_denoise/weights/registry.json`` lists into the package
(``basicsr_denoise/weights/``), so a wheel or a non-editable install finds them through
``importlib.resources`` from any working directory.
"""

import json
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

WEIGHTS_SRC = os.path.join('experiments', 'pretrained_models')


class BuildWithWeights(build_py):
    """``build_py`` that also copies the registered checkpoints into ``basicsr_denoise/weights/``."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):  # pip install -e: the weights are read from the source tree
            return
        with open(os.path.join('basicsr_denoise', 'weights', 'registry.json'), encoding='utf-8') as f:
            registry = json.load(f)
        dest = os.path.join(self.build_lib, 'basicsr_denoise', 'weights')
        self.mkpath(dest)
        for name, entry in registry.items():
            src = os.path.join(WEIGHTS_SRC, name)
            if entry.get('sha256'):
                if not os.path.isfile(src):
                    raise FileNotFoundError(f'{src}: registered in basicsr_denoise/weights/registry.json but missing')
                self.copy_file(src, os.path.join(dest, name))


def read_version():
    with open(os.path.join('basicsr_denoise', '__init__.py'), encoding='utf-8') as f:
        for line in f:
            if line.startswith('__version__'):
                return line.split('=')[1].strip().strip("'\"")
    raise RuntimeError('no __version__')


setup(
    name='basicsr_denoise',
    version=read_version(),
    description='Zero-shot and self-supervised image denoising (MPI, Noise2Score) in a BasicSR-style framework',
    long_description=open('README.md', encoding='utf-8').read() if os.path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['basicsr_denoise', 'basicsr_denoise.*']),
    package_data={'basicsr_denoise': ['presets/*.yml', 'weights/registry.json', 'weights/zoo.json']},
    cmdclass={'build_py': BuildWithWeights},
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1',
        'numpy',
        # headless build: the same cv2 module without GUI/libGL, so servers and CI need no X libraries
        'opencv-python-headless>=4.12',  # imencodeWithMetadata: EXIF and ICC in JPEG/PNG outputs
        'pillow',  # EXIF orientation, EXIF and ICC profile of photos (utils/photo_io.py)
        'pyyaml',
        'lmdb',
        'tensorboard',
        'tqdm',
    ],
    extras_require={
        'test': ['pytest', 'scikit-image'],
        'bench': ['scipy', 'h5py', 'bm3d'],  # bm3d: CBM3D in benchmarks/universality.py only
        'heif': ['pillow-heif'],  # HEIC/HEIF inputs (phone photos)
    },
    entry_points={
        'console_scripts': [
            'basicsr-denoise=basicsr_denoise.cli:main',
            'basicsr-denoise-train=basicsr_denoise.train:main',
            'basicsr-denoise-test=basicsr_denoise.test:main',
        ],
    },
    license='Apache-2.0',
)
