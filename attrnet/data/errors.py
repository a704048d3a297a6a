"""``DataError`` for the data readers (defined in ``attrnet.errors``, which the attribute schema
and the prediction tables also use without importing the data package)."""

from attrnet.errors import DataError

__all__ = ["DataError"]
