"""``python -m basicsr_denoise``: the ``basicsr-denoise`` command (:mod:`basicsr_denoise.cli`)."""

from basicsr_denoise.cli import main

if __name__ == '__main__':
    main()
