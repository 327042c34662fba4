"""Answers broken on the wire (a real socket on loopback playing the server):
cut short, not JSON, redirects. The control plane cuts a whole-list answer
short when a later page fails (controlplane/api/lists.go); the SDK must say so
rather than return a short list or a bare JSONDecodeError."""

from __future__ import annotations

import socket
import threading
import unittest

from sandboxmesh_sdk import ApiClient, ApiConnectionError, ApiDecodeError, ApiException, Configuration, SandboxesApi


class OneShot:
    """OneShot answers one connection with raw bytes and closes it."""

    def __init__(self, answer: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.request = b""
        self.t = threading.Thread(target=self._serve, args=(answer,), daemon=True)
        self.t.start()

    def _serve(self, answer: bytes) -> None:
        c, _ = self.sock.accept()
        with c:
            c.settimeout(5)
            self.request = c.recv(65536)
            c.sendall(answer)

    def close(self) -> None:
        self.t.join(5)
        self.sock.close()


def api(url: str) -> SandboxesApi:
    cfg = Configuration(host=url)
    cfg.api_key["sandboxmesh-api-key"] = "smk_test"
    cfg.timeout = 5
    return SandboxesApi(ApiClient(cfg))


class TransportTest(unittest.TestCase):
    def test_broken_answers(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        cases = [
            ("content-length cut short", head + b"Content-Length: 100\r\n\r\n[{\"name\":\"a\"}", ApiConnectionError, "cut short"),
            ("chunked cut short", head + b"Transfer-Encoding: chunked\r\n\r\n5\r\n[{\"na", ApiConnectionError, ""),
            ("complete but not JSON", head + b"Content-Length: 5\r\n\r\n[1,2,", ApiDecodeError, "not valid JSON"),
            ("redirect not followed", b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 0\r\n\r\n", ApiException, "307"),
        ]
        for what, answer, exc, text in cases:
            with self.subTest(what):
                srv = OneShot(answer)
                try:
                    with self.assertRaises(exc) as cm:
                        api(srv.url).list_sandboxes("default")
                    self.assertIn(text, str(cm.exception))
                finally:
                    srv.close()
                self.assertIn(b"sandboxmesh-api-key: smk_test", srv.request.lower())


if __name__ == "__main__":
    unittest.main()
