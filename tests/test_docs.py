"""Docs that run: every example in a docstring, and the README's Python example."""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import vigil

ROOT = Path(__file__).resolve().parents[1]


def _modules():
    for info in pkgutil.walk_packages(vigil.__path__, "vigil."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def test_docstring_examples_run():
    attempted = 0
    for module in _modules():
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert attempted >= 10  # the examples exist; a refactor that drops them should notice


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README shows a Python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # our own README, not user text


def test_docs_name_every_cli_command():
    text = (ROOT / "docs" / "concepts.md").read_text()
    for command in ("simulate", "features build", "train", "score", "evaluate", "demo",
                    "report", "compare", "bench handbook", "bench speed", "pretrain",
                    "bench sequence"):
        assert f"vigil {command}" in text, command
