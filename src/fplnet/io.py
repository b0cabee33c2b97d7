"""Writing files so that a crash never leaves a torn one: the one home of atomic writes.

Every file fplnet writes for later reading (checkpoints, shipped weights, exported graphs,
cached class counts, JSON reports) goes through ``atomic_write``: the bytes go to a temporary
file in the target's folder, are flushed and fsync'ed, and the temporary file is renamed over
the target with ``os.replace``. A reader therefore sees the old file or the new one, never half
of one; the fsync makes the rename safe across a power loss, not only a killed process.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

PathLike = Union[str, Path]


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then move it into place.
    The parent folder is created. Returns ``path`` as a Path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(temp_name, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's umask, read without changing it where Linux reports it (os.umask can only
    be read by setting it, which would race with other threads creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda file: file.write(data))


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, payload, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=indent) + "\n")


def atomic_save_image(path: PathLike, image, **options) -> Path:
    """A PIL image saved atomically; the format comes from the suffix, as ``Image.save`` does."""
    from PIL import Image
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: no image format for the suffix {path.suffix!r}")
    return atomic_write(path, lambda file: image.save(file, format=image_format, **options))


@contextlib.contextmanager
def atomic_output_path(path: PathLike) -> Iterator[Path]:
    """For writers that want a file name rather than a file object (a video muxer): yields a
    temporary name beside ``path`` with the same suffix, and moves it over ``path`` only when the
    block ends without an exception; otherwise the temporary file is removed and an earlier
    ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        os.chmod(temp_name, 0o666 & ~_umask())
        yield Path(temp_name)
        with open(temp_name, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
