"""docs/reliability.md: every test the page names exists (file and function; a ``[id]``
of a parametrized test is allowed), every row of its tables names exactly one test, and
the catalogue of hostile and wrong input holds at least 40 rows (issue 19)."""

import ast
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "reliability.md"
# `path::function` or `path::function[id]`, path under tests/ or molecule/.
TEST_REF = re.compile(r"`((?:tests|molecule)/[^`:\s]+\.py)::([A-Za-z_][A-Za-z0-9_]*)(\[[^`\]]+\])?`")
MINIMUM_BAD_INPUT_ROWS = 40


def _rows():
    """(section, row text) for every data row of every table (not headers, not rules)."""
    section = ""
    rows = []
    header_next = False
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if not line.startswith("|"):
            header_next = True
            continue
        if header_next:  # a table's header line
            header_next = False
            continue
        if re.match(r"^\|[\s|:-]+\|$", line):
            continue
        rows.append((section, line))
    return rows


def _functions(path):
    """Names of the test functions defined in a file (module level and in classes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _references():
    return TEST_REF.findall(PAGE.read_text(encoding="utf-8"))


def test_the_page_names_tests():
    assert len(_references()) >= MINIMUM_BAD_INPUT_ROWS


@pytest.mark.parametrize("path, name, case", _references(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_test_named_exists(path, name, case):
    file = REPO / path
    assert file.is_file(), "docs/reliability.md names %s::%s, but %s does not exist" % (path, name, path)
    assert name in _functions(file), "docs/reliability.md names %s::%s%s, which is not defined there" % (
        path, name, case)


def test_every_row_names_exactly_one_test():
    for section, row in _rows():
        found = TEST_REF.findall(row)
        assert len(found) == 1, "docs/reliability.md (%s): one test per row, found %d in %s" % (
            section, len(found), row)


def test_the_catalogue_of_bad_input_holds_at_least_40_cases():
    bad_input = [row for section, row in _rows() if section == "Hostile and wrong input"]
    assert len(bad_input) >= MINIMUM_BAD_INPUT_ROWS, len(bad_input)


def test_no_test_is_named_twice():
    seen = ["%s::%s%s" % ref for ref in _references()]
    assert len(seen) == len(set(seen)), sorted(ref for ref in seen if seen.count(ref) > 1)
