"""The one way a run-folder file is opened, read and written: links are never followed, only regular files are read
or written, nothing blocks on a FIFO or a device, and no read takes more than it asked for.

    fd = open_regular(run.metrics, os.O_RDONLY)         # RunFileError for a link, a FIFO, a folder, a device
    data = read_bytes(run.status_file, limit=1 << 20)    # at most limit bytes; RunFileError past it
    append_bytes(run.metrics, b'{"step": 1}\\n')          # one O_APPEND write, through no link
    write_atomic(run.status_file, "{...}")                # temporary file + rename, both inside the real folder
    check_tree(run.adapter)                               # a folder we write into: real, and no link anywhere in it

Every open goes through the folder's file descriptor, opened with ``O_DIRECTORY | O_NOFOLLOW``: the file's own folder
(``runs/NAME``, ``runs/NAME/adapter``, ...) must be a real folder, and the file itself must not be a link
(``O_NOFOLLOW``), so a link planted between a check and the open cannot redirect a write. Opens use
``O_NONBLOCK`` and then ``fstat``: a FIFO or a device is refused before anything reads from it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW


class RunFileError(OSError):
    """A run-folder path that is a link, a FIFO, a device, a folder where a file belongs, or too large."""


def _refuse(path: Path, what: str) -> RunFileError:
    return RunFileError(
        f"{path} is {what}: run folders hold only real files and folders that lowvram-r1 wrote; remove it "
        "(nothing was read or written through it)"
    )


@contextmanager
def folder_fd(folder: Path) -> Iterator[int]:
    """A file descriptor of ``folder``, which must be a real folder (its last component not a link)."""
    try:
        fd = os.open(folder, _DIR)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symlink" if os.path.islink(folder) else "not a folder"
            raise _refuse(folder, kind) from None
        raise
    try:
        yield fd
    finally:
        os.close(fd)


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``path`` (in a real folder, not through a link) and return its descriptor, refusing anything but a
    regular file; ``flags`` are ``os.O_*`` (``O_CREAT`` creates it). The descriptor is blocking once checked."""
    path = Path(path)
    with folder_fd(path.parent) as parent:
        try:
            fd = os.open(path.name, flags | _NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=parent)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise _refuse(path, "a symlink") from None
            if error.errno in (errno.EISDIR, errno.ENXIO, errno.ENODEV, errno.ETXTBSY):
                raise _refuse(path, "not a regular file") from None
            raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "special"
        raise _refuse(path, f"{kind}, not a regular file")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def read_bytes(path: Path, limit: int, offset: int = 0) -> bytes:
    """At most ``limit`` bytes of a regular file from ``offset``; a file with more is refused (``RunFileError``)."""
    fd = open_regular(path)
    try:
        data = os.pread(fd, limit + 1, offset)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise RunFileError(f"{path} is larger than {limit} bytes: not read")
    return data


def append_bytes(path: Path, payload: bytes) -> None:
    """Append ``payload`` in one write (created if missing), never through a link."""
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_file(path: Path, text: str) -> None:
    """Create or overwrite a small file in place (STOP, COMPLETE), never through a link."""
    fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by a complete new file: a temporary file beside it, then a rename (a reader never sees a
    torn file). Both happen inside the real folder; a link at ``path`` is replaced, its target never touched.

    No fsync: readers and a killed trainer only need the rename to be atomic (the page cache survives a killed
    process); fsync guards against power loss and would cost ~10 ms on every training step."""
    path = Path(path)
    with folder_fd(path.parent) as parent:
        for attempt in range(100):
            temporary = f".{path.name}.{os.getpid()}.{attempt}.tmp"
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644, dir_fd=parent)
                break
            except FileExistsError:
                continue
        else:
            raise RunFileError(f"{path.parent} is full of stale .{path.name}.*.tmp files: remove them")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=parent)
            except OSError:
                pass
            raise


def is_regular(path: Path) -> bool:
    """Is ``path`` a regular file, itself not a link (``lstat``: nothing is opened)?"""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_real_dir(path: Path) -> bool:
    """Is ``path`` a folder, itself not a link?"""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def real_dir(path: Path, create: bool = False) -> Path:
    """``path`` as a real folder we may write into (created when ``create``); a link or a file is refused."""
    path = Path(path)
    if create and not os.path.lexists(path):
        path.mkdir(parents=True, exist_ok=True)
    if os.path.islink(path):
        raise _refuse(path, "a symlink")
    if not is_real_dir(path):
        raise _refuse(path, "not a folder")
    return path


def unsafe_entries(folder: Path, limit: int = 10) -> list[Path]:
    """Links and special files (FIFOs, devices, sockets) anywhere under ``folder``, links never followed: what a
    run folder we write into must not hold. The first ``limit`` found."""
    found: list[Path] = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in [*dirs, *files]:
            entry = Path(top) / name
            try:
                mode = os.lstat(entry).st_mode
            except OSError:
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                found.append(entry)
                if len(found) >= limit:
                    return found
    return found


def check_tree(folder: Path) -> None:
    """Refuse a folder we are about to write into (adapter/, checkpoints/) when it, or anything in it, is a link or
    a special file: a library saving into it would write through the link into someone else's files."""
    if not os.path.lexists(folder):
        return
    real_dir(folder)
    bad = unsafe_entries(folder, 1)
    if bad:
        kind = "a symlink" if os.path.islink(bad[0]) else "a special file (FIFO, device or socket)"
        raise _refuse(bad[0], kind)
