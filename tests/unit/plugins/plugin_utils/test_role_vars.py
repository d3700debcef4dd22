"""plugins/plugin_utils/_role_vars.py: each helper gives what the Jinja filter or test it
stands for gives, checked against Ansible's own templating."""

import pytest

from ansible_collections.mailmesh.imap.plugins.plugin_utils import _role_vars as helpers

templar_mod = pytest.importorskip("ansible.template")
trust = pytest.importorskip("ansible._internal._datatag._tags")

VALUES = [0, 7, -3, "12", " 12 ", "12.9", "-1.5", "0x10", "1e3", "abc", "", None, True, 3.99, [1], {"a": 1}, "ü"]


def _render(template, **variables):
    templar = templar_mod.Templar(loader=None, variables=variables)
    return templar.template(trust.TrustedAsTemplate().tag(template))


@pytest.mark.parametrize("value", VALUES)
def test_jinja_int_is_the_int_filter(value):
    assert helpers.jinja_int(value) == _render("{{ value | int }}", value=value)


@pytest.mark.parametrize("value", VALUES)
def test_jinja_text_is_a_value_in_a_text(value):
    assert helpers.jinja_text(value) == _render("<{{ value }}>", value=value)[1:-1]


@pytest.mark.parametrize("value", VALUES + ['quo"te', "back\\slash", "tab\tnewline\n"])
def test_json_text_is_string_then_to_json(value):
    assert helpers.json_text(value) == _render("{{ value | string | to_json }}", value=value)


@pytest.mark.parametrize("value, pattern", [
    ("10.0.0.1", r"^([0-9]{1,3}\.){3}[0-9]{1,3}$"), ("x10.0.0.1", r"^([0-9]{1,3}\.){3}"), (123, "^[0-9]+$"),
    ("a b", r'^[^\s";{}]+$'), (None, "^None$"),
])
def test_matches_is_the_match_test(value, pattern):
    assert helpers.matches(value, pattern) == _render("{{ value is match(pattern) }}", value=value, pattern=pattern)


@pytest.mark.parametrize("text", ["", "abc\n", "ünïcode\n", "a" * 5000])
def test_text_sha256_is_the_hash_filter(text):
    assert helpers.text_sha256(text) == _render("{{ text | hash('sha256') }}", text=text)


@pytest.mark.parametrize("parts", [[], ["One."], ["  One  sentence\n over\tlines. ", "Two."], ["", "x"]])
def test_sentences_is_the_whitespace_filter_block(parts):
    # The layout of the roles' vars (a folded YAML scalar: blanks between the tags).
    block = ("{% filter regex_replace('\\\\s+', ' ') | trim %} {% for part in parts %} {{ part }} {% endfor %}"
             " {% endfilter %}")
    assert helpers.sentences(parts) == _render(block, parts=parts)
