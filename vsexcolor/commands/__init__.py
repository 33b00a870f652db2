"""Subcommands of the ``vsexcolor`` command line; see :mod:`vsexcolor.cli`."""
