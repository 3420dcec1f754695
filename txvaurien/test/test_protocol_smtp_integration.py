"""
Integration tests of the C{smtp} protocol handler on real sockets of
127.0.0.1: an aiosmtpd backend (on its own asyncio loop, in a thread) and
the standard library's smtplib, run in threads so that the reactor keeps
serving.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import ssl
import threading
from email.message import EmailMessage
from typing import Any, Generator

from twisted.internet import defer, protocol
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from txvaurien.test.helpers import listenProxy
from txvaurien.test.realclients import TIMEOUT, Events, assertSeededSubset
from txvaurien.test.servers import listenBackend, requireModule, selfSignedCertificate


class Handler:
    """
    An aiosmtpd handler that keeps the messages it receives and answers
    C{VRFY x} with C{252 x}.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK queued as {}".format(len(self.messages))

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        return "252 " + address


def selfSignedContext(directory: str) -> ssl.SSLContext:
    """
    A server TLS context with a fresh self-signed certificate for
    C{backend.example}.
    """
    certPath, keyPath = selfSignedCertificate(directory, commonName="backend.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certPath, keyPath)
    return context


class AioSMTPServer:
    """
    An aiosmtpd server on an ephemeral port of 127.0.0.1, on an asyncio
    loop in its own thread.
    """

    def __init__(self, handler: Handler, **options: Any) -> None:
        smtp = requireModule("aiosmtpd.smtp", "aiosmtpd")
        self.loop = asyncio.new_event_loop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        def build() -> Any:
            return smtp.SMTP(handler, hostname="backend.example", **options)

        started = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(build, sock=listener), self.loop)
        self.server = started.result(TIMEOUT)

    def stop(self) -> None:
        """
        Close the server and stop its loop (blocking: call in a thread).
        """
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


def startBackend(case: TestCase, **options: Any) -> tuple[int, Handler]:
    """
    Start aiosmtpd; stop it at cleanup (after the proxy, if the proxy is
    started later).
    """
    handler = Handler()
    server = AioSMTPServer(handler, **options)
    case.addCleanup(deferToThread, server.stop)
    return server.port, handler


def message(i: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "sender@example.org"
    mail["To"] = "rcpt{}@example.org".format(i)
    mail["Subject"] = "message {}".format(i)
    mail.set_content("Body of message {}.\n.leading dot\n".format(i))
    return mail


def client(port: int) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=TIMEOUT)


