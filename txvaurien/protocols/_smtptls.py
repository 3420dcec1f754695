# -*- test-case-name: txvaurien.test.test_tls_backend_upgrade -*-
"""
SMTP's backend leg switched to TLS by the proxy itself
(C{tls_backend=always}; see L{txvaurien.upgrade.BACKEND_OPTIONS}), for
clients that speak in clear: a submission server that requires
C{STARTTLS} reached by a client without TLS settings.

The proxy holds the server's greeting, sends its own C{EHLO} and
C{STARTTLS}, reads their replies (the client sees neither), and on the
C{220} layers TLS on the backend leg and verifies it; then the client
gets the greeting and its commands flow, inside TLS from the proxy on.
A server that does not offer C{STARTTLS}, refuses it, or fails
verification gives the client a C{421} greeting naming the reason, as an
unreachable backend does.  A greeting other than C{220} (a server that
refuses the session) reaches the client at once.
"""

from __future__ import annotations

from typing import Any

from txvaurien.frames import Frame
from txvaurien.protocols._standin import StandIn

#: The name the proxy gives in its own C{EHLO}.
EHLO = b"EHLO txvaurien\r\n"
#: The most the proxy reads of the replies to its own commands.
MAX_REPLY = 16 * 1024


class BackendStartTLS:
    """
    Stands in for the reply framer's C{feed} from the backend's
    connection until its leg is switched to TLS.

    @ivar step: C{"greeting"}, C{"ehlo"} or C{"starttls"}: the reply
        being read.
    @ivar reply: the lines of the reply being read.
    @ivar greeting: the greeting held for the client, once read.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.framer = session.downstream
        self.standIn = StandIn(self.framer, self.feed)
        self.step = "greeting"
        self.buffer = b""
        self.reply: list[bytes] = []
        self.greeting = b""

    def ready(self) -> None:
        """
        The backend leg is verified: give the client the greeting, as the
        backend's bytes come.
        """
        greeting, self.greeting = self.greeting, b""
        if greeting:
            pipe = self.session.connection.downstream
            pipe.deliverHeld(greeting)

    def _fail(self, why: str) -> list[Frame]:
        self.standIn.giveWay()
        self.session.connection.tlsUpgradeEnded(why)
        return []

    def feed(self, data: bytes) -> list[Frame]:
        """
        Read the server's bytes, a reply at a time: the greeting is held
        for the client, the replies to the proxy's commands end here.
        """
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[:end + 1], self.buffer[end + 1:]
            self.reply.append(line)
            if line[3:4] == b"-":
                continue
            reply, self.reply = self.reply, []
            done = self._replied(reply)
            if done is not None:
                return done
        if len(self.buffer) + sum(map(len, self.reply)) > MAX_REPLY:
            return self._fail("the server's reply is longer than {} bytes".format(MAX_REPLY))
        return []

    def _replied(self, reply: list[bytes]) -> list[Frame] | None:
        """
        A whole reply was read: go on with the next step.

        @return: the frames that end this stand-in's part, or L{None} to
            go on reading.
        """
        code = reply[-1][:3]
        connection = self.session.connection
        backend = connection.backend.transport
        text = b" ".join(line[4:].strip() for line in reply).decode("ascii", "replace")
        if self.step == "greeting":
            if code != b"220":
                # The server refuses the session: the client hears it.
                self.standIn.giveWay()
                frames: list[Frame] = self.framer.feed(b"".join(reply) + self.buffer)
                connection.tlsUpgradeEnded(None)
                return frames
            self.greeting = b"".join(reply)
            self.step = "ehlo"
            backend.write(EHLO)
            return None
        if self.step == "ehlo":
            if code != b"250":
                return self._fail("the server refused EHLO: {} {}".format(
                    code.decode("ascii", "replace"), text))
            offers = {line[4:].strip().split(b" ")[0].upper() for line in reply}
            if b"STARTTLS" not in offers:
                return self._fail("the server does not offer STARTTLS")
            self.step = "starttls"
            backend.write(b"STARTTLS\r\n")
            return None
        if code != b"220":
            return self._fail("the server refused STARTTLS: {} {}".format(
                code.decode("ascii", "replace"), text))
        if self.buffer:
            # Bytes after the 220 cannot come from TLS (CVE-2021-38371).
            return self._fail("the server sent {} bytes after accepting STARTTLS".format(
                len(self.buffer)))
        self.standIn.giveWay()
        self.session.handler.tls.startBackend(connection)
        return []


def prepareBackend(session: Any) -> bool:
    """
    With C{tls_backend=always}, switch the newly connected backend to TLS
    before the client's first command passes.

    @return: whether the session holds the client's bytes until the
        backend leg is verified.
    """
    if not session.handler.tls.backendAlways:
        return False
    session.preparing = BackendStartTLS(session)
    return True


__all__ = ["BackendStartTLS", "prepareBackend"]
