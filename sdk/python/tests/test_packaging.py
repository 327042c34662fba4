"""The package builds from pyproject.toml into a wheel with its modules and py.typed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _can_build() -> bool:
    # setuptools >= 70.1 builds wheels alone; older ones need the wheel package.
    code = "import setuptools, sys\nv = tuple(int(x) for x in setuptools.__version__.split('.')[:2])\nif v < (70, 1): import wheel"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


class PackagingTest(unittest.TestCase):
    @unittest.skipUnless(_can_build(), "setuptools (>= 70.1, or with wheel) is not installed for this python3: wheel build not checked")
    def test_wheel(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            out = os.path.join(tmp, "dist")
            os.makedirs(out)
            shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("tests", "examples", "build", "*.egg-info", "__pycache__"))
            code = f"from setuptools import build_meta as b; print(b.build_wheel({out!r}))"
            r = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            wheel = os.path.join(out, r.stdout.strip().splitlines()[-1])
            with zipfile.ZipFile(wheel) as z:
                names = set(z.namelist())
                meta = z.read("sandboxmesh_sdk-0.1.0.dist-info/METADATA").decode()
            for m in ("__init__", "api", "api_client", "configuration", "exceptions", "models", "rest"):
                self.assertIn(f"sandboxmesh_sdk/{m}.py", names)
            self.assertIn("sandboxmesh_sdk/py.typed", names)
            self.assertIn("Requires-Python: >=3.9", meta)
            self.assertNotIn("Requires-Dist", meta)  # standard library only


if __name__ == "__main__":
    unittest.main()
