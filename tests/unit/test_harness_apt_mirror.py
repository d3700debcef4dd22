"""tests/harness/apt_mirror.py and build-image.sh's choice of mirror: the Debian archives a
machine's own apt sources name (sources.list, sources.list.d/*.list and *.sources in
deb822), unless MIRROR and SECURITY_MIRROR are set, and a recipe hash that does not depend
on the mirror. Sample source trees under tmp_path; build-image.sh runs with DRY_RUN=1,
which stops before Docker, root or debootstrap are needed.

Not shipped (the harness is not in the tarball)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "harness" / "build-image.sh"
_spec = importlib.util.spec_from_file_location("apt_mirror", REPO / "tests" / "harness" / "apt_mirror.py")
apt_mirror = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(apt_mirror)

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEB822 = """\
Types: deb
# a comment inside the stanza
URIs: http://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: {keyring}

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: {keyring}
""".format(keyring=KEYRING)


def _tree(root: pathlib.Path, files: dict[str, str], codename: str = "bookworm") -> pathlib.Path:
    """A root with etc/os-release and the given files under etc/apt/."""
    (root / "etc" / "apt" / "sources.list.d").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux"\nVERSION_CODENAME=%s\nID=debian\n' % codename, encoding="utf-8")
    for name, text in files.items():
        (root / "etc" / "apt" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def _detect(root):
    return apt_mirror.mirrors(apt_mirror.read_sources(root), apt_mirror.codename(root))


def test_deb822_sources(tmp_path):
    root = _tree(tmp_path, {"sources.list.d/debian.sources": DEB822})
    assert _detect(root) == ("http://mirror.example.org/debian", "http://security.example.org/debian-security")


def test_one_line_sources_with_options_and_deb_src(tmp_path):
    root = _tree(tmp_path, {"sources.list": """\
        # deb http://old.example.org/debian bookworm main
        deb-src http://src.example.org/debian bookworm main
        deb [arch=amd64 signed-by=%s] https://mirror.example.net/debian bookworm main non-free-firmware
        deb https://mirror.example.net/debian bookworm-updates main  # trailing comment
        deb [ arch=amd64 ] https://mirror.example.net/debian-security/ bookworm-security main
        """ % KEYRING})
    assert _detect(root) == ("https://mirror.example.net/debian", "https://mirror.example.net/debian-security")


def test_sources_list_comes_first_then_the_parts_in_order(tmp_path):
    root = _tree(tmp_path, {
        "sources.list": "deb http://first.example.org/debian bookworm main\n",
        "sources.list.d/debian.sources": DEB822,
    })
    assert _detect(root)[0] == "http://first.example.org/debian"
    # Without sources.list: the parts in file name order.
    (root / "etc" / "apt" / "sources.list").unlink()
    (root / "etc" / "apt" / "sources.list.d" / "00-local.list").write_text(
        "deb file:/srv/mirror/debian bookworm main\n", encoding="utf-8")
    assert _detect(root)[0] == "file:/srv/mirror/debian"


def test_vendor_repositories_are_not_the_debian_archive(tmp_path):
    """A vendor's repository for the same release and component (its own keyring, or an
    inline key) comes first in file order and is passed over."""
    root = _tree(tmp_path, {
        "sources.list.d/a-vendor.list":
            "deb [signed-by=/usr/share/keyrings/vendor.gpg] https://apt.vendor.example.com bookworm main\n",
        "sources.list.d/b-vendor.sources": """\
            Types: deb
            URIs: https://packages.vendor.example.com/debian
            Suites: bookworm
            Components: main
            Signed-By:
             -----BEGIN PGP PUBLIC KEY BLOCK-----
             .
             mQINBGXXXXXX
             -----END PGP PUBLIC KEY BLOCK-----
            """,
        "sources.list.d/debian.sources": DEB822,
    })
    assert _detect(root) == ("http://mirror.example.org/debian", "http://security.example.org/debian-security")


def test_disabled_entries_other_files_and_other_schemes_are_ignored(tmp_path):
    root = _tree(tmp_path, {
        "sources.list": "deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n",
        "sources.list.d/debian.sources": "Enabled: no\n" + DEB822.replace("\n\n", "\n\nEnabled: no\n"),
        "sources.list.d/old.list.save": "deb http://saved.example.org/debian bookworm main\n",
        "sources.list.d/farm.list.disabled": "deb http://disabled.example.org/debian bookworm main\n",
        "sources.list.d/other-release.list": "deb http://other.example.org/debian bullseye main\n",
        "sources.list.d/no-main.list": "deb http://contrib.example.org/debian bookworm contrib\n",
    })
    assert _detect(root) == ("", "")


def test_a_suite_alias_counts_as_the_release(tmp_path):
    root = _tree(tmp_path, {"sources.list": """\
        deb http://mirror.example.org/debian stable main
        deb http://mirror.example.org/debian-security stable-security main
        """})
    assert _detect(root) == ("http://mirror.example.org/debian", "http://mirror.example.org/debian-security")


def test_the_command_prints_two_lines_and_says_what_is_missing(tmp_path, capsys):
    root = _tree(tmp_path, {"sources.list": "deb http://mirror.example.org/debian bookworm main\n"})
    assert apt_mirror.main(["--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out == "http://mirror.example.org/debian\n\n"
    assert "names no entry for the security archive (SECURITY_MIRROR) of bookworm" in err
    assert apt_mirror.main(["--root", str(root), "--codename", "trixie"]) == 0
    out, err = capsys.readouterr()
    assert out == "\n\n"
    assert "no entry for the Debian archive (MIRROR) nor for the security archive (SECURITY_MIRROR) of trixie" in err


# ---- build-image.sh (DRY_RUN=1) --------------------------------------------------------


def _dry_run(apt_root, image="debian12", **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("MIRROR", "SECURITY_MIRROR", "IMAGE_TAG")}
    clean.update(DRY_RUN="1", APT_ROOT=str(apt_root), **env)
    done = subprocess.run(["bash", str(SCRIPT), image], env=clean, capture_output=True, text=True,
                          timeout=60, check=False)
    settings = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return done, settings


def test_build_image_reads_the_machines_apt_sources(tmp_path):
    root = _tree(tmp_path, {"sources.list.d/debian.sources": DEB822})
    done, settings = _dry_run(root)
    assert done.returncode == 0, done.stderr
    assert settings["MIRROR"] == "http://mirror.example.org/debian"
    assert settings["SECURITY_MIRROR"] == "http://security.example.org/debian-security"
    assert settings["SUITE"] == "bookworm" and settings["TAG"] == "mailmesh/debian12-systemd:latest"


def test_build_image_environment_wins(tmp_path):
    root = _tree(tmp_path, {"sources.list.d/debian.sources": DEB822})
    done, settings = _dry_run(root, MIRROR="http://127.0.0.1:3142/debian")
    assert done.returncode == 0, done.stderr
    assert settings["MIRROR"] == "http://127.0.0.1:3142/debian"
    assert settings["SECURITY_MIRROR"] == "http://security.example.org/debian-security"
    # Both set: the machine's sources are not read at all (here there are none).
    empty = _tree(tmp_path / "empty", {})
    done, settings = _dry_run(empty, MIRROR="http://127.0.0.1:3142/debian",
                              SECURITY_MIRROR="http://127.0.0.1:3142/debian-security", IMAGE_TAG="dl-test/debian12:tmp")
    assert done.returncode == 0, done.stderr
    assert settings["SECURITY_MIRROR"] == "http://127.0.0.1:3142/debian-security"
    assert settings["TAG"] == "dl-test/debian12:tmp"


def test_build_image_without_a_mirror_names_the_variable(tmp_path):
    root = _tree(tmp_path, {"sources.list": "deb http://mirror.example.org/debian bookworm main\n"})
    done, _settings = _dry_run(root)
    assert done.returncode != 0
    assert "set SECURITY_MIRROR" in done.stderr, done.stderr
    done, _settings = _dry_run(_tree(tmp_path / "none", {}))
    assert done.returncode != 0
    assert "set MIRROR" in done.stderr, done.stderr


@pytest.mark.parametrize("image", ["debian12", "debian13", "debian12-arm64"])
def test_recipe_hash_does_not_depend_on_the_mirror(tmp_path, image):
    root = _tree(tmp_path, {"sources.list.d/debian.sources": DEB822})
    _done, detected = _dry_run(root, image)
    _done, given = _dry_run(root, image, MIRROR="http://127.0.0.1:3142/debian",
                            SECURITY_MIRROR="http://127.0.0.1:3142/debian-security")
    assert detected["RECIPE"] and detected["RECIPE"] == given["RECIPE"]
    assert detected["MIRROR"] != given["MIRROR"]


def test_recipes_name_no_mirror():
    for env in sorted((REPO / "tests" / "images").glob("*/image.env")):
        assigned = [line for line in env.read_text(encoding="utf-8").splitlines()
                    if line.split("=", 1)[0].strip() in ("MIRROR", "SECURITY_MIRROR")]
        assert not assigned, (env.parent.name, assigned)
