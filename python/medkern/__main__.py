"""`python -m medkern ...`: the same command line as the `medkern` console script."""
import sys

from .cli import main

sys.exit(main())
