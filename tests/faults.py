"""A fault-injecting HTTP proxy in front of a Convex deployment, for retry and fault-tolerance tests.

Each request takes the next fault from a queue (none: pass through):

* ``reset``: close the connection without a reply;
* ``status:<code>``: answer with that HTTP status without forwarding;
* ``drop-reply``: forward the request (the function runs) and close the connection instead of replying;
* ``delay:<seconds>``: wait, then forward (longer than the client's timeout: a timeout);
* ``garble``: forward the request (the function runs) and answer HTTP 200 with a cut, malformed body;
* ``reply:<status>:<json>``: answer with that status and body without forwarding (a real deployment's error shapes).

``answers`` maps a function path to the fault every call of that function gets (before the queue).

``hook``, if set, is called as ``hook(phase, function)`` for every request, with ``phase`` ``'request'`` (before it
is forwarded) and ``'reply'`` (after the deployment answered, before the client gets the answer) and ``function``
the Convex function path (``structures:putBatch``); when it returns ``'drop'`` the connection is closed there. Tests
use it to act at an exact point of a client's conversation (kill the client, switch the deployment) without timing.
"""

from __future__ import annotations

import collections
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip('/')
        self.faults: collections.deque[str] = collections.deque()
        #: A fault for every call of one function (``{'structures:putBatch': 'reply:200:...'}``), before the queue.
        self.answers: dict[str, str] = {}
        self.requests: list[str] = []
        self.forwarded = 0
        self.hook = None
        self.closing = threading.Event()
        self.injected: collections.Counter[str] = collections.Counter()
        self._chaos: tuple[float, random.Random, tuple[str, ...]] | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                try:
                    self.handle_post()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up first (a timeout): fine
                    self.close_connection = True

            def handle_post(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                try:
                    function = json.loads(body).get('path', '?')
                except ValueError:
                    function = '?'
                if proxy.hook is not None and proxy.hook('request', function) == 'drop':
                    self.close_connection = True
                    return
                fault = proxy.answers.get(function)
                if fault is None:
                    fault = proxy.faults.popleft() if proxy.faults else proxy.random_fault()
                if fault:
                    proxy.injected[fault.split(':')[0] if fault.startswith('delay') else fault] += 1
                proxy.requests.append(f'{self.path} {fault}')
                if fault == 'reset':
                    self.close_connection = True
                    return
                if fault and fault.startswith(('status:', 'reply:')):
                    _, status, *rest = fault.split(':', 2)
                    payload = rest[0].encode() if rest else b'{"code":"Injected","message":"injected fault"}'
                    self.send_response(int(status))
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault and fault.startswith('delay:'):
                    proxy.closing.wait(float(fault.split(':')[1]))  # a slow deployment: the client times out
                headers = {k: v for k, v in self.headers.items() if k.lower() in ('authorization', 'content-type')}
                reply = httpx.post(proxy.upstream + self.path, content=body, headers=headers, timeout=120)
                proxy.forwarded += 1
                if proxy.hook is not None and proxy.hook('reply', function) == 'drop':
                    self.close_connection = True
                    return
                if fault == 'drop-reply':
                    self.close_connection = True
                    return
                content = reply.content[: len(reply.content) // 2] if fault == 'garble' else reply.content
                if fault == 'garble':
                    reply = httpx.Response(200)
                self.send_response(reply.status_code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def chaos(self, rate: float, kinds: tuple[str, ...], seed: int) -> None:
        """From now on, inject one of ``kinds`` (chosen uniformly) into a fraction ``rate`` of the requests."""
        self._chaos = (rate, random.Random(seed), kinds)

    def random_fault(self) -> str | None:
        if self._chaos is None:
            return None
        rate, rng, kinds = self._chaos
        return rng.choice(kinds) if rng.random() < rate else None

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