class ClientTests(TestCase):
    """
    smtplib works through C{--protocol smtp} with C{dummy}.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_sendSeveralMessages(self) -> Generator[Any, Any, Any]:
        """
        smtplib sends three messages on one connection; aiosmtpd receives
        them intact (dot-stuffing included).
        """
        port, handler = startBackend(self)
        proxy = listenProxy(self, port, protocol="smtp")

        def send() -> list[Any]:
            with client(proxy.port) as smtp:
                code, _ = smtp.ehlo()
                assert code == 250, code
                for i in range(3):
                    smtp.send_message(message(i))
                return [smtp.noop()[0]]

        self.assertEqual((yield deferToThread(send)), [250])
        self.assertEqual(len(handler.messages), 3)
        for i, (sender, rcpts, content) in enumerate(handler.messages):
            self.assertEqual((sender, rcpts), ("sender@example.org",
                                               ["rcpt{}@example.org".format(i)]))
            self.assertIn(b"Body of message %d.\r\n.leading dot" % i, content)
        self.assertEqual(proxy.accepted, 1)

    @defer.inlineCallbacks
    def test_pipelinedCommands(self) -> Generator[Any, Any, Any]:
        """
        Commands and content written at once (RFC 2920) get their replies
        in order.
        """
        port, handler = startBackend(self)
        proxy = listenProxy(self, port, protocol="smtp")

        def pipeline() -> bytes:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as s:
                reader = s.makefile("rb")
                greeting = reader.readline()
                s.sendall(b"EHLO client.example\r\n")
                while True:
                    line = reader.readline()
                    if line[3:4] != b"-":
                        break
                s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
                          b"RCPT TO:<c@example.org>\r\nDATA\r\n")
                replies = [reader.readline() for _ in range(4)]
                s.sendall(b"Subject: piped\r\n\r\nhello\r\n.\r\nVRFY <z@example.org>\r\nQUIT\r\n")
                replies += [reader.readline() for _ in range(3)]
                return greeting + b"".join(replies)

        out = yield deferToThread(pipeline)
        codes = [line[:3] for line in out.splitlines()]
        self.assertEqual(codes, [b"220", b"250", b"250", b"250", b"354", b"250", b"252", b"221"])
        self.assertIn(b"252 z@example.org", out)
        [(sender, rcpts, content)] = handler.messages
        self.assertEqual((sender, rcpts), ("a@example.org", ["b@example.org", "c@example.org"]))
        self.assertTrue(content.endswith(b"hello\r\n"))

    @defer.inlineCallbacks
    def test_authLoginContinuations(self) -> Generator[Any, Any, Any]:
        """
        C{AUTH LOGIN}, whose answers to C{334} challenges are not commands,
        works through the proxy; a wrong password is refused.
        """
        auth = requireModule("aiosmtpd.smtp", "aiosmtpd")

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          data: Any) -> Any:
            ok = (data.login, data.password) == (b"user", b"secret")
            return auth.AuthResult(success=ok, handled=False)

        port, _ = startBackend(self, authenticator=authenticator, auth_require_tls=False)
        proxy = listenProxy(self, port, protocol="smtp")

        def login(password: str) -> tuple[int, bytes]:
            with client(proxy.port) as smtp:
                smtp.ehlo()
                smtp.user, smtp.password = "user", password
                return smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)

        code, _ = yield deferToThread(login, "secret")
        self.assertEqual(code, 235)
        yield self.assertFailure(deferToThread(login, "wrong"), smtplib.SMTPAuthenticationError)

    @defer.inlineCallbacks
    def test_startTLSPassthrough(self) -> Generator[Any, Any, Any]:
        """
        After C{STARTTLS}, the TLS handshake and everything after it pass
        through untouched: smtplib sends a message over TLS.
        """
        context = selfSignedContext(self._tempDir())
        port, handler = startBackend(self, tls_context=context)
        proxy = listenProxy(self, port, protocol="smtp")
        clientContext = ssl.create_default_context()
        clientContext.check_hostname = False
        clientContext.verify_mode = ssl.CERT_NONE

        def starttls() -> smtplib.SMTP:
            smtp = client(proxy.port)
            smtp.ehlo()
            smtp.starttls(context=clientContext)
            smtp.ehlo()
            return smtp

        smtp = yield deferToThread(starttls)
        try:
            [connection] = proxy.connections
            self.assertTrue(connection.session.switched)
            self.assertTrue(connection.session.passthrough)
            self.assertIsInstance(smtp.sock, ssl.SSLSocket)
            yield deferToThread(smtp.send_message, message(7))
        finally:
            yield deferToThread(smtp.quit)
        [(_, rcpts, _)] = handler.messages
        self.assertEqual(rcpts, ["rcpt7@example.org"])

    def _tempDir(self) -> str:
        path = self.mktemp()
        os.makedirs(path)
        return path


class ErrorTests(TestCase):
    """
    Error replies make smtplib raise its own errors, with the code chosen.
    """

    timeout = 90

    @defer.inlineCallbacks
    def test_swallowedMailRaisesAndConnectionStaysUsable(self) -> Generator[Any, Any, Any]:
        """
        A C{MAIL} answered by the proxy (451 by default) makes C{sendmail}
        raise L{smtplib.SMTPSenderRefused} with code 451; the connection
        still works afterwards.
        """
        port, handler = startBackend(self)
        proxy = listenProxy(self, port, behavior="100:swallow", protocol="smtp",
                            settings={"swallow": {"only": "MAIL"}})

        def send() -> tuple[Any, int]:
            with client(proxy.port) as smtp:
                try:
                    smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
                except smtplib.SMTPSenderRefused as e:
                    error = e
                return error, smtp.verify("<after@example.org>")[0]

        error, code = yield deferToThread(send)
        self.assertIsInstance(error, smtplib.SMTPResponseException)
        self.assertEqual(error.smtp_code, 451)
        self.assertIn(b"txvaurien: swallowed", error.smtp_error)
        self.assertEqual(code, 252)
        self.assertEqual(handler.messages, [])

    @defer.inlineCallbacks
    def test_errorBehaviorCode(self) -> Generator[Any, Any, Any]:
        """
        The C{error} behavior's replies carry the protocol's C{error_code}:
        smtplib raises an L{smtplib.SMTPResponseException} with 554.
        """
        port, _ = startBackend(self)
        proxy = listenProxy(self, port, behavior="100:error", protocol="smtp",
                            protocolSettings={"error_code": 554})

        def send() -> None:
            with client(proxy.port) as smtp:
                smtp.sendmail("a@example.org", ["b@example.org"], b"x\r\n")

        error = yield self.assertFailure(deferToThread(send), smtplib.SMTPResponseException)
        self.assertEqual(error.smtp_code, 554)

    @defer.inlineCallbacks
    def test_421Closes(self) -> Generator[Any, Any, Any]:
        """
        With C{error_code} 421, smtplib gets the 421 and then finds the
        connection closed, as with a server that shuts down.
        """
        port, _ = startBackend(self)
        events = Events(self)
        proxy = listenProxy(self, port, behavior="100:swallow", protocol="smtp",
                            settings={"swallow": {"only": "MAIL"}},
                            protocolSettings={"error_code": 421})

        def send() -> tuple[Any, Any]:
            smtp = client(proxy.port)
            try:
                smtp.ehlo()
                first = smtp.mail("a@example.org")
                try:
                    smtp.noop()
                except smtplib.SMTPServerDisconnected as e:
                    return first, e
                return first, None
            finally:
                smtp.close()

        first, disconnected = yield deferToThread(send)
        self.assertEqual(first[0], 421)
        self.assertIsInstance(disconnected, smtplib.SMTPServerDisconnected)
        yield events.whenClosed(proxy)
        self.assertEqual(proxy.connections, {})

    @defer.inlineCallbacks
    def requestScopeRun(self, behavior: str, seed: int, settings: Any = None) -> Generator[Any, Any, Any]:
        port, _ = startBackend(self)
        proxy = listenProxy(self, port, behavior=behavior, protocol="smtp", seed=seed,
                            settings=settings)

        def verify() -> list[tuple[int, bytes]]:
            smtp = client(proxy.port)
            try:
                return [smtp.verify("<user{}@example.org>".format(i)) for i in range(100)]
            finally:
                smtp.close()

        results = yield deferToThread(verify)
        self.assertEqual(proxy.accepted, 1)
        return results

    @defer.inlineCallbacks
    def test_requestScopeReproducible(self) -> Generator[Any, Any, Any]:
        """
        Under request scope, C{50:swallow} with a fixed seed fails the same
        subset of 100 sequential C{VRFY} on one connection on every run
        (another seed, another subset); the others get their own answer.
        """

        @defer.inlineCallbacks
        def failing(seed: int) -> Generator[Any, Any, Any]:
            results = yield self.requestScopeRun("50:swallow", seed)
            failing = set()
            for i, (code, text) in enumerate(results):
                if code == 451:
                    self.assertEqual(text, b"txvaurien: swallowed")
                    failing.add(i)
                else:
                    self.assertEqual((code, text), (252, b"user%d@example.org" % i))
            return failing

        yield assertSeededSubset(self, failing, 3, 4, low=25, high=75)

    @defer.inlineCallbacks
    def test_requestScopeSendmailSubset(self) -> Generator[Any, Any, Any]:
        """
        With C{25:error} under request scope (each message takes four
        requests: C{MAIL}, C{RCPT}, C{DATA}, content), the messages that arrive are
        exactly those whose every command passed, intact; the subset
        repeats with the seed.  (An error in place of a message's content
        closes the connection; the client then connects again.)
        """
        runs = []
        for _ in range(2):
            port, handler = startBackend(self)
            proxy = listenProxy(self, port, behavior="25:error", protocol="smtp", seed=21)

            def sendAll() -> list[bool]:
                outcome: list[bool] = []
                smtp = None
                try:
                    for i in range(30):
                        if smtp is None:
                            # HELO may be answered by an error too: retry.
                            smtp = client(proxy.port)
                            for _ in range(50):
                                if smtp.helo()[0] == 250:
                                    break
                        try:
                            smtp.sendmail("s@example.org", ["r{}@example.org".format(i)],
                                          "Subject: {}\r\n\r\nbody {}\r\n".format(i, i))
                            outcome.append(True)
                            continue
                        except smtplib.SMTPResponseException as e:
                            assert e.smtp_code == 451, e
                        except smtplib.SMTPRecipientsRefused as e:
                            assert [c for c, _ in e.recipients.values()] == [451], e
                        outcome.append(False)
                        try:
                            # Start the next message afresh (RSET may be
                            # answered by an error too).
                            for _ in range(50):
                                if smtp.rset()[0] == 250:
                                    break
                        except smtplib.SMTPServerDisconnected:
                            # An error in place of the content closes.
                            smtp.close()
                            smtp = None
                finally:
                    if smtp is not None:
                        smtp.close()
                return outcome

            outcome = yield deferToThread(sendAll)
            delivered = [rcpts[0] for _, rcpts, _ in handler.messages]
            self.assertEqual(delivered, ["r{}@example.org".format(i)
                                         for i, ok in enumerate(outcome) if ok])
            for _, rcpts, content in handler.messages:
                i = int(rcpts[0][1:].split("@")[0])
                self.assertEqual(content, "Subject: {}\r\n\r\nbody {}\r\n".format(i, i).encode())
            runs.append(outcome)
        self.assertEqual(runs[0], runs[1])
        self.assertIn(True, runs[0])
        self.assertIn(False, runs[0])


class FailureTests(TestCase):
    """
    A backend dying mid-reply and a client leaving mid-command free the
    connection and log it once.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_backendDiesMidReply(self) -> Generator[Any, Any, Any]:
        """
        A backend that closes in the middle of a multi-line reply: smtplib
        sees the connection closed, and the proxy frees it and logs its end
        once, without a traceback.
        """

        class Dying(protocol.Protocol):
            transport: Any
            def connectionMade(self) -> None:
                self.transport.write(b"220 dying.example ESMTP\r\n")

            def dataReceived(self, data: bytes) -> None:
                self.transport.write(b"250-dying.example\r\n250-SIZE 100")
                self.transport.loseConnection()

        factory = protocol.ServerFactory.forProtocol(Dying)
        port = listenBackend(self, factory)
        events = Events(self)
        proxy = listenProxy(self, port, protocol="smtp")

        def ehlo() -> None:
            with client(proxy.port) as smtp:
                smtp.ehlo()

        yield self.assertFailure(deferToThread(ehlo), smtplib.SMTPServerDisconnected)
        yield events.assertForgotten(proxy)

    @defer.inlineCallbacks
    def test_clientLeavesMidContent(self) -> Generator[Any, Any, Any]:
        """
        A client that leaves in the middle of a message's content: the
        proxy frees the connection and logs its end once, without a
        traceback, and nothing is delivered.
        """
        backendPort, handler = startBackend(self)
        events = Events(self)
        proxy = listenProxy(self, backendPort, protocol="smtp")

        def leave() -> None:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as s:
                reader = s.makefile("rb")
                reader.readline()
                s.sendall(b"HELO c\r\n")
                reader.readline()
                s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
                for _ in range(3):
                    reader.readline()
                s.sendall(b"Subject: cut\r\n\r\nhalf a mess")

        yield deferToThread(leave)
        yield events.assertForgotten(proxy)
        self.assertEqual(handler.messages, [])
