"""Atomic file writes: a run killed at any moment leaves every file either old and whole or new and whole."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    except OSError as error:
        raise _naming(error, path) from error
    os.close(fd)
    # mkstemp makes the file 0600; a file the user's programs make follows their umask (a teammate's
    # TensorBoard server must be able to read a run when the umask lets it).
    os.chmod(tmp_name, 0o666 & ~_umask())
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        if error.filename != tmp_name:
            raise
        raise _naming(error, path) from error
    finally:
        tmp.unlink(missing_ok=True)


def _naming(error: OSError, path: Path) -> OSError:
    """The error with the path the caller asked for in place of the temporary file's, which nobody knows."""
    return OSError(error.errno, error.strerror, str(path))


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_with(path: Path, save: Callable[[str], Any]) -> None:
    """Atomically writes ``path`` with a library's ``save(filename)`` function (SB3 models, VecNormalize)."""
    with atomic_path(path) as tmp:
        save(str(tmp))
