"""Helpers shared by the test packages."""

from pathlib import Path

# The checkout the tests run from (the package itself finds its data through
# importlib.resources, see fte.package_path).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
