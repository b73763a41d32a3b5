"""torchrun entry point of the data-parallel tests: the synthaug CLI, plus test hooks.

- registers the `test-mlp` classifier (tests/helpers.py);
- with SYNTHAUG_TEST_EXIT_AFTER_CHECKPOINT=1, every process exits abruptly right after the first periodic
  checkpoint of the classifier or generator loop, as if the job had been killed there;
- with SYNTHAUG_TEST_FAIL_RANK=R, rank R raises at the first periodic checkpoint while the others train on;
- with SYNTHAUG_TEST_SLOW_LAST_WRITE=S, rank 0 waits S seconds before writing metrics.json / summary.json;
- with SYNTHAUG_TEST_DONE_DIR=DIR, every rank writes DIR/rankR.done (the time.time() at which the CLI returned);
- with SYNTHAUG_TEST_DUMP_DIR=DIR, every rank saves its classifier loop's state (weights, moving average, unlabelled
  stream with FreeMatch's levels) to DIR/rankR.pt at every checkpoint, the last one after training.
"""

import os
import sys
import time

from helpers import register_test_mlp

register_test_mlp()

if os.environ.get("SYNTHAUG_TEST_EXIT_AFTER_CHECKPOINT") == "1":
    from synthaug.generators.loop import GeneratorTrainer
    from synthaug.training.loop import TrainingSession

    def exiting(original):
        def checkpoint(self):
            original(self)
            os._exit(0)

        return checkpoint

    TrainingSession.checkpoint = exiting(TrainingSession.checkpoint)
    GeneratorTrainer.checkpoint = exiting(GeneratorTrainer.checkpoint)

RANK = int(os.environ.get("RANK", "0"))

if os.environ.get("SYNTHAUG_TEST_FAIL_RANK") == str(RANK):
    from synthaug.generators.loop import GeneratorTrainer
    from synthaug.training.loop import TrainingSession

    def failing(self):
        raise RuntimeError(f"test failure on rank {RANK}")

    TrainingSession.checkpoint = failing
    GeneratorTrainer.checkpoint = failing

if os.environ.get("SYNTHAUG_TEST_DUMP_DIR"):
    import torch

    from synthaug.training.loop import TrainingSession

    def dumping(original):
        def checkpoint(self):
            original(self)
            state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
            if self.ema is not None:
                state.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
            if self.unlabelled is not None:
                state.update({f"unlabelled.{k}": v for k, v in self.unlabelled.state_dict().items()})
            torch.save(state, os.path.join(os.environ["SYNTHAUG_TEST_DUMP_DIR"], f"rank{RANK}.pt"))

        return checkpoint

    TrainingSession.checkpoint = dumping(TrainingSession.checkpoint)

if os.environ.get("SYNTHAUG_TEST_SLOW_LAST_WRITE") and RANK == 0:
    from synthaug.runs import Run

    def slow(original):
        def write_json(self, name, obj):
            if name in ("metrics.json", "summary.json"):
                time.sleep(float(os.environ["SYNTHAUG_TEST_SLOW_LAST_WRITE"]))
            return original(self, name, obj)

        return write_json

    Run.write_json = slow(Run.write_json)

from synthaug.cli.main import main  # noqa: E402

code = main(sys.argv[1:])
if os.environ.get("SYNTHAUG_TEST_DONE_DIR"):
    with open(os.path.join(os.environ["SYNTHAUG_TEST_DONE_DIR"], f"rank{RANK}.done"), "w") as f:
        f.write(repr(time.time()))
sys.exit(code)
