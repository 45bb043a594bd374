"""`python -m tfds_builders build NAME --config C --manual_dir M --data_dir D` (see build.py)."""

import sys

from tfds_builders.build import main

if __name__ == "__main__":
    sys.exit(main())
