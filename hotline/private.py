"""Files only the service user may read: the state directory, the secrets, the database.

Each is created with its final mode (no moment when another user could open it) and an existing
one from an older install is tightened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` 0700 (parents as usual) or tighten it if it is ours.

    A shared directory (sticky, like /tmp) or someone else's is left alone: a state dir pointed at
    one must not change who can use it."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid == os.geteuid() and not st.st_mode & stat.S_ISVTX:
        path.chmod(PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists with mode 0600 (created empty if missing)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    path.chmod(PRIVATE_FILE)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text`` in a file that was 0600 from its creation."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a stale one may have a looser mode; O_EXCL makes ours
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
