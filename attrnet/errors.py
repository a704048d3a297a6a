"""Errors for a user's bad input; messages name the file, row or field and what was expected.

``attrnet.cli.errors`` prints them (and any ``ValueError`` that attrnet's own checks raise) as
one line ``error: <message>`` with exit status 2.
"""


class DataError(ValueError):
    """A dataset file or folder does not have the expected form."""


class RefusedOutputError(ValueError):
    """An output would replace a file this command did not create: one of its inputs, an
    existing result (without ``overwrite=true``) or another run's files."""
