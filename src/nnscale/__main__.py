"""`python -m nnscale` — the same as the `nnscale` console script."""

import sys

from nnscale.cli import main

if __name__ == "__main__":
    sys.exit(main())
