"""common.console: which TensorFlow start-up lines are held back, usage errors, absl's flag errors."""
import os
import sys

import pytest
from absl import flags

from common import console

PRE_INIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = ("I0000 00:00:1795951463.438878    6806 port.cc:153] oneDNN custom operations are on. "
          "You may see slightly different numerical results.\n")
CUDA = ("I0000 00:00:1795951463.439377    6806 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.\n")
CU_INIT = ("E0000 00:00:1795951466.868134    6806 cuda_platform.cc:52] failed call to cuInit: "
           "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
OTHER_ERROR = "E0000 00:00:1795951466.868134    6806 some_op.cc:12] something real broke\n"
WARNING = "W0000 00:00:1795951466.868134    6806 allocator.cc:9] Allocation exceeds 10%\n"
PYTHON = "UserWarning: a Python warning\n"


@pytest.mark.parametrize("level, gpus, kept", [
    (2, False, [OTHER_ERROR, PYTHON]),
    (2, True, [CU_INIT, OTHER_ERROR, PYTHON]),  # a GPU was found: cuInit failing is news
    (3, False, [PYTHON]),
    (1, False, [WARNING, OTHER_ERROR, PYTHON]),
])
def test_which_lines_are_kept(level, gpus, kept):
    lines = [PRE_INIT, ONEDNN, CUDA, WARNING, CU_INIT, OTHER_ERROR, PYTHON]
    assert [line for line in lines if console._keep(line, level, gpus)] == kept


def test_quiet_startup_passes_on_other_stderr(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with console.quiet_tensorflow_startup():
        os.write(2, (PRE_INIT + ONEDNN + "a line of the program\n").encode())
        print("from Python", file=sys.stderr)
    err = capfd.readouterr().err  # (pytest captures Python's sys.stderr apart from fd 2)
    assert sorted(err.splitlines()) == ["a line of the program", "from Python"]


def test_nothing_held_back_without_the_level(capfd, monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with console.quiet_tensorflow_startup():
        os.write(2, (PRE_INIT + ONEDNN).encode())
    assert capfd.readouterr().err == PRE_INIT + ONEDNN


def test_flag_errors_are_usage_errors(capsys):
    values = flags.FlagValues()
    flags.DEFINE_enum("color", "red", ["red", "blue"], "A color.", flag_values=values)
    flags.DEFINE_integer("count", 1, "A count.", flag_values=values)
    parse = console.flags_parser("prog", flag_values=values)
    for argv, words in [(["prog", "--colour=red"], ["'colour'"]),
                        (["prog", "--color=green"], ["--color", "red|blue"]),
                        (["prog", "--count=many"], ["--count", "many"])]:
        values.unparse_flags()
        with pytest.raises(SystemExit) as exit_info:
            parse(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2
        assert err.startswith("prog: error: ") and err.count("\n") == 1, err
        assert all(word in err for word in words), err
    values.unparse_flags()
    assert parse(["prog", "--color=blue", "rest"]) == ["prog", "rest"] and values.color == "blue"
