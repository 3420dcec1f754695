"""
redis-py with C{ssl=True} through a proxy that terminates TLS and
originates it to redis-server's C{--tls-port}: commands go through, and
an error behavior's replies reach the client inside TLS.
"""

from __future__ import annotations

import os
from typing import Any, Generator

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from txvaurien.endpoints import parseBackend
from txvaurien.test.servers import freePort, requireBinary, requireModule, startServer
from txvaurien.test.tlshelpers import TestCertificates, inThread, listenTLSProxy


class RedisTLSTests(TestCase):
    """
    redis-py, TLS on both legs, redis-server with TLS.
    """

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self) -> Generator[Any, Any, Any]:
        from twisted.internet import reactor

        self.redis = requireModule("redis", "redis")
        binary = requireBinary("redis-server", "redis-server")
        self.certs = TestCertificates(self)
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        port = freePort()
        yield startServer(self, [
            binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", self.certs.certFile, "--tls-key-file", self.certs.keyFile,
            "--tls-ca-cert-file", self.certs.caFile, "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--dir", directory, "--loglevel", "warning",
        ], port, path=directory)
        self.backend = parseBackend(reactor, "tls:host=localhost:port={}:caFile={}".format(
            port, self.certs.caFile))
        self.listen = "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}".format(
            self.certs.keyFile, self.certs.certFile)

    def client(self, port: int) -> Any:
        return self.redis.Redis(host="localhost", port=port, ssl=True,
                                ssl_ca_certs=self.certs.caFile, socket_timeout=10)

    @defer.inlineCallbacks
    def test_commandsThroughTLS(self) -> Generator[Any, Any, None]:
        """
        SET and GET go through both TLS legs and come back intact.
        """
        proxy = yield listenTLSProxy(self, self.backend, self.listen, "redis")

        def talk() -> Any:
            client = self.client(proxy.port)
            try:
                client.set("k", b"v" * 100000)
                return client.get("k")
            finally:
                client.close()

        value = yield inThread(talk)
        self.assertEqual(value, b"v" * 100000)

    @defer.inlineCallbacks
    def test_errorBehaviorInsideTLS(self) -> Generator[Any, Any, None]:
        """
        With the error behavior, redis-py reads the proxy's C{-ERR} reply
        inside TLS as a C{ResponseError}.
        """
        proxy = yield listenTLSProxy(self, self.backend, self.listen, "redis", "100:error")

        def talk() -> Any:
            client = self.client(proxy.port)
            try:
                client.get("k")
            finally:
                client.close()

        failure = yield self.assertFailure(inThread(talk), self.redis.ResponseError)
        self.assertTrue(str(failure))
