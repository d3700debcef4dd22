"""Lets every scenario's verifier (molecule/<scenario>/tests/) import the helpers in
molecule/_shared/ (pytest finds this file between the repository root, where
pytest.ini is, and the scenario's tests)."""

import os
import sys

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_shared")
if SHARED not in sys.path:
    sys.path.insert(0, SHARED)
