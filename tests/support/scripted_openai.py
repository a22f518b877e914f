"""An OpenAI-compatible HTTP server on loopback whose answers a test scripts, one per request.

Besides a status, headers, a body and a delay, a reply can fail the way networks and providers fail on
the wire: a connection reset with no response, a body shorter than its declared Content-Length, or a
chunked body cut off before its last chunk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.test import override_settings


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a dict is sent as JSON; a str is sent as-is (for malformed bodies)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Close the connection with a TCP reset (SO_LINGER 0) after reading the request; no response at all.
    reset: bool = False
    # Send only the first `cut_at` bytes of the body, then close: with Content-Length declared for the whole
    # body, or, with `chunked`, in chunks that never reach the final zero-length one.
    cut_at: int | None = None
    chunked: bool = False
    chunk_size: int = 16


def reset() -> Reply:
    return Reply(reset=True)


def truncated(reply: Reply, *, at: int | None = None) -> Reply:
    """`reply` with its body cut short of its declared Content-Length (by default halfway)."""
    return dataclasses.replace(reply, cut_at=len(_encode(reply.body)) // 2 if at is None else at)


def cut_stream(reply: Reply, *, at: int | None = None) -> Reply:
    """`reply` sent chunked and cut off mid-body (by default halfway), without the terminating chunk."""
    return dataclasses.replace(reply, cut_at=len(_encode(reply.body)) // 2 if at is None else at, chunked=True)


def _encode(body: Any) -> bytes:
    return (body if isinstance(body, str) else json.dumps(body)).encode()


def completion(content: str | dict[str, Any] | None, *, tokens_in: int = 120, tokens_out: int = 40,
               finish_reason: str = "stop", refusal: str | None = None) -> Reply:
    text = content if isinstance(content, str) or content is None else json.dumps(content)
    return Reply(body={
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": text, "refusal": refusal}}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                  "total_tokens": tokens_in + tokens_out},
    })


EMBEDDING_DIM = 64


def hashed_embedding(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words point the same way, so retrieval is testable."""
    vector = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "big") % dim] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def embeddings(texts: list[str], dim: int = EMBEDDING_DIM, *, model: str = "scripted-embed") -> Reply:
    return Reply(body={
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": hashed_embedding(t, dim)}
                 for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": sum(len(t.split()) for t in texts), "total_tokens": 0},
    })


def valid_reply(payload: dict[str, Any], *, delay: float = 0.0) -> Reply:
    """A schema-valid answer to any classify or draft request, for load tests that need the pipeline's normal
    path: an intent from the request's own enum (chosen by a hash of the ticket, never `other`), and a draft
    citing passage [1] when the prompt offers one."""
    schema = payload.get("response_format", {}).get("json_schema", {})
    user = str(payload.get("messages", [{}, {}])[-1].get("content", ""))
    if schema.get("name") == "ticket_classification":
        intents = [i for i in schema["schema"]["properties"]["intent"]["enum"] if i != "other"] or ["other"]
        intent = intents[int(hashlib.blake2b(user.encode(), digest_size=4).hexdigest(), 16) % len(intents)]
        reply = completion({"intent": intent, "urgency": "normal", "sentiment": "neutral", "language": "en",
                            "confidence": 0.9, "summary": "The customer asks for help with an order."})
    else:
        system = str(payload.get("messages", [{}])[0].get("content", ""))
        cites = [1] if "[1] " in system else []
        text = "Hello,\n\nThank you for writing to us. Here is what to do next" + (" [1]." if cites else ".")
        reply = completion({"reply": text + "\n\nKind regards", "citations": cites}, tokens_in=800, tokens_out=60)
    reply.delay = delay
    return reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog: socketserver's default of 5 refuses (or delays by a SYN retry) a burst of clients.
    request_queue_size = 256


class ScriptedOpenAI:
    def __init__(self, *, respond: Callable[[dict[str, Any]], Reply | None] | None = None,
                 keep_requests: bool = True) -> None:
        self.replies: deque[Reply] = deque()
        # /v1/embeddings answers from its own script, else with hashed_embedding vectors of the requested size.
        self.embedding_replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.default: Reply | None = None
        # Asked first for each chat request's reply (None: the script, then the default, answer).
        self.respond = respond
        self.keep_requests = keep_requests  # load tests send too many requests to keep
        # Requests being answered now, the most at once, and the seconds spent answering them all.
        self.in_flight = 0
        self.max_in_flight = 0
        self.served = 0
        self.busy_seconds = 0.0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                started = time.perf_counter()
                with outer._lock:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    self._serve()
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                        outer.served += 1
                        outer.busy_seconds += time.perf_counter() - started

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                if outer.keep_requests:
                    outer.requests.append({"path": self.path, "json": payload,
                                           "authorization": self.headers.get("Authorization"),
                                           "at": time.monotonic()})
                if self.path.rstrip("/").endswith("/embeddings"):
                    reply = outer._embedding_reply(payload)
                else:
                    reply = outer.respond(payload) if outer.respond else None
                    if reply is None:
                        reply = outer.replies.popleft() if outer.replies else outer.default
                if reply is None:
                    reply = Reply(status=500, body={"error": {"message": "script exhausted"}})
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset:
                    self._reset()
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                    self._answer(reply)

            def _reset(self) -> None:
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN. The read buffer holds a
                # second reference to the socket, so it is closed first or the socket would stay open.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.connection.close()
                self.close_connection = True

            def _answer(self, reply: Reply) -> None:
                data = _encode(reply.body)
                sent = data if reply.cut_at is None else data[:reply.cut_at]
                if reply.chunked:
                    self.protocol_version = "HTTP/1.1"  # chunked transfer coding is HTTP/1.1 only
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not reply.chunked:
                    self.wfile.write(sent)
                else:
                    for start in range(0, len(sent), reply.chunk_size):
                        piece = sent[start:start + reply.chunk_size]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    if reply.cut_at is None:
                        self.wfile.write(b"0\r\n\r\n")
                if reply.cut_at is not None:
                    self.close_connection = True  # the rest of the body never comes

        self.server = _Server(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits up to one interval, and every test shuts a server down.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def _embedding_reply(self, payload: dict[str, Any]) -> Reply:
        if self.embedding_replies:
            return self.embedding_replies.popleft()
        texts = payload.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        return embeddings(texts, int(payload.get("dimensions") or EMBEDDING_DIM), model=str(payload.get("model")))

    def __enter__(self) -> ScriptedOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def tier_settings(server: ScriptedOpenAI, *, openai_tiers: tuple[str, ...] = ("nano", "mini", "large"),
                  timeout: float = 5.0, max_retries: int = 0) -> dict[str, dict[str, Any]]:
    """settings.TIERS with the given tiers pointed at the scripted server and the rest on the local engine."""
    return {
        tier: {"model": f"scripted-{tier}", "base_url": server.base_url if tier in openai_tiers else None,
               "api_key": "sk-test" if tier in openai_tiers else None, "timeout": timeout,
               "max_retries": max_retries}
        for tier in ("nano", "mini", "large")
    }


@contextmanager
def scripted_tiers(*, openai_tiers: tuple[str, ...] = ("nano", "mini", "large")) -> Iterator[ScriptedOpenAI]:
    """A scripted server with the given tiers pointed at it, the circuit breakers closed before and after."""
    from triage.llm import breaker

    for tier in ("nano", "mini", "large"):
        breaker.reset(tier)
    with ScriptedOpenAI() as server, override_settings(TIERS=tier_settings(server, openai_tiers=openai_tiers)):
        yield server
    for tier in ("nano", "mini", "large"):
        breaker.reset(tier)
