"""Moved to synthaug.storage.checkpoints (every file format has one owner, in the storage layer); re-exported here
so that existing imports keep working."""

from synthaug.storage.checkpoints import (  # noqa: F401
    CheckpointError,
    flatten_optimizer,
    load_checkpoint,
    load_tensors,
    read_checkpoint,
    save_checkpoint,
    save_tensors,
    unflatten_optimizer,
)
