"""Tests of the SandboxMesh Python SDK: python3 -m unittest discover -s tests -t . (from sdk/python)."""
