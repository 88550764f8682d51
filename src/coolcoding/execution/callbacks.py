"""Judge0 callbacks: ``PUT callback_url`` with the finished submission, in the background.

Each delivery is its own task: ``judge0_callback_tries`` tries, ``judge0_callback_timeout_s``
each, waiting ``judge0_callback_backoff_s`` doubled after each failure (an answer other than
2xx, a timeout, a refused connection). At most ``judge0_callback_concurrency`` deliveries run
at once; the others wait their turn. Nothing waits for them: a callback URL that hangs or
answers 500 delays no job and no worker. Deliveries still running at shutdown are dropped
(logged): like Judge0, callbacks are best effort; the result stays readable by its token.

Where a callback may go: ``check_callback_url`` refuses, at submission, URLs whose host is or
resolves to a loopback, private, link-local or reserved address unless
``judge0_callback_private`` allows them (the server's own network is not the submitter's).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from coolcoding.errors import InvalidInput
from coolcoding.settings import Settings

log = logging.getLogger(__name__)


async def check_callback_url(url: str, settings: Settings) -> None:
    """400 ``invalid_callback_url`` unless ``url`` may receive callbacks (see above)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise InvalidInput("callback_url must be an http(s) URL", code="invalid_callback_url")
    if settings.judge0_callback_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or 80, type=socket.SOCK_STREAM
        )
    except OSError as e:
        raise InvalidInput(f"callback_url: cannot resolve {parts.hostname}",
                           code="invalid_callback_url") from e  # fmt: skip
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not addr.is_global:
            raise InvalidInput(
                f"callback_url: {parts.hostname} is a private address; callbacks go to public "
                "hosts only (COOLCODING_JUDGE0_CALLBACK_PRIVATE)",
                code="invalid_callback_url",
            )


class CallbackSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tasks: set[asyncio.Task[bool]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._client: httpx.AsyncClient | None = None

    def deliver(self, url: str, body: dict[str, Any]) -> asyncio.Task[bool]:
        task = asyncio.get_running_loop().create_task(self._deliver(url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(self, url: str, body: dict[str, Any]) -> bool:
        s = self.settings
        if self._slots is None:
            self._slots = asyncio.Semaphore(s.judge0_callback_concurrency)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=s.judge0_callback_timeout_s,
                                             follow_redirects=False, trust_env=False)  # fmt: skip
        delay = s.judge0_callback_backoff_s
        for attempt in range(1, s.judge0_callback_tries + 1):
            async with self._slots:
                try:
                    r = await asyncio.wait_for(
                        self._client.put(url, json=body), s.judge0_callback_timeout_s
                    )
                    if 200 <= r.status_code < 300:
                        return True
                    why = f"HTTP {r.status_code}"
                except (httpx.HTTPError, TimeoutError, OSError) as e:
                    why = type(e).__name__
            log.info("callback %s: try %d failed (%s)", url, attempt, why)
            if attempt < s.judge0_callback_tries:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("callback %s: given up after %d tries", url, s.judge0_callback_tries)
        return False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None
