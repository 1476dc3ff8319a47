"""The docstring examples of the bench modules (make test's --doctest-modules does not
collect bench/: its programs define absl flags of the same names)."""
import doctest
import importlib

import pytest

MODULES = ("records", "tables", "record_model", "reproduce_cifar10")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"bench.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
