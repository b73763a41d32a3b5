import pytest

from synthaug.registry import Registry


def test_register_create_and_refuse_duplicates():
    reg: Registry = Registry("thing")

    @reg.register("a")
    def make_a(x=1):
        """Makes an a."""
        return ("a", x)

    @reg.register("fam", prefix=True)
    def make_fam(spec, x=1):
        return ("fam", spec, x)

    assert reg.create("a", x=3) == ("a", 3)
    assert reg.create("fam:foo") == ("fam", "foo", 1)
    assert reg.available() == ["a", "fam:"]
    assert reg.describe("a") == "Makes an a."
    assert "fam:bar" in reg and "zzz" not in reg
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(make_a)
    with pytest.raises(KeyError, match="unknown thing 'b'"):
        reg.create("b")
    with pytest.raises(ValueError, match="needs a value"):
        reg.create("fam:")


def test_cli_choices_match_registries():
    from synthaug.classifiers import CLASSIFIERS
    from synthaug.cli.main import build_parser
    from synthaug.data import DATASETS

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    for name in DATASETS.available():
        assert name in helps["dataset"]
    for name in CLASSIFIERS.available():
        assert name in helps["model"]
