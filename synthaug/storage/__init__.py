"""Files on disk, one owner each, below everything that reads or writes them.

- ``run_config``: a run folder's resolved ``config.json`` (and the data section a generator run recorded)
- ``synthetic_store``: a synthetic set's folder (``manifest.json`` + safetensors shards)
- ``classifier_files``: a trained classifier's ``model.json`` + ``model.safetensors``
- ``checkpoints``: model / optimiser / loop state and tensor maps as safetensors, written atomically

The modules know tensors, dicts and paths only: the layers above turn them into datasets and models.
"""
