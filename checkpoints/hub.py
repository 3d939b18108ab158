"""SAM 3's weights from the Hugging Face hub: ``facebook/sam3`` (gated), verified by sha256.

``facebook/sam3`` ships the ``transformers`` files: ``model.safetensors`` (the state dict of
``Sam3VideoModel``, about 3.4 GB) and ``config.json``. The repository is gated: a download
needs a token of an account that accepted the licence on its page. The token is passed to
the hub and nowhere else (never printed, logged or written by this code). The weights file
is stored in git LFS, whose ETag is the file's sha256: after the download the file is hashed
and compared, and a file that does not match is deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from checkpoints.errors import DownloadError
from checkpoints.registry import sha256_file

SAM3_REPO = "facebook/sam3"
SAM3_FOLDER = "sam3"
SAM3_WEIGHTS = "model.safetensors"
SAM3_CONFIG = "config.json"
SAM3_PAGE = f"https://huggingface.co/{SAM3_REPO}"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def token_source(token: str | None) -> str | None:
    """Where the token a download sends comes from, in words: ``--token``, ``HF_TOKEN``, the
    one ``hf auth login`` stored, or ``None`` (no token is sent). Never the token itself."""
    if token is not None:
        return "--token"
    if os.environ.get("HF_TOKEN"):
        return "HF_TOKEN"
    from huggingface_hub import get_token

    return "the token `hf auth login` stored" if get_token() else None


def gated_message(repo: str, source: str | None) -> str:
    """What to do about a gated repository, for a token from ``source`` (see :func:`token_source`)."""
    page = f"https://huggingface.co/{repo}"
    if source is not None:
        return (
            f"{repo} is gated and the token from {source} has no access to it yet: accept the licence "
            f"on {page} with the account that token belongs to (read access is enough), or give "
            "another token, then run the command again"
        )
    return (
        f"{repo} is gated: accept the licence on {page}, then give a token of that account with "
        "read access: set HF_TOKEN (or run `hf auth login`), or pass --token"
    )


def _lfs_sha256(etag: str | None) -> str | None:
    value = (etag or "").strip().strip('"').lower()
    return value if _SHA256.match(value) else None


def download_sam3(
    dest_dir: str | Path,
    *,
    token: str | None = None,
    repo: str = SAM3_REPO,
    revision: str | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download SAM 3's ``config.json`` and ``model.safetensors`` into ``dest_dir/sam3/``.

    Args:
        dest_dir: the checkpoint folder.
        token: a Hugging Face token (``None``: ``$HF_TOKEN`` or the one ``hf auth login`` stored).
        repo, revision: where to download from (the official repository, its main branch).
        endpoint: another hub (a mirror, or a test server).

    Returns:
        The path of the verified weights file.

    Raises:
        DownloadError: gated without access (the message says how to pass a token), no such
            repository or file, the network, or a file whose sha256 is not the hub's.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    folder = Path(dest_dir) / SAM3_FOLDER
    try:
        url = hf_hub_url(repo, SAM3_WEIGHTS, revision=revision, endpoint=endpoint)
        expected = _lfs_sha256(get_hf_file_metadata(url, token=token, endpoint=endpoint).etag)
        for name in (SAM3_CONFIG, SAM3_WEIGHTS):
            path = Path(
                hf_hub_download(
                    repo, name, revision=revision, local_dir=folder, token=token, endpoint=endpoint
                )
            )
    except GatedRepoError:
        raise DownloadError(gated_message(repo, token_source(token))) from None
    except RepositoryNotFoundError:
        source = token_source(token)
        hidden = f"the token from {source} cannot see it" if source else "it is gated and no token was given"
        raise DownloadError(
            f"{repo}: no such repository, or {hidden} ({gated_message(repo, source)})"
        ) from None
    except EntryNotFoundError:
        raise DownloadError(f"{repo} has no {SAM3_WEIGHTS} or {SAM3_CONFIG} at this revision") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(f"the hub answered HTTP {status} for {repo}; try again later") from None
    except (LocalEntryNotFoundError, ConnectionError) as exc:  # ConnectionError: HF_HUB_OFFLINE is set
        raise DownloadError(_unreachable(repo, folder, exc)) from None
    except OSError as exc:
        raise DownloadError(
            f"cannot write to {folder} ({type(exc).__name__}: {exc}); pick a writable --dest"
        ) from None
    except Exception as exc:  # the hub client's own network errors (connection refused, timeouts)
        raise DownloadError(_unreachable(repo, folder, exc)) from None
    _verify(path, expected)
    return path


def _unreachable(repo: str, folder: Path, exc: BaseException) -> str:
    detail = (str(exc).strip().splitlines() or [""])[0][:160]
    return (
        f"cannot reach the hub for {repo} ({type(exc).__name__}: {detail}): download {SAM3_CONFIG} and "
        f"{SAM3_WEIGHTS} from {SAM3_PAGE} on a machine with internet and put them in {folder}/"
    )


def _verify(path: Path, expected: str | None) -> None:
    """The downloaded file's sha256 is the hub's (when the hub gave one).

    Raises:
        DownloadError: it is not (the file is deleted).
    """
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        with contextlib.suppress(OSError):
            path.unlink()
        raise DownloadError(
            f"{path.name} has sha256 {actual[:12]}..., the hub says {expected[:12]}...: the download is "
            "corrupt; it was deleted, run the command again"
        )
