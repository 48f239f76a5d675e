"""``python -m emix``: the ``emix`` command line (:func:`emix.cli.main`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
