"""Make ``ansible_collections.mailmesh.imap`` importable for the pytest run.

The repository root is the collection root; tests/harness/collection-link.sh (run by
``make venv``) links it as ``.build/collections/ansible_collections/mailmesh/imap``.
Ansible's own collection finder is installed over that directory and the venv's
site-packages (where the ``ansible`` package keeps community.* collections), so unit
tests can write ``from ansible_collections.mailmesh.imap.plugins.module_utils import ...``.
"""

from __future__ import annotations

import os
import sysconfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_DIR = os.path.join(REPO_ROOT, ".build", "collections")


def _ensure_collection_link() -> None:
    namespace_dir = os.path.join(COLLECTIONS_DIR, "ansible_collections", "mailmesh")
    link = os.path.join(namespace_dir, "imap")
    if os.path.realpath(link) == os.path.realpath(REPO_ROOT):
        return
    os.makedirs(namespace_dir, exist_ok=True)
    if os.path.islink(link):
        os.unlink(link)
    os.symlink(REPO_ROOT, link)


def _install_collection_finder() -> None:
    # pylint: disable-next=import-outside-toplevel
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    paths = [COLLECTIONS_DIR, sysconfig.get_paths()["purelib"]]
    _AnsibleCollectionFinder(paths=paths)._install()  # pylint: disable=protected-access


# Only when this file is the repository's own tests/conftest.py (not inside the copy
# that ansible-test runs on, which brings its own collection loader).
if os.path.isfile(os.path.join(REPO_ROOT, "galaxy.yml")) and not os.environ.get("ANSIBLE_TEST_PYTHON_VERSION"):
    _ensure_collection_link()
    _install_collection_finder()
