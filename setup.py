"""Package metadata for basicsr_denoise (``pip install -e .`` / ``pip install -e .[test]``)."""

import os

from setuptools import find_packages, setup


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
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1',
        'numpy',
        # headless build: the same cv2 module without GUI/libGL, so servers and CI need no X libraries
        'opencv-python-headless',
        'pyyaml',
        'lmdb',
        'tensorboard',
        'tqdm',
    ],
    extras_require={
        'test': ['pytest', 'scikit-image'],
        'bench': ['scipy', 'h5py'],
    },
    entry_points={
        'console_scripts': [
            'basicsr-denoise-train=basicsr_denoise.train:main',
            'basicsr-denoise-test=basicsr_denoise.test:main',
        ],
    },
    license='Apache-2.0',
)
