"""A local HTTP receiver for completion webhooks, run on a thread by the tests that need one,
and the verification snippet of docs/api.md, taken from the page itself."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

API_DOC = Path(__file__).parents[1] / "docs" / "api.md"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class Receiver:
    """Answers each POST with the next of ``answers`` (the last one over and over) and keeps
    what it received. ``hold``: the first request waits until ``release()`` before answering."""

    def __init__(self, *answers: int, hold: bool = False) -> None:
        self.answers = list(answers or [200])
        self.received: list[Received] = []
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/taskflow"

    def release(self) -> None:
        self._released.set()

    def _answer(self, received: Received) -> int:
        with self._lock:
            self.received.append(received)
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._answer(Received(self.path, headers, body))
                receiver._released.wait(timeout=120)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def documented_verify() -> Callable[..., bool]:
    """The ``verify`` function of docs/api.md ("Verifying a webhook"), as printed there."""
    blocks = re.findall(r"```python\n(.*?)```", API_DOC.read_text(), flags=re.DOTALL)
    [snippet] = [block for block in blocks if "def verify(" in block]
    scope: dict[str, Any] = {}
    # Our own documentation's code, run to prove it verifies what the sender signs.
    exec(compile(snippet, str(API_DOC), "exec"), scope)  # noqa: S102
    verify: Callable[..., bool] = scope["verify"]
    return verify
