"""Evaluate VOS results with the DAVIS protocol (J, F, T), like the official toolkit.

python eval.py --davis_root DIR --results DIR [--task semi-supervised|unsupervised] [--set val]
    [--resolution 480p] [--sequences a,b] [--metrics J,F,T] [--output DIR] [--overwrite]
"""

import sys

from vos_jax.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
