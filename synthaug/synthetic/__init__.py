"""Synthetic datasets: sample a generator, filter, store with a manifest, load like any dataset."""

from synthaug.data.synthetic_source import read_synthetic
from synthaug.storage.synthetic_store import read_manifest, write_synthetic
from synthaug.synthetic.filters import FILTERS, FilterContext, parse_filter
from synthaug.synthetic.make import SynthConfig, sample_synthetic_set

__all__ = ["FILTERS", "FilterContext", "SynthConfig", "sample_synthetic_set", "parse_filter", "read_manifest", "read_synthetic",
           "write_synthetic"]
