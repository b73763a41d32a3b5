"""The house rules of docs/architecture.md: no import cycles, no imports up the layers, and the page is current."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("synthaug_architecture_tool", ROOT / "tools" / "architecture.py")
architecture = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = architecture  # its dataclasses look their module up while being defined
_spec.loader.exec_module(architecture)

@pytest.fixture(scope="module")
def graph():
    return architecture.read_imports()


def test_no_import_cycles(graph):
    found = architecture.cycles(graph)
    assert not found, "modules import each other in a circle (imports in functions count): " + "; ".join(
        ", ".join(c) for c in found) + ". Move the shared part down a layer (see docs/architecture.md)"


def test_no_import_up_the_layers(graph):
    breaks = architecture.layering_breaks(graph)
    assert not breaks, "imports up the layers of tools/architecture.py:\n" + "\n".join(breaks)


def test_cycle_finder_sees_imports_in_functions():
    fake = {"a": architecture.Imports(top={"b"}), "b": architecture.Imports(in_functions=[(3, "a")]),
            "c": architecture.Imports(top={"a"})}
    assert architecture.cycles(fake) == [["a", "b"]]


def test_cycle_finder_sees_package_inits():
    """synthaug.runs importing synthaug.training.distributed runs synthaug/training/__init__.py first, which imports
    synthaug.training.loop: if loop imported synthaug.runs, the two could not load."""
    fake = {"synthaug.runs": architecture.Imports(top={"synthaug.training.distributed"}),
            "synthaug.training": architecture.Imports(top={"synthaug.training.loop"}),
            "synthaug.training.distributed": architecture.Imports(),
            "synthaug.training.loop": architecture.Imports(top={"synthaug.runs"})}
    assert architecture.cycles(fake) == [["synthaug.runs", "synthaug.training", "synthaug.training.loop"]]


def test_layering_check_sees_a_lazy_import_up(tmp_path):
    pkg = tmp_path / "synthaug"
    (pkg / "data").mkdir(parents=True)
    (pkg / "synthetic").mkdir()
    for init in (pkg, pkg / "data", pkg / "synthetic"):
        (init / "__init__.py").write_text("")
    (pkg / "synthetic" / "make.py").write_text("X = 1\n")
    (pkg / "data" / "source.py").write_text("def f():\n    from synthaug.synthetic.make import X\n    return X\n")
    breaks = architecture.layering_breaks(architecture.read_imports(pkg))
    assert len(breaks) == 1 and "synthaug.data.source -> synthaug.synthetic.make" in breaks[0]


def test_architecture_doc_is_current(graph):
    doc = architecture.DOC.read_text(encoding="utf-8")
    assert architecture.render_doc(doc, graph) == doc, "docs/architecture.md is stale: run `python tools/architecture.py --write`"
