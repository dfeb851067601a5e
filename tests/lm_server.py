"""A small, real OpenAI-compatible chat-completions server for tests (standard library only).

It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` by running a real causal LM
(default: SmolLM2-135M-Instruct through :func:`mm_assets.core.quality.lm.load_lm`, greedy decoding with
the model's chat template via :func:`mm_assets.core.text.rephrase.local_generator`), one generation
at a time. It can misbehave on demand for failure tests:

- ``POST /fault`` with ``{"status": 500, "count": 2}``: the next 2 completion requests get
  HTTP 500; ``{"sleep_s": 3, "count": 1}``: the next one sleeps 3 s before answering;
  ``{"count": 0}`` clears the fault.
- ``GET /stats``: ``{"requests": N, "completed": M, "unauthorized": K}`` since start.

With ``--api-key-env NAME`` every ``/v1`` request needs ``Authorization: Bearer $NAME`` (else
401); the key is read from the environment so it never shows in a process list.

Usage::

    HF_HUB_OFFLINE=1 python tests/lm_server.py [--port 0] [--model smollm2-135m-instruct]

It binds 127.0.0.1 only and prints ``PORT <n>`` on stdout once it is ready to serve.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    """Fault plan and counters shared by the handler threads."""

    def __init__(self, generate, model: str, api_key: str | None) -> None:
        self.generate, self.model, self.api_key = generate, model, api_key
        self.lock, self.gen_lock = threading.Lock(), threading.Lock()
        self.fault: dict = {"count": 0}
        self.stats = {"requests": 0, "completed": 0, "unauthorized": 0}

    def take_fault(self) -> dict | None:
        """Count one completion request; the fault to apply to it, if any."""
        with self.lock:
            self.stats["requests"] += 1
            if self.fault.get("count", 0) > 0:
                self.fault["count"] -= 1
                return dict(self.fault)
        return None


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, code: int, obj: dict) -> None:
            body = json.dumps(obj).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
                pass

        def _body(self) -> dict:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def _authorized(self) -> bool:
            if state.api_key and self.headers.get("Authorization") != f"Bearer {state.api_key}":
                with state.lock:
                    state.stats["unauthorized"] += 1
                self._send(401, {"error": {"message": "invalid api key"}})
                return False
            return True

        def do_GET(self) -> None:
            if self.path == "/stats":
                with state.lock:
                    return self._send(200, dict(state.stats))
            if self.path == "/v1/models" and self._authorized():
                return self._send(200, {"object": "list", "data": [
                    {"id": state.model, "object": "model"}]})
            if self.path != "/v1/models":
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/fault":
                with state.lock:
                    state.fault = body
                return self._send(200, {"ok": True})
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            if not self._authorized():
                return None
            fault = state.take_fault()
            if fault and fault.get("sleep_s"):
                time.sleep(float(fault["sleep_s"]))
            if fault and fault.get("status"):
                return self._send(int(fault["status"]), {"error": {"message": "injected"}})
            return self._complete(body)

        def _complete(self, body: dict) -> None:
            prompt = body["messages"][-1]["content"]
            with state.gen_lock:  # one generation at a time on the model
                text = state.generate(prompt, int(body.get("max_tokens", 64)))
            with state.lock:
                state.stats["completed"] += 1
            self._send(200, {
                "id": f"chatcmpl-{state.stats['completed']}", "object": "chat.completion",
                "model": state.model, "created": int(time.time()),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]})

    return Handler


def transformers_engine(model: str):
    """``(prompt, max_tokens) -> text`` with the real model (greedy, chat template)."""
    from mm_assets.core.quality.lm import load_lm
    from mm_assets.core.text.rephrase import local_generator

    lm = load_lm(model, "cpu")
    gens: dict[int, object] = {}

    def generate(prompt: str, max_tokens: int) -> str:
        gen = gens.setdefault(max_tokens, local_generator(lm, max_tokens))
        return gen([prompt])[0]

    return generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--api-key-env", default=None, help="environment variable with the key")
    args = ap.parse_args()
    key = os.environ[args.api_key_env] if args.api_key_env else None
    state = State(transformers_engine(args.model), args.model, key)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
