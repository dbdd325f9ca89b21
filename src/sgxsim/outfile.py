"""Output files of the front ends (scenario files, HTML pages, the demo's
SIGSTRUCT and key): written whole, or an :class:`OutputError` naming the
file, which the commands turn into a one-line error."""

from __future__ import annotations

from pathlib import Path


class OutputError(OSError):
    """An output file could not be written (a name taken by a directory, a
    full disk, a read-only file system); ``filename`` is the file, ``errno``
    and ``strerror`` say why, as for any OSError."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def write_output(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path``, making its directory first; any OSError
    is an :class:`OutputError` naming ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    except OSError as e:
        raise OutputError(e.errno, e.strerror or str(e), str(path)) from None
    return path
