"""Vendor the console's front-end libraries: ``python -m operations.vendor`` (run by install.sh).

Each library of ``app/console/vendor.json`` is fetched from the npm registry as the tarball of its
pinned version, checked against the registry's sha512 integrity before anything is unpacked, and only
the listed files are written to ``app/console/static/vendor/``. A library already there at the same
version is left alone; a tarball that does not match its hash is an error and nothing is written.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

CONSOLE = Path(__file__).resolve().parent.parent / "app" / "console"
MANIFEST = CONSOLE / "vendor.json"
VENDOR_DIR = CONSOLE / "static" / "vendor"


class VendorError(RuntimeError):
    pass


def _check(data: bytes, integrity: str) -> None:
    algo, _, want = integrity.partition("-")
    if algo != "sha512":
        raise VendorError(f"unsupported integrity {algo!r}")
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != want:
        raise VendorError(f"integrity mismatch: expected sha512-{want}, got sha512-{got}")


def vendor(manifest: Path = MANIFEST, dest: Path = VENDOR_DIR, *, fetch=None) -> list[str]:  # noqa: ANN001
    """Write every library's files into ``dest``; the names written (or already current)."""
    listed = json.loads(manifest.read_text(encoding="utf-8"))
    libs = {k: v for k, v in listed.items() if not k.startswith("_")}
    dest.mkdir(parents=True, exist_ok=True)
    stamp = dest / "versions.json"
    have = json.loads(stamp.read_text(encoding="utf-8")) if stamp.exists() else {}
    done: list[str] = []
    get = fetch or _fetch
    for name, lib in libs.items():
        targets = [dest / out for out in lib["files"].values()]
        if have.get(name) == lib["version"] and all(t.exists() for t in targets):
            done += [t.name for t in targets]
            continue
        data = get(lib["tarball"])
        _check(data, lib["integrity"])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member, out in lib["files"].items():
                f = tar.extractfile(member)
                if f is None:
                    raise VendorError(f"{name}: {member} is not in the tarball")
                tmp = dest / f".{out}.tmp"
                tmp.write_bytes(f.read())
                os.replace(tmp, dest / out)
                done.append(out)
        have[name] = lib["version"]
        stamp.write_text(json.dumps(have, indent=1, sort_keys=True), encoding="utf-8")
    return done


def _fetch(url: str) -> bytes:
    if not url.startswith("https://registry.npmjs.org/"):
        raise VendorError(f"only the npm registry is fetched from, not {url}")
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - https, the fixed registry
        return resp.read()


def main() -> int:
    try:
        files = vendor()
    except (VendorError, OSError) as exc:
        print(f"vendor: {exc}", file=sys.stderr)
        return 1
    print(f"console libraries in {VENDOR_DIR}: {', '.join(sorted(files))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
