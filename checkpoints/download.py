"""Download a registered checkpoint: stream, verify sha256, then rename into place.

The file appears under its final name only once it is complete and verified, so an
interrupted or corrupted download never leaves a file that later loads as "the
checkpoint". Every failure is a :class:`checkpoints.errors.DownloadError` with one line that says
what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from tqdm import tqdm

from checkpoints.errors import DownloadError
from checkpoints.registry import CheckpointInfo, cached_sha256, lookup

CHUNK_SIZE = 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, read=120.0)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _manual_hint(info: CheckpointInfo, dest_dir: Path) -> str:
    return f"download {info.filename} on a machine with internet and put it in {dest_dir}/"


def verify_file(path: Path, info: CheckpointInfo) -> bool:
    """Whether ``path`` is the registered file (sha256, else size, else mere presence)."""
    if not path.is_file():
        return False
    if info.sha256 is not None:
        return cached_sha256(path) == info.sha256.lower()
    if info.size is not None:
        return path.stat().st_size == info.size
    return True


def download_checkpoint(
    name_or_model_type: str | CheckpointInfo,
    dest_dir: str | Path,
    *,
    url: str | None = None,
    progress: bool = True,
) -> Path:
    """Download a checkpoint into ``dest_dir`` and return its path.

    Args:
        name_or_model_type: registry name (``sam_vit_b``), model type (``vit_b``), file
            name, or a :class:`CheckpointInfo` (for files outside the registry).
        dest_dir: folder to put the file in (created if missing).
        url: download from here instead of the registered URL (a mirror); the file is
            still verified against the registered sha256.
        progress: show a tqdm progress bar on stderr.

    Returns:
        The path of the verified file, ``dest_dir / info.filename``. A file already there
        that verifies is returned without any network access.

    Raises:
        DownloadError: network failure, HTTP error, incomplete transfer, sha256 mismatch
            (the partial file is removed) or an unwritable destination.
        ConfigError: unknown checkpoint name.
    """
    if isinstance(name_or_model_type, CheckpointInfo):
        info = name_or_model_type
    else:
        info = lookup(name_or_model_type)
    dest_dir = Path(dest_dir)
    target = dest_dir / info.filename
    if verify_file(target, info):
        return target
    source = url or info.url
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{info.filename}.", suffix=".part", dir=dest_dir)
    except OSError as exc:
        problem = _one_line(exc)
        raise DownloadError(f"cannot write to {dest_dir} ({problem}); pick a writable folder") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            digest = _stream(source, handle, info, dest_dir, progress)
        _check_download(tmp, digest, info, source)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def _check_download(tmp: Path, digest: str, info: CheckpointInfo, source: str) -> None:
    """The downloaded file matches the registered sha256 (or, without one, the size).

    Raises:
        DownloadError: it does not.
    """
    if info.sha256 is not None and digest != info.sha256.lower():
        raise DownloadError(
            f"{info.filename} from {source} has sha256 {digest[:12]}..., expected "
            f"{info.sha256[:12]}...: the file is corrupt or not the official one; nothing was saved"
        )
    if info.size is not None and info.sha256 is None and tmp.stat().st_size != info.size:
        raise DownloadError(
            f"{info.filename} from {source} has {tmp.stat().st_size:,} bytes, expected "
            f"{info.size:,}; nothing was saved"
        )


def _stream(source: str, handle: object, info: CheckpointInfo, dest_dir: Path, progress: bool) -> str:
    """Stream ``source`` into the open file ``handle``; return the sha256 of the bytes."""
    host = urlsplit(source).hostname or source
    digest = hashlib.sha256()
    try:
        with (
            httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client,
            client.stream("GET", source) as response,
        ):
            if response.status_code != 200:
                raise DownloadError(
                    f"{source} answered HTTP {response.status_code}: {_manual_hint(info, dest_dir)}"
                )
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else info.size
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=info.filename,
                disable=not progress,
                file=sys.stderr,
            ) as bar:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    handle.write(chunk)  # type: ignore[attr-defined]
                    digest.update(chunk)
                    bar.update(len(chunk))
            # Compare raw transferred bytes: Content-Length counts them, not decoded ones.
            received = response.num_bytes_downloaded
            if length and length.isdigit() and received != int(length):
                raise DownloadError(
                    f"download of {info.filename} stopped at {received:,} of {int(length):,} bytes; "
                    "run the command again"
                )
    except DownloadError:
        raise
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        problem = _one_line(exc)
        raise DownloadError(f"cannot reach {host} ({problem}): {_manual_hint(info, dest_dir)}") from None
    except OSError as exc:
        raise DownloadError(f"cannot write {info.filename} to {dest_dir} ({_one_line(exc)})") from None
    return digest.hexdigest()
