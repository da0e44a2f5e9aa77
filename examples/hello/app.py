"""The example app: says which release answers, and one variable of its environment."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answered = 0
    lock = threading.Lock()

    def _failing(self) -> bool:
        # FAIL_PERCENT=50 answers 500 to every other request (its health check still passes):
        # a bad release that only the router's watch (deployment.watch) can catch.
        percent = int(os.environ.get("FAIL_PERCENT") or 0)
        with Handler.lock:
            Handler.answered += 1
            n = Handler.answered
        return percent > 0 and (n * percent) // 100 != ((n - 1) * percent) // 100

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            # HEALTH_FAIL=1 makes a release that never gets healthy: try promoting one
            # to watch shipmate revert it while the previous release keeps serving.
            if os.environ.get("HEALTH_FAIL"):
                self._reply(503, {"status": "failing on purpose (HEALTH_FAIL is set)"})
            else:
                self._reply(200, {"status": "ok"})
            return
        if self._failing():
            self._reply(500, {"release": os.environ.get("RELEASE"), "error": "FAIL_PERCENT"})
            return
        self._reply(
            200,
            {
                "app": os.environ.get("APP"),
                "release": os.environ.get("RELEASE"),
                "build": os.environ.get("BUILD"),
                "greeting": os.environ.get("GREETING"),
                "FOO": os.environ.get("FOO"),
                "pid": os.getpid(),
            },
        )

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self._failing():
            self._reply(500, {"release": os.environ.get("RELEASE"), "error": "FAIL_PERCENT"})
            return
        self._reply(200, {"release": os.environ.get("RELEASE"), "received": len(body)})

    def log_message(self, format: str, *args: object) -> None:
        if self.path != "/health":  # health checks every few seconds would drown the rest
            sys.stdout.write(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}\n")


class Server(ThreadingHTTPServer):
    # socketserver's backlog is 5: a router opening a few dozen connections to a new process
    # at once (one that replaces another under load) would have SYNs dropped and retried a
    # second later. Production servers use 128 to 2048 (gunicorn, uvicorn: 2048).
    request_queue_size = 128
    daemon_threads = True


def main() -> None:
    # BOOT_DELAY_MS simulates an app that takes time to boot (used by the benchmarks).
    time.sleep(int(os.environ.get("BOOT_DELAY_MS", "0")) / 1000)
    if os.environ.get("BOOT_FAIL"):
        print("BOOT_FAIL is set: exiting with code 3 on purpose", flush=True)
        sys.exit(3)
    # BIND_ADDRESS: a container runtime sets 0.0.0.0 (the router reaches the task from outside
    # it). Not HOST: apps use that for their own name (`domain: ${HOST}`).
    host = os.environ.get("BIND_ADDRESS", "127.0.0.1")
    server = Server((host, int(os.environ.get("PORT", "5000"))), Handler)

    def stop(*_: object) -> None:
        # Finish requests in flight, then exit: shutdown() must run off the serving thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"hello listening on {server.server_address[1]} as {os.environ.get('RELEASE')}")
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
