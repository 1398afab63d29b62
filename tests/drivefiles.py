"""A local stand-in for Google Drive on 127.0.0.1, for the download tests (no monkeypatching).

``DriveServer`` serves ``GET /uc?id=<file id>&export=download`` the way the real download path asks
for it (``UNIFORMER_DRIVE_URL=<server.url>``). Each file id has a mode, set by the test:
``ok`` (the bytes), ``quota`` (Drive's HTML quota page, HTTP 200 text/html), ``404``,
``503-once`` (HTTP 503 on the first request, then the bytes), ``drop-once`` (the first request's
connection is closed without an answer, then the bytes). ``hits[file_id]`` counts requests.
"""
from __future__ import annotations

import http.server
import socket
import threading
import urllib.parse
from collections import Counter

QUOTA_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
              b"<p class=\"uc-error-caption\">Sorry, you can't view or download this file at this time.</p>"
              b"<p class=\"uc-error-subcaption\">Too many users have viewed or downloaded this file recently. "
              b"Please try accessing the file again later.</p></body></html>")


class DriveServer:
    """A threaded HTTP server on 127.0.0.1 (free port) serving ``files`` by Drive file id."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.hits: Counter = Counter()
        self._failed_once: set[str] = set()
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                file_id = query.get("id", [""])[0]
                with owner._lock:
                    owner.hits[file_id] += 1
                    mode = owner.modes.get(file_id, "ok")
                    first = file_id not in owner._failed_once
                    if mode.endswith("-once") and first:
                        owner._failed_once.add(file_id)
                if file_id not in owner.files or mode == "404":
                    return self._send(404, b"<html><body>Not Found</body></html>", "text/html")
                if mode == "quota":
                    return self._send(200, QUOTA_PAGE, "text/html; charset=utf-8")
                if mode == "503-once" and first:
                    return self._send(503, b"Service Unavailable", "text/plain")
                if mode == "drop-once" and first:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                self._send(200, owner.files[file_id], "application/octet-stream",
                           {"Content-Disposition": f'attachment; filename="{file_id}.pth"'})

            def _send(self, status, body, ctype, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> DriveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self) -> None:
        with self._lock:
            self.modes.clear()
            self.hits.clear()
            self._failed_once.clear()

