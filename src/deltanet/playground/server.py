"""The playground's HTTP server: the page's static files, a JSON API, and a Server-Sent Events stream of frames.

Standard library only (:class:`http.server.ThreadingHTTPServer`), bound to
127.0.0.1; requests whose ``Host`` header names another machine are refused
(a web page elsewhere cannot drive the session through DNS rebinding).

=====================  =====================================================================
``GET /``              the page (``static/index.html``, ``app.js``, ``style.css``)
``GET /api/state``     the current frame (JSON), as the events carry it
``GET /api/data``      the points, the plane's domain, the input features' heatmaps
``GET /api/events``    ``text/event-stream``: an ``event: frame`` after every change
``GET /api/model``     the model file (safetensors layout, :func:`deltanet.save`)
``POST /api/config``   a partial configuration (JSON object); live keys apply, others reset
``POST /api/control``  ``{"action": "play" | "pause" | "step" | "phase" | "reset", "steps": n}``
``POST /api/preset``   ``{"name": "deep_sigmoid" | "deep_relu_residual"}``
``POST /api/upload``   a CSV file (the body): two feature columns, then the target
``POST /api/model``    a model file (the body) to continue from
=====================  =====================================================================

Every POST answers with the new frame (errors: status 400 and ``{"error": message}``).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from .datasets import read_csv_upload
from .events import EventHub, to_json
from .session import Session

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY = 16 * 1024 * 1024
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"), "/style.css": ("style.css", "text/css; charset=utf-8")}


def static_file(name: str) -> bytes:
    """A file of the page, from the package data (``deltanet/playground/static``)."""
    return resources.files("deltanet.playground").joinpath("static", name).read_bytes()


class PlayLoop:
    """The background thread that trains while the page is playing and publishes a frame after each burst."""

    #: Seconds of training between two frames, and the pause after each frame (the page stays responsive).
    burst = 0.08
    pause = 0.03

    def __init__(self, server: PlaygroundServer) -> None:
        self.server = server
        self.running = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def playing(self) -> bool:
        return self.running.is_set()

    def play(self) -> None:
        self.running.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="deltanet-playground-train", daemon=True)
            self._thread.start()

    def pause_(self) -> None:
        self.running.clear()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)

    def _run(self) -> None:
        while self.running.is_set() and not self.server.stopping.is_set():
            try:
                self.server.session.train_for(self.burst)
            except Exception as exc:       # a diverged run (NaN loss) stops playing and says why
                self.server.session.notice = f"training stopped: {exc}"
                self.running.clear()
            self.server.publish()
            time.sleep(self.pause)


class PlaygroundServer(ThreadingHTTPServer):
    """The server of one playground session (``port=0``: any free port; see :attr:`url`)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = DEFAULT_PORT, session: Session | None = None) -> None:
        super().__init__((HOST, port), Handler)
        self.session = session or Session()
        self.hub = EventHub()
        self.loop = PlayLoop(self)
        self.stopping = threading.Event()
        self.publish()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def state(self) -> dict[str, Any]:
        frame = self.session.frame()
        frame["playing"] = self.loop.playing
        return frame

    def publish(self) -> str:
        """Compute the current frame, send it to every page, and return it (JSON text)."""
        data = to_json(self.state())
        self.hub.publish("frame", data)
        return data

    def close(self) -> None:
        """Stop training, end the event streams, stop serving."""
        self.stopping.set()
        self.loop.pause_()
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: PlaygroundServer
    server_version = "deltanet-playground"

    def log_message(self, format: str, *args: Any) -> None:      # quiet: the terminal shows the URL only
        pass

    # -- responses ---------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, text: str, status: int = 200) -> None:
        self._send(status, text.encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(json.dumps({"error": message}), status)

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in ("127.0.0.1", "localhost", "")

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError(f"the upload is {n} bytes; at most {MAX_BODY} are accepted")
        return self.rfile.read(n) if n else b""

    def _json_body(self) -> dict[str, Any]:
        raw = self._body()
        try:
            body = json.loads(raw.decode() or "{}")
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"the request body is not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        return body

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "this server answers requests to 127.0.0.1 only")
        path = urlsplit(self.path).path
        if path in STATIC:
            name, ctype = STATIC[path]
            return self._send(200, static_file(name), ctype)
        if path == "/api/state":
            return self._json(to_json(self.server.state()))
        if path == "/api/data":
            return self._json(to_json(self.server.session.data_view()))
        if path == "/api/events":
            return self._events()
        if path == "/api/model":
            return self._model_file()
        if path == "/favicon.ico":
            return self._send(204, b"", "image/x-icon")
        return self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "this server answers requests to 127.0.0.1 only")
        path = urlsplit(self.path).path
        srv, session = self.server, self.server.session
        try:
            if path == "/api/config":
                changes = self._json_body()
                playing = srv.loop.playing
                srv.loop.pause_()
                if session.configure(changes) is False and playing:
                    srv.loop.play()            # a live change (learning rate, ...) keeps the run playing
            elif path == "/api/control":
                self._control(self._json_body())
            elif path == "/api/preset":
                srv.loop.pause_()
                session.preset(str(self._json_body().get("name")))
            elif path == "/api/upload":
                srv.loop.pause_()
                name = os.path.basename(self.headers.get("X-Filename") or "upload.csv")
                try:
                    text = self._body().decode("utf-8-sig")
                except UnicodeDecodeError:
                    raise ValueError(f"{name}: not a UTF-8 text file") from None
                session.set_upload(read_csv_upload(text, name))
            elif path == "/api/model":
                srv.loop.pause_()
                self._load_model(self._body())
            else:
                return self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")
        except (ValueError, TypeError, OSError) as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        session.notice = None
        self._json(srv.publish())

    def _control(self, body: dict[str, Any]) -> None:
        srv, session = self.server, self.server.session
        action = body.get("action")
        if action == "play":
            srv.loop.play()
        elif action == "pause":
            srv.loop.pause_()
        elif action == "step":
            srv.loop.pause_()
            steps = body.get("steps", 1)
            if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 100_000:
                raise ValueError(f"steps must be an int in [1, 100000], got {steps!r}")
            session.step(steps)
        elif action == "phase":
            srv.loop.pause_()
            session.advance()
        elif action == "reset":
            srv.loop.pause_()
            session.reset()
        else:
            raise ValueError(f"unknown action {action!r}; one of play, pause, step, phase, reset")

    def _events(self) -> None:
        hub = self.server.hub
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        q = hub.subscribe()
        last = time.monotonic()
        try:
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not self.server.stopping.is_set():
                try:
                    message = q.get(timeout=0.25)
                except queue.Empty:
                    if time.monotonic() - last > 15:
                        self.wfile.write(b": keep-alive\n\n")
                        self.wfile.flush()
                        last = time.monotonic()
                    continue
                self.wfile.write(message)
                self.wfile.flush()
                last = time.monotonic()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass
        finally:
            hub.unsubscribe(q)
            self.close_connection = True

    def _model_file(self) -> None:
        try:
            body = self.server.session.model_bytes()
        except ValueError as exc:            # diverged weights cannot be saved
            return self._error(HTTPStatus.CONFLICT, str(exc))
        self._send(200, body, "application/octet-stream",
                   {"Content-Disposition": 'attachment; filename="playground.safetensors"'})

    def _load_model(self, body: bytes) -> None:
        self.server.session.load_model_bytes(body, os.path.basename(self.headers.get("X-Filename") or "the model file"))


def start(port: int = DEFAULT_PORT, session: Session | None = None) -> tuple[PlaygroundServer, threading.Thread]:
    """A server on 127.0.0.1:``port`` (0: any free port) serving from a background thread."""
    server = PlaygroundServer(port, session)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="deltanet-playground-http", daemon=True)
    thread.start()
    return server, thread


__all__ = ["DEFAULT_PORT", "HOST", "PlaygroundServer", "start", "static_file"]
