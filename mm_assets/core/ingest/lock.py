"""One writer of a root's ingest state at a time: an exclusive-create lock object with a lease.

Shard-id allocation (``inputs/_state.json``) is a read-modify-write; two concurrent ingests
would allocate the same ids and overwrite each other's manifests. :func:`ingest_lock` makes
the whole ingest call exclusive:

- acquire = create ``inputs/_ingest.lock`` only if it does not exist: ``O_CREAT | O_EXCL`` on
  local disk, a conditional ``PutObject`` with ``If-None-Match: *`` on S3 (AWS S3 since
  2024-08, MinIO, moto; s3fs ``pipe_file(mode="create")``). Exactly one creator wins.
- the lock holds its owner (host, pid, a random id) and a lease expiry; the holder renews the
  lease every ``lease_s / 3`` seconds from a daemon thread, so a long ingest keeps it.
- a waiter polls until the lock is gone, or breaks it once its lease has expired (the holder
  died) or at once when the holder ran on this host (same hostname and PID namespace) and its
  process no longer exists (``kill -9``): it deletes the lock only if it still holds the same
  owner, then competes again with an exclusive create. After ``wait_s`` it raises
  :class:`IngestLocked` naming the holder.
- release deletes the lock if it is still ours.

Memory and cost: one small object; one create attempt and one read per poll (``poll_s``, backing off to 1 s).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from mm_assets.core import layout
from mm_assets.core.storage import Store

LOCK = layout.INGEST_LOCK


class IngestLocked(RuntimeError):
    """Another ingest holds the root's ingest lock for longer than we were willing to wait."""


def _create_exclusive(store: Store, rel: str, body: bytes) -> bool:
    """Create ``rel`` with ``body`` only if it does not exist; whether we created it."""
    path = store.path(rel)
    if "file" in store.protocols or "local" in store.protocols:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        return True
    try:
        store.fs.pipe_file(path, body, mode="create")
        return True
    except FileExistsError:  # 412 PreconditionFailed: it existed (it may be gone again now)
        return False
    except OSError as e:  # older s3fs maps 412 to OSError(EINVAL)
        if e.errno == errno.EINVAL:
            return False
        raise


def _read(store: Store, rel: str) -> dict | None:
    store.fs.invalidate_cache(store.path(rel))
    try:
        return json.loads(store.read_bytes(rel))
    except (FileNotFoundError, json.JSONDecodeError):  # gone, or being (re)written
        return None


def _pid_ns() -> str:
    """This process's PID namespace (``pid:[4026531836]``), or "" where /proc has none."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _holder_dead(holder: dict, me: dict) -> bool:
    """Whether ``holder`` ran on this host, in this PID namespace, and its process is gone."""
    if holder.get("host") != me["host"] or holder.get("pidns") != me["pidns"]:
        return False
    try:
        os.kill(int(holder.get("pid")), 0)
    except ProcessLookupError:
        return True
    except (OSError, TypeError, ValueError):  # alive but not ours (EPERM), or no pid recorded
        return False
    return False


@contextmanager
def ingest_lock(store: Store, wait_s: float = 600.0, lease_s: float = 120.0,
                poll_s: float = 0.05, on_wait=None) -> Iterator[dict]:
    """Hold the root's ingest lock for the ``with`` block.

    Args:
        store: the storage root.
        wait_s: seconds to wait for another ingest to finish before giving up.
        lease_s: lease length; renewed while held, broken by others once expired.
        poll_s: seconds before the second attempt while waiting; grows 1.5x per attempt up
            to 1 s.
        on_wait: ``callable(holder: dict)`` called once when we start waiting.

    Yields:
        The lock record (owner id, host, pid, expiry).

    Raises:
        IngestLocked: the lock stayed held for ``wait_s`` seconds (message names the holder).
    """
    me = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
          "pidns": _pid_ns()}
    deadline, told, pause = time.monotonic() + wait_s, False, poll_s

    def body() -> bytes:
        return json.dumps({**me, "expires": time.time() + lease_s}).encode()

    while not _create_exclusive(store, LOCK, body()):
        holder = _read(store, LOCK)
        if holder and (holder.get("expires", 0) < time.time() or _holder_dead(holder, me)):
            again = _read(store, LOCK)  # break only the expired lock we read, not a new one
            if again and again.get("owner") == holder.get("owner"):
                store.rm(LOCK)
            continue
        if time.monotonic() > deadline:
            raise IngestLocked(f"another ingest holds {store.url(LOCK)} ({holder}); waited "
                               f"{wait_s:.0f} s; remove the file if that process is gone")
        if on_wait and not told and holder:
            on_wait(holder)
            told = True
        time.sleep(pause)
        pause = min(pause * 1.5, 1.0)  # back off: fewer requests while a long ingest runs
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease_s / 3):
            cur = _read(store, LOCK)
            if cur and cur.get("owner") == me["owner"]:
                store.write_bytes(LOCK, body())

    thread = threading.Thread(target=renew, daemon=True, name="ingest-lock-lease")
    thread.start()
    try:
        yield me
    finally:
        stop.set()
        thread.join()
        cur = _read(store, LOCK)
        if cur and cur.get("owner") == me["owner"]:
            store.rm(LOCK)
