"""registry.py."""

import pytest

from hcal.errors import ConfigError
from hcal.registry import Registry


def test_registry_basics():
    reg = Registry("widget")

    @reg.register("b", description="the b widget")
    def b():
        return "built b"

    @reg.register("a", description="the a widget", reference="somebody 2020", colour="red")
    def a():
        return "built a"

    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2
    assert reg.create("b") == "built b" and reg.get("a").extra == {"colour": "red"}
    with pytest.raises(ConfigError, match="unknown widget 'c'; choose one of: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", description="again")(a)
