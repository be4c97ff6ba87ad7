"""The shared registration decorator: names map to builders, a duplicate is refused and the table is unchanged."""
import pytest

from utils.registry import registering


def test_registering_fills_the_table_and_refuses_a_duplicate_naming_the_first_registrant():
    table = {}

    @registering(table, "widget", "first")
    def build(cfg):
        return cfg

    assert table == {"first": build} and build(3) == 3
    with pytest.raises(KeyError, match=r"widget 'first' is already registered \(by .*test_registry\)"):
        registering(table, "widget", "first")(lambda cfg: None)
    assert table == {"first": build}

