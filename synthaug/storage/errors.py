"""Errors raised when a file on disk is missing, corrupt or of an unknown format."""


class DatasetError(RuntimeError):
    """A dataset could not be found, read or subset as asked; the message says what to do.
    Defined here, below synthaug.data (which re-exports it), because the synthetic-set store raises it too."""
