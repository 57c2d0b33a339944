"""Copy GraphiQL's browser files from the npm registry into ``bookbag/graphql_ide_static/``.

The IDE at ``GET /graphql`` loads them from ``/graphql-ide/`` (``bookbag.graphql_ide``), never from a CDN.
Run it only to change a version (then check the page in a browser and run ``tests/admin_ui/test_graphiql.py``):

    python scripts/vendor_graphiql.py

It runs ``npm pack`` for each pinned package in a temporary directory, copies the built files the page needs
unchanged (plus each package's licence) and writes ``SOURCES.txt``: file, package, path in the package,
SHA-256, and the tarball's integrity as the registry published it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "bookbag" / "graphql_ide_static"

# The versions strawberry's own GraphiQL page uses (strawberry/static/graphiql.html), without its explorer
# plugin and js-cookie. graphiql's "min" bundle is its webpack development build, unminified (3.5 MB).
PACKAGES: dict[str, dict[str, str]] = {
    "graphiql@3.8.3": {
        "package/graphiql.min.js": "graphiql.min.js",
        "package/graphiql.min.css": "graphiql.min.css",
        "package/LICENSE": "graphiql.LICENSE.txt",
    },
    "react@18.2.0": {
        "package/umd/react.production.min.js": "react.production.min.js",
        "package/LICENSE": "react.LICENSE.txt",
    },
    "react-dom@18.2.0": {
        "package/umd/react-dom.production.min.js": "react-dom.production.min.js",
        "package/LICENSE": "react-dom.LICENSE.txt",
    },
}


def main() -> int:
    lines = [
        "# Vendored by scripts/vendor_graphiql.py from the npm registry, files unchanged.",
        "# file  package  path-in-tarball  sha256  tarball-integrity",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for spec, files in PACKAGES.items():
            out = subprocess.run(
                ["npm", "pack", spec, "--json", "--pack-destination", tmp],
                check=True,
                capture_output=True,
                text=True,
                cwd=tmp,
            ).stdout
            info = json.loads(out)[0]
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                for member, name in files.items():
                    source = tar.extractfile(member)
                    if source is None:
                        raise SystemExit(f"{spec}: {member} is not a file")
                    data = source.read()
                    (TARGET / name).write_bytes(data)
                    digest = hashlib.sha256(data).hexdigest()
                    lines.append(f"{name}  {spec}  {member}  {digest}  {info['integrity']}")
    (TARGET / "SOURCES.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 2} files to {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed (apt-get install npm)")
    sys.exit(main())
