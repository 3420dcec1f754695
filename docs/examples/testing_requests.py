"""
pytest + requests: a client that falls back when the server hangs, under
txvaurien's hang behavior.  Run it with: pytest testing_requests.py
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield "127.0.0.1:{}".format(server.server_port)
    server.shutdown()
    server.server_close()
    thread.join()


def greeting(url, timeout=0.5):
    """The code under test: a greeting, or a default one after a timeout."""
    try:
        return requests.get(url, timeout=timeout).text
    except requests.Timeout:
        return "hi"


def test_fallsBackWhenServerHangs(web, chaos_proxy):
    proxy = chaos_proxy(web, protocol="http")
    assert greeting(proxy.url) == "hello"
    with proxy.behavior("hang"):
        assert greeting(proxy.url) == "hi"
    assert greeting(proxy.url) == "hello"


def test_fallsBackWhenServerIsDown(web, chaos_proxy):
    proxy = chaos_proxy(web, protocol="http")
    with proxy.down():
        with pytest.raises(requests.ConnectionError):
            greeting(proxy.url)
