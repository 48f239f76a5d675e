"""Running emix's command line in-process for tests."""

from __future__ import annotations

import warnings


def run_cli(argv, capsys):
    """``emix.cli.main(argv)`` with numpy/scikit-learn warnings held off:
    ``(exit code, stdout, stderr)`` as pytest's ``capsys`` captured them."""
    from emix.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
