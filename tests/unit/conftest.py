"""Make ``ansible_collections.mailmesh.imap`` importable for unit tests.

``tests/conftest.py`` (the harness's) does this for the whole tree once it exists; this
file only installs Ansible's collection finder when nobody has done so yet.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _install_collection_finder():
    if any(type(f).__name__ == "_AnsibleCollectionFinder" for f in sys.meta_path):
        return
    from ansible.utils.collection_loader._collection_finder import (  # pylint: disable=import-outside-toplevel
        _AnsibleCollectionFinder,
    )

    _AnsibleCollectionFinder(paths=[str(ROOT / ".build" / "collections")])._install()


_install_collection_finder()
