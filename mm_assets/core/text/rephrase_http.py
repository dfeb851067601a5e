"""Rephrasing through an OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server).

Requests run on a thread pool (``concurrency`` in flight), each with a timeout; a failed request
(connection error, timeout, HTTP 408/429/5xx, unreadable body) is retried with exponential
backoff (``backoff_s * 2**attempt``, capped at ``backoff_max_s``); other HTTP 4xx are not
retried. A shared limiter spaces request starts to at most ``rate_limit`` per second. A prompt
that still fails after ``max_retries`` retries gives ``None`` from :meth:`HttpChatClient.generator`
(the rephrase step then keeps the original text and counts ``backend_error``); the run goes on.
The API key is sent as a bearer token and never appears in reprs, logs or error messages.
Only the standard library is used (``urllib``).
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mm_assets.core.text.fidelity import Completion

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class BackendError(RuntimeError):
    """A request that failed for good (after retries, or not retryable)."""


@dataclass(frozen=True, slots=True)
class HttpBackendConfig:
    """Endpoint settings.

    Attributes:
        base_url: server root up to ``/v1``, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name sent in each request.
        api_key: bearer token (``None``: no Authorization header); hidden from ``repr``.
        concurrency: requests in flight at most.
        timeout_s: seconds per request (connect + read).
        max_retries: retries after the first attempt.
        backoff_s: first retry delay in seconds; doubles per retry.
        backoff_max_s: cap on one retry delay (seconds).
        rate_limit: request starts per second at most, over all threads (``None``: no limit).
        max_tokens: completion tokens per request.
        temperature: sampling temperature (0 = greedy).
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    rate_limit: float | None = None
    max_tokens: int = 256
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://: {self.base_url!r}")
        if self.concurrency < 1 or self.max_retries < 0 or self.max_tokens < 1:
            raise ValueError("need concurrency >= 1, max_retries >= 0, max_tokens >= 1")
        if self.timeout_s <= 0 or self.backoff_s < 0 or (self.rate_limit is not None
                                                         and self.rate_limit <= 0):
            raise ValueError("need timeout_s > 0, backoff_s >= 0 and rate_limit > 0")


@dataclass(slots=True)
class RephraseBackend:
    """A generation backend for :func:`mm_assets.core.text.rephrase.rephrase_samples`.

    Attributes:
        name: model name used in the rephrase cache key (``http:MODEL`` for an endpoint).
        generate: prompts -> completions (``None`` for a prompt that failed for good).
        stats: backend counters (requests, retries, failures); empty for a local model.
    """

    name: str
    generate: Callable[[list[str]], list[str | None]]
    stats: Counter = field(default_factory=Counter)


class RateLimiter:
    """Spaces calls to :meth:`wait` at least ``1 / rate`` seconds apart (thread-safe)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        time.sleep(max(0.0, start - now))


class HttpChatClient:
    """Chat completions against one endpoint; counts requests, retries and failures.

    Attributes:
        cfg: endpoint settings.
        stats: ``requests``, ``retries``, ``failed`` and ``error_{kind}`` counts (thread-safe
            updates; read after the calls return).
    """

    def __init__(self, cfg: HttpBackendConfig) -> None:
        self.cfg = cfg
        self.stats: Counter = Counter()
        self._limiter = RateLimiter(cfg.rate_limit)
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def _post(self, prompt: str) -> str:
        body = json.dumps({"model": self.cfg.model, "max_tokens": self.cfg.max_tokens,
                           "temperature": self.cfg.temperature,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.cfg.api_key:
            headers["Authorization"] = f"Bearer {self.cfg.api_key}"
        req = urllib.request.Request(self.cfg.base_url.rstrip("/") + "/chat/completions",
                                     data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
            data = json.loads(resp.read())
        choice = data["choices"][0]
        return Completion(choice["message"]["content"] or "",
                          truncated=choice.get("finish_reason") == "length")

    def complete(self, prompt: str) -> str:
        """One completion, retried with exponential backoff.

        Raises:
            BackendError: still failing after ``max_retries`` retries, or HTTP 4xx (not
                408/429); the message names the URL and the last error, never the key.
        """
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(min(self.cfg.backoff_s * 2 ** (attempt - 1), self.cfg.backoff_max_s))
            self._limiter.wait()
            self._count("requests")
            try:
                return self._post(prompt)
            except urllib.error.HTTPError as e:
                kind, retry = f"http_{e.code}", e.code in _RETRY_STATUS
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError,
                    ConnectionError) as e:
                kind, retry = type(getattr(e, "reason", e)).__name__, True
            except (ValueError, KeyError, IndexError, TypeError) as e:
                kind, retry = f"bad_response_{type(e).__name__}", True
            self._count(f"error_{kind}")
            if not retry:
                break
        self._count("failed")
        raise BackendError(f"{self.cfg.base_url}: request failed after {attempt + 1} "
                           f"attempt(s), last error {kind}")

    def _complete_or_none(self, prompt: str) -> str | None:
        try:
            return self.complete(prompt)
        except BackendError as e:
            log.warning("rephrase backend: %s", e)
            return None

    def generator(self) -> Callable[[list[str]], list[str | None]]:
        """``prompts -> completions`` run ``concurrency`` at a time, in input order; ``None``
        for a prompt whose request failed for good."""

        def generate(prompts: list[str]) -> list[str | None]:
            workers = min(self.cfg.concurrency, max(1, len(prompts)))
            with ThreadPoolExecutor(workers, thread_name_prefix="rephrase-http") as pool:
                return list(pool.map(self._complete_or_none, prompts))

        return generate
