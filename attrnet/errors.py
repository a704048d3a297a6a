"""The error raised for bad dataset input; messages name the file, row or field and expectation."""


class DataError(ValueError):
    """A dataset file or folder does not have the expected form."""
