"""The README's code blocks run as written: every ```python block is executed in a fresh
namespace (in a scratch directory), every `medkern ...` command line in a ```bash block parses
with the real CLI parser, and the README's test command is the one `.ci/run` runs."""
import pathlib
import re
import shlex
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
BASH = [code for lang, code in BLOCKS if lang == "bash"]


def test_the_readme_has_blocks():
    assert len(PYTHON) >= 3 and len(BASH) >= 2


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs_as_written(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(PYTHON[index], f"README.md python block {index}", "exec")
    namespace = {"__name__": "__readme__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. a DICOM tree's skipped files
        exec(code, namespace)


def _medkern_commands():
    for block in BASH:
        for line in block.splitlines():
            for part in re.split(r"&&|;", line):
                words = shlex.split(part)
                if words and words[0] == "medkern":
                    yield words[1:]


def test_bash_medkern_commands_parse():
    from medkern.cli import build_parser
    commands = list(_medkern_commands())
    assert commands, "the README shows no medkern command"
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        assert callable(getattr(args, "handler", None) or getattr(args, "func", None)), argv


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for block in BASH for line in block.splitlines()
                if "pytest" in line and "pip install" in line]
    assert commands and all(c in ci for c in commands), commands
