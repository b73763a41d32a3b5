"""torchrun entry point of the data-parallel tests: the synthaug CLI, plus two test hooks.

- registers the `test-mlp` classifier (tests/helpers.py);
- with SYNTHAUG_TEST_EXIT_AFTER_CHECKPOINT=1, every process exits abruptly right after the first periodic
  checkpoint of the classifier or generator loop, as if the job had been killed there.
"""

import os
import sys

from helpers import register_test_mlp

register_test_mlp()

if os.environ.get("SYNTHAUG_TEST_EXIT_AFTER_CHECKPOINT") == "1":
    from synthaug.generators.loop import GeneratorTrainer
    from synthaug.training.loop import _Session

    def exiting(original):
        def checkpoint(self):
            original(self)
            os._exit(0)

        return checkpoint

    _Session.checkpoint = exiting(_Session.checkpoint)
    GeneratorTrainer.checkpoint = exiting(GeneratorTrainer.checkpoint)

from synthaug.cli.main import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
