"""Regenerate the manifests shipped in the package from the team's data (run after the data changes).

    python scripts/make_manifests.py [../shared/data]

Writes ``src/facemask/data/manifests/NAME.sha256`` for every set of ``facemask.data.sets.SETS``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facemask.data import manifest
from facemask.data.sets import MANIFESTS, SETS, manifest_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="../shared/data", help="data root (default %(default)s)")
    root = Path(parser.parse_args().root)
    MANIFESTS.mkdir(exist_ok=True)
    for name in SETS:
        files = manifest.build(root / name)
        manifest.write(files, manifest_path(name))
        print(f"{name}: {len(files)} files")


if __name__ == "__main__":
    main()
