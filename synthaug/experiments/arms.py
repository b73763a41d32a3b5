"""An arm of an experiment: its display name and the structured fields the report groups and plots by.

Kinds build an `Arm` when they record a row, so the report never has to recover "which generator, which
p_real" from a display name (renaming an arm then changes a label, never a figure).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Group = Literal["classical", "generators", "p_real", "pool", "transfer", "budget", "quality"]
# columns of results.csv after the tidy five, in this order; "view" is filled in from the experiment's view
FIELDS = ("group", "generator", "mixing", "p_real", "strength", "per_image", "budget", "view")


@dataclass(frozen=True)
class Arm:
    name: str  # what the report prints
    group: Group  # classical: real images only; generators / p_real / pool: the families of synthetic arms
    generator: str | None = None  # the generator spec's name (None: no generator)
    mixing: str | None = None  # add, p_real, synthetic-only, pretrain-finetune, pseudo-label, oversample
    p_real: float | None = None  # share of real images per batch (None: synthetic images simply added)
    strength: float | None = None  # variations: noise strength t (0 = the real image, 1 = pure noise)
    per_image: int | None = None  # variations per labelled image
    budget: int | None = None  # real labelled images per class (data-efficiency)

    def fields(self, view: str | None = None) -> dict[str, Any]:
        """The row columns of this arm (None where a field does not apply)."""
        out = asdict(self)
        del out["name"]
        return {**out, "view": view}
