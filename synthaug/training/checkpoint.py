"""Moved to synthaug.storage.checkpoints (every file format has one owner, in the storage layer). Nothing in synthaug
imports this module any more; it re-exports the names only so that branches written before the move still run.
Delete it once they are merged."""

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
