"""What a running server owns besides its config: the models, one thread per model, the batchers and the
gates; and the two model calls the routes make (generate, classify)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from synthaug.serve.batching import MicroBatcher
from synthaug.serve.config import ServeConfig, batch_wait_seconds
from synthaug.serve.images import data_url, png_bytes, to_model_input
from synthaug.serve.limits import Gate, RequestRefused, decode_image
from synthaug.serve.models import ModelStore, ServedGenerator


@dataclass
class ServerState:
    """Everything a running app owns besides its config: models, their threads, batchers, gates."""

    cfg: ServeConfig
    store: ModelStore
    batchers: dict[str, MicroBatcher] = field(default_factory=dict)
    executors: list[ThreadPoolExecutor] = field(default_factory=list)
    classify_executor: ThreadPoolExecutor | None = None
    gates: dict[str, Gate] = field(default_factory=dict)

    @classmethod
    def build(cls, cfg: ServeConfig, store: ModelStore) -> "ServerState":
        state = cls(cfg, store)
        for name, served in store.generators.items():
            # one thread per model: torch already spreads one forward pass over every core
            ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"generator-{name}")
            state.executors.append(ex)
            state.batchers[name] = MicroBatcher(lambda reqs, s=served: s.sample_many(reqs, cfg.forward_rows), ex,
                                                cfg.forward_rows, batch_wait_seconds(cfg, store.device), cfg.max_batch_images,
                                                cfg.micro_batching)
        state.classify_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classifier")
        state.executors.append(state.classify_executor)
        state.gates = {"generate": Gate(cfg.max_pending_generations, "generate", cfg.retry_after_s),
                       "classify": Gate(cfg.max_pending_classifications, "classify", cfg.retry_after_s)}
        return state

    async def close(self) -> None:
        for b in self.batchers.values():
            await b.close()
        for ex in self.executors:
            ex.shutdown(wait=False, cancel_futures=True)

    def generator(self, name: str) -> ServedGenerator:
        if name not in self.store.generators:
            raise RequestRefused(404, f"unknown generator {name!r}; this server has: {', '.join(self.store.generators)}")
        return self.store.generators[name]

    def class_index(self, served: ServedGenerator, class_name: str) -> int:
        names = served.generator.class_names
        if class_name not in names:
            raise RequestRefused(422, f"unknown class {class_name!r} for generator {served.name}; "
                                      f"its classes: {', '.join(names)}")
        return names.index(class_name)

    async def generate(self, generator: str, class_name: str, count: int, seed: int) -> tuple[ServedGenerator, torch.Tensor]:
        """Check the request, pass the gate, and wait for the batcher's answer (uint8 [count, C, H, W])."""
        served = self.generator(generator)
        index = self.class_index(served, class_name)
        if count > self.cfg.max_generate_images:
            raise RequestRefused(422, f"count {count} is more than the {self.cfg.max_generate_images} images one "
                                      "request may ask for; split it into several requests")
        with self.gates["generate"]:
            return served, await self.batchers[served.name].submit(torch.full((count,), index, dtype=torch.int64), seed)

    def classify_files(self, uploads: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Decode, convert and predict: runs on the classifier's thread (decoding big images is CPU work)."""
        clf = self.store.classifier
        decoded = [decode_image(data, name, self.cfg.max_pixels) for name, data in uploads]
        inputs = torch.stack([to_model_input(d.image, clf.spec["in_channels"], clf.spec["image_size"]) for d in decoded])
        probs = clf.predict(inputs)
        results = []
        for (name, _), d, x, p in zip(uploads, decoded, inputs, probs):
            order = p.argsort()[::-1]
            results.append({"filename": name, "format": d.format, "uploaded_size": list(d.size),
                            "predicted": clf.class_names[int(order[0])],
                            "probabilities": {c: round(float(v), 6) for c, v in zip(clf.class_names, p)},
                            "seen_as": data_url(png_bytes(x))})
        return {"classifier": clf.name, "class_names": clf.class_names, "results": results}
