"""Where the Ray engine runs: connecting to (or starting) a cluster, and sizing the workers."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.options import EngineOptions, EpisodeOptions
from bench.runtime import Runtime
from tools.errors import ConfigError, RefsegError


def import_ray() -> Any:
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'refseg-loop[ray]'") from None
    return ray


# HTTP/2's client preface and an empty SETTINGS frame: Ray's GCS and its Ray Client server
# speak gRPC, so they answer with a SETTINGS frame (frame type 4) of their own.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS_FRAME = 4
_FIX = (
    "check --ray-address (HOST:6379 for the head node, ray://HOST:10001 for Ray Client, "
    "or auto on a node of the cluster)"
)


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """For a ``HOST:PORT`` (or ``ray://HOST:PORT``) address, check that a Ray cluster answers
    there, each wait bounded by ``timeout_s`` (``ray.init`` retries a wrong address forever):
    something listens, it speaks gRPC (it answers HTTP/2's preface with a SETTINGS frame), and
    for a ``HOST:PORT`` it is Ray's GCS (it answers the GCS's cluster-ID call, the one
    ``ray.init`` starts with). With ``RAY_USE_TLS`` set only the connection is checked.
    ``auto`` and other forms pass.

    Raises:
        ConfigError: nothing listens, nothing answers, what answers is not gRPC, or it is a
            gRPC service other than the GCS.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return  # the server expects a TLS handshake first
            sock.sendall(_H2_PREFACE)
            head = _read_up_to(sock, 9)
    except TimeoutError:
        raise ConfigError(
            f"{address} answered nothing within {timeout_s:g} s: not a Ray cluster; {_FIX}"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({exc.strerror or type(exc).__name__}); {_FIX}"
        ) from None
    if len(head) < 9 or head[3] != _SETTINGS_FRAME:
        said = head.split(b"\r\n", 1)[0].decode("ascii", "replace") or "nothing, then closed"
        raise ConfigError(
            f"something listens at {address} but it is not a Ray cluster (it does not speak gRPC; it "
            f"answered {said[:40]!r}); {_FIX}"
        )
    if not address.startswith("ray://"):
        _check_gcs_answers(address, timeout_s)


_UNIMPLEMENTED = 12  # gRPC's status code for a method the server does not have


def _check_gcs_answers(address: str, timeout_s: float) -> None:
    """Ask the GCS at ``address`` for the cluster ID, as ``ray.init`` does first, but with a
    deadline, and with the warnings Ray's C++ client prints meanwhile kept off stderr. Skipped
    when a Ray release no longer has the (private) client used here: ``ray.init`` then runs
    unchecked, as before."""
    try:
        from ray import _raylet
    except ImportError:  # pragma: no cover - a Ray install without its core
        return
    client = getattr(_raylet, "InnerGcsClient", None)  # private: not in Ray's type stubs
    if client is None:  # pragma: no cover - a Ray release without it
        return
    try:
        with _stderr_discarded():
            client.standalone(address, None, max(1, int(timeout_s * 1000)))
    except Exception as exc:  # Ray's RpcError; its rpc_code says which case
        if getattr(exc, "rpc_code", None) == _UNIMPLEMENTED:
            raise ConfigError(
                f"{address} is a gRPC service but not a Ray head node's GCS (Ray Client's port "
                f"10001 needs ray://); {_FIX}"
            ) from None
        raise ConfigError(
            f"{address} answers HTTP/2 but no Ray GCS replied within {timeout_s:g} s "
            f"({one_line(exc)}); {_FIX}"
        ) from None


@contextlib.contextmanager
def _stderr_discarded() -> Iterator[None]:
    """File descriptor 2 goes to a scratch file meanwhile (Ray's C++ client writes its log
    there directly, past ``sys.stderr``)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _read_up_to(sock: socket.socket, n: int) -> bytes:
    """Up to ``n`` bytes: fewer when the peer closes first (the socket's timeout applies)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


@dataclass(frozen=True)
class WorkerPlan:
    """How many actors, and what each reserves."""

    workers: int
    gpus: float
    cpus: float


def plan_workers(
    options: EngineOptions, total: dict[str, float], free: dict[str, float], device: str | None
) -> WorkerPlan:
    """Workers and their resources from the options and the cluster's resources.

    Args:
        options: the engine options (``None`` fields are chosen here).
        total: the cluster's resources; what the workers need must fit in them.
        free: what is not in use now; the default worker count fits in it (other jobs'
            actors keep theirs), with one CPU left for a dead worker's replacement.
        device: the torch device asked for (``None``: cuda when there is one).

    Raises:
        ConfigError: the cluster cannot hold them (Ray would wait for resources forever).
    """
    cpus = options.cpus_per_worker or 1.0
    want_gpu = device is None or device.startswith("cuda")
    workers = auto_workers(options, free) if options.workers == "auto" else options.workers
    if workers is None:
        free_gpus = free.get("GPU", 0.0)
        if want_gpu and free_gpus >= 1 and options.gpus_per_worker != 0:
            workers = int(free_gpus / (options.gpus_per_worker or 1.0))
        else:
            workers = int(max(1.0, free.get("CPU", 0.0) - 1) // cpus)
        workers = max(1, workers)
    gpus = options.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if want_gpu and free.get("GPU", 0.0) >= workers else 0.0
    for name, each in (("GPU", gpus), ("CPU", cpus)):
        have = total.get(name, 0.0)
        if workers * each > have + 1e-9:
            raise ConfigError(
                f"the Ray cluster has {have:g} {name}s but {workers} worker(s) x {each:g} need "
                f"{workers * each:g}; lower --workers or --{name.lower()}s-per-worker"
            )
    return WorkerPlan(workers, gpus, cpus)


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - no affinity on this platform
        return os.cpu_count() or 1


def auto_workers(options: EngineOptions, free: dict[str, float]) -> int:
    """``--workers auto``: one per core of this machine for the run's own cluster (which gets one
    more logical CPU than workers, see :func:`connect`), else one per free CPU of the running
    cluster less one (room for a dead worker's replacement)."""
    cpus = options.cpus_per_worker or 1.0
    if options.ray_address is None:
        return max(1, int(machine_cores() // cpus))
    return max(1, int(max(1.0, free.get("CPU", 0.0) - 1) // cpus))


def worker_options(rt: Runtime, gpus: float) -> EpisodeOptions:
    """The runtime's options as the workers must see them: the checkpoint and cache folders the
    driver resolved (on one host, one cache folder for all), and the CPU when a worker reserves
    no GPU and no device was chosen (else every worker would land on the first GPU)."""
    if rt.options is None:
        raise ConfigError("--engine ray needs a runtime built by bench.runtime.build_runtime")
    options = rt.options
    models = dataclasses.replace(
        options.models,
        checkpoint_dir=Path(rt.settings.checkpoint_dir).resolve(),
        device=options.models.device or ("cpu" if gpus == 0 else None),
    )
    cache = options.cache
    if rt.cache is not None:
        cache = dataclasses.replace(cache, directory=Path(rt.cache.directory))
    return dataclasses.replace(options, models=models, cache=cache)


def connect(ray: Any, options: EngineOptions) -> None:
    """``ray.init``: the given cluster, or a local one for this run with more logical CPUs
    than workers (a replacement for a dead worker starts before the dead one's CPU is freed).

    Raises:
        RefsegError: Ray could not start or connect.
    """
    try:
        if options.ray_address:
            ray.init(address=options.ray_address, log_to_driver=False)
        else:
            asked = machine_cores() if options.workers == "auto" else (options.workers or 0)
            cpus = math.ceil(asked * (options.cpus_per_worker or 1.0))
            cpus = max(machine_cores(), cpus) + 1  # more logical CPUs than workers: see above
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        cluster_messages_to_stderr()
    except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError, ...
        where = options.ray_address or "a local cluster (RAY_ADDRESS set? pass --ray-address)"
        raise RefsegError(f"Ray could not start or reach {where}: {one_line(exc)}") from None


def cluster_messages_to_stderr() -> None:
    """Ray's driver prints cluster error messages ("(raylet) A worker died...") on stdout, from
    a background thread, whatever ``log_to_driver`` says; refseg's stdout is its results (the
    summary is its first line), so those messages go to stderr instead. This patches a private
    function (``ray._private.worker.print_to_stdstream``, looked up at each message): when a
    Ray release moves it, nothing breaks and the messages stay on stdout."""
    try:
        from ray._private import worker
    except ImportError:  # pragma: no cover - Ray without that module
        return
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "refseg_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> Any:
        return original({**data, "is_err": True}, ignore_prefix=ignore_prefix)

    to_stderr.refseg_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (Ray's run to many lines)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
