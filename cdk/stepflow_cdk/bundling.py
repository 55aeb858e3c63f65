"""The ``stepflow`` layer, bundled on this machine (no Docker).

pip installs the runtime dependencies for the Lambda platform (manylinux
wheels only, for the functions' Python version) into ``python/``, next to the
``stepflow`` package copied from source. With ``install=False`` only the
package is copied: what tests synthesize, fast and offline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import ILocalBundling

from stepflow_cdk.paths import LAYER_SOURCE, PYPROJECT

PLATFORM = "manylinux2014_x86_64"
PYTHON_VERSION = "3.12"


def runtime_dependencies() -> list[str]:
    """The ``[project].dependencies`` of pyproject.toml."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"])


@jsii.implements(ILocalBundling)
class LayerBundling:
    """Builds the layer directory in CDK's output folder."""

    def __init__(self, *, install: bool) -> None:
        self.install = install

    def try_bundle(self, output_dir: str, *args: Any, **options: Any) -> bool:
        """Fill ``output_dir/python``; True (done, so CDK never falls back to Docker)."""
        target = Path(output_dir) / "python"
        target.mkdir(parents=True, exist_ok=True)
        if self.install:
            subprocess.run(
                [
                    sys.executable, "-m", "pip", "install", "--quiet",
                    "--target", str(target),
                    "--platform", PLATFORM,
                    "--python-version", PYTHON_VERSION,
                    "--implementation", "cp",
                    "--only-binary=:all:",
                    "--upgrade",
                    *runtime_dependencies(),
                ],
                check=True,
            )  # fmt: skip
        shutil.copytree(
            LAYER_SOURCE / "stepflow",
            target / "stepflow",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        return True
