"""
The interfaces of txvaurien.

Two kinds of plugin make a chaos proxy:

  - an L{IProtocolHandler} knows a wire protocol.  For every proxied
    connection it builds an L{IProtocolSession}, whose two L{IFramer}s cut
    each direction's bytes into L{txvaurien.frames.Frame}s (a request, a
    response, or for C{tcp} whatever arrived) and which can write an error
    the client will parse;

  - an L{IBehavior} decides a fault.  For every connection (or request) it
    was chosen for, and for every direction it acts on, it builds an
    L{IFault}, which receives the frames through an L{IStage} and forwards,
    delays, splits, drops or replaces them, or closes the connection.

Both kinds declare C{name} and C{options}; L{txvaurien.options} turns that
one declaration into command-line flags, configuration-file keys,
control-API fields and documentation.

Faults never touch sockets: they work through the small L{IConnection} and
L{IStage} APIs and the reactor's clock, so every one of them runs on
L{twisted.internet.task.Clock} in tests.
"""

from zope.interface import Attribute, Interface


class IPluginDeclaration(Interface):
    """
    What behaviors and protocol handlers have in common: a name, declared
    options and their current values.
    """

    name = Attribute(
        """
        The C{str} a user types to select this plugin (C{"delay"},
        C{"http"}).  Lower case letters, digits and underscores.
        """
    )

    options = Attribute(
        """
        A mapping of option name to C{(description, type, default)}.

        C{type} is C{int}, C{float}, C{bool}, C{str}, C{list[int]},
        C{list[float]}, C{list[str]} or a L{txvaurien.options.OptionType}
        (for example L{txvaurien.options.Choice}).
        """
    )

    settings = Attribute(
        """
        A mutable mapping of every declared option name to its validated
        value.  The proxy may update it at run time (control API); faults
        that read it when they act honour the change on live connections.
        """
    )

    def configure(settings):
        """
        Make an independent, configured copy of this plugin.

        @param settings: validated values for some or all declared options
            (missing ones take their declared default).
        @type settings: L{dict}

        @return: a new provider of the same interface, with its own
            C{settings} and its own proxy-wide state.
        """


class IBehavior(IPluginDeclaration):
    """
    A fault that can be injected, like a L{twisted.internet.protocol.Factory}
    whose protocols are L{IFault}s.

    One configured provider exists per entry of a proxy's behavior table, so
    proxy-wide state (counters such as C{error}'s warm-up) lives on it.

    Two options are common to every behavior and are always present in
    C{settings}: C{direction} (C{"upstream"}, C{"downstream"} or C{"both"};
    which Pipes its faults act on) and C{toxicity} (the probability, 0 to
    1, that it applies to a given connection or request).
    """

    def connectionMade(connection):
        """
        A client connected and this behavior was chosen for the whole
        connection.  Called before the backend connection is attempted.

        The behavior may close or reset C{connection} (then the backend is
        never contacted), or return a L{Deferred} to delay the backend
        connection until it fires.

        It is also called when a change of the behavior table adds this
        behavior to a live connection; a L{Deferred} returned then is
        ignored.  Effects that must stop when the behavior is removed again
        (timers) belong in its faults, which are unlinked.

        @param connection: the connection.
        @type connection: L{IConnection}

        @return: L{None} or a L{twisted.internet.defer.Deferred}.
        """

    def buildFault(stage):
        """
        Build the fault that acts on one direction of one connection (or of
        one request and its response, under request scope).

        @param stage: the fault's place in its Pipe.
        @type stage: L{IStage}

        @return: an L{IFault} provider, or L{None} if this behavior does not
            act on frames in this direction.
        """


class IFault(Interface):
    """
    What one behavior does to the frames of one direction, like a
    L{twisted.internet.interfaces.IProtocol} built by an L{IBehavior}.

    Every frame a fault receives leaves it exactly once, later or at once,
    through L{IStage.forward} or L{IStage.drop} (a fault that splits a frame
    forwards the pieces and gives the last piece the frame's C{last} flag),
    unless the connection closes first.  The Pipe relies on this to keep
    messages in order.
    """

    def frameReceived(frame):
        """
        A frame reached this fault.

        @type frame: L{txvaurien.frames.Frame}
        """

    def eofReceived():
        """
        The source of this direction half-closed its side.  Call
        L{IStage.forwardEOF} to pass the end of stream on, now or later,
        after any frames still held.
        """

    def unlink():
        """
        The behavior table changed and this fault leaves the Pipe while the
        connection stays up: forward every frame still held, now, and cancel
        timers.
        """

    def connectionLost():
        """
        The connection is gone.  Drop held frames and cancel timers.
        """


class IStage(Interface):
    """
    A fault's handle on its place in one Pipe.
    """

    direction = Attribute('C{"upstream"} (client to backend) or C{"downstream"}.')
    connection = Attribute("The L{IConnection} this stage belongs to.")
    behavior = Attribute("The configured L{IBehavior} whose fault sits here.")
    message = Attribute(
        """
        Under request scope, the request L{txvaurien.frames.Message} whose
        exchange this stage serves; L{None} under connection scope.
        """
    )

    def forward(frame):
        """
        Pass C{frame} on to the next fault, or to the peer if this is the
        last one.
        """

    def drop(frame):
        """
        Discard C{frame}: its bytes never reach the peer.
        """

    def forwardEOF():
        """
        Pass the end of stream on.
        """

    def pauseSource():
        """
        Stop reading from this direction's source, for example because the
        fault holds as much as it should.  Calls nest: the source resumes
        after as many L{resumeSource} calls.
        """

    def resumeSource():
        """
        Undo one L{pauseSource}.
        """


class IConnection(Interface):
    """
    One proxied client connection and its backend connection: the API a
    fault uses to act on a connection as a whole.
    """

    id = Attribute("An C{int}, unique within its proxy, in accept order.")
    clock = Attribute("The L{twisted.internet.interfaces.IReactorTime} to use.")
    random = Attribute(
        """
        A L{random.Random} for this connection alone, derived from the
        proxy's seed and C{id}, so that a run can be reproduced.
        """
    )
    session = Attribute("The L{IProtocolSession} framing this connection.")
    proxy = Attribute("The L{txvaurien.proxy.ProxyServerFactory} serving it.")
    reason = Attribute(
        "Why the connection ends (a short L{str} for its last log line), or "
        "L{None} while nothing says so."
    )

    def callLater(delay, f, *args, **kwargs):
        """
        Like L{IReactorTime.callLater}, but the call is cancelled when the
        connection closes.

        @return: the L{twisted.internet.interfaces.IDelayedCall}.
        """

    def reply(request, data, close=False, reason=None):
        """
        Send C{data} to the client as the complete response to C{request},
        in the position the protocol expects it (after the responses to
        earlier requests), through the downstream faults.

        @param request: the request L{txvaurien.frames.Message}, or L{None}
            for bytes that answer nothing in particular (C{tcp}).
        @param data: L{bytes}.
        @param close: if true, close the connection (FIN) once C{data} is
            written (an SMTP C{421}).
        @param reason: why, for the connection's last log line, with
            C{close}.
        """

    def close(reason=None):
        """
        Close both sides cleanly (FIN), after writing what is buffered.

        @param reason: why (C{"limit_time behavior"}), for the log line
            that ends the connection; the first reason given is kept.
        """

    def reset(reason=None):
        """
        Close the client side with a TCP reset (RST) and drop the backend
        side.
        """

    def abort(reason=None):
        """
        Drop both sides at once, without writing what is buffered.
        """


class IUpgradableConnection(IConnection):
    """
    A connection over streams, which a session can switch to TLS in band
    (SMTP's C{STARTTLS}, PostgreSQL's C{SSLRequest}, MySQL's SSL request;
    see L{txvaurien.upgrade}).  Datagram sessions are not.
    """

    def startTLS(serverOptions, clientOptions):
        """
        Put TLS on both legs from now on: the client's handshake answered
        with C{serverOptions} (an
        L{twisted.internet.interfaces.IOpenSSLServerConnectionCreator}),
        the backend's run with C{clientOptions} (a
        L{txvaurien.tls.client.ClientTLS}, which verifies it).  Everything
        before the switch must have been written; the client's bytes wait
        until the backend is verified.  Ends with L{tlsUpgradeEnded}.
        """

    def tlsUpgradeEnded(why):
        """
        The backend leg's handshake ended: with C{why} L{None}, verified;
        otherwise C{why} says why it failed, the client gets the session's
        C{connectFailed} error inside TLS and the connection closes.
        """


class IFramer(Interface):
    """
    Cuts one direction's byte stream into frames.

    The contract every framer keeps (L{txvaurien.protocols.base.Framer}
    implements the parts that do not depend on the protocol):

      - B{Bytes are never changed.}  The data of the frames returned
        concatenates to exactly the data fed, whatever the chunking; the
        same bytes cut into other chunks give the same messages.

      - B{Messages.}  Each frame belongs to one
        L{txvaurien.frames.Message}; a message's frames come in order, the
        first with C{first}, the last with C{last}, and messages of one
        direction are numbered from 0 (C{index}) in the order they start.
        A message is a L{txvaurien.frames.REQUEST} upstream, a
        L{txvaurien.frames.RESPONSE} (or C{PUSH}, C{GREETING})
        downstream, or L{txvaurien.frames.DATA} where the stream is not
        framed.

      - B{Holding.}  A framer may hold bytes until it knows what the
        message they start is (a command's name, a head, a unit's header):
        then its first frame carries them.  Once a message is known, its
        bytes go on as they arrive (a large value or body is never held
        whole).  What it holds is bounded: C{lineLimit} bytes at most
        (HTTP heads, command lines, RESP inline commands...).

      - B{Garbage.}  Bytes that cannot be the protocol (a line past
        C{lineLimit}, a byte that cannot start a message) end the message
        in progress where they start; from there the direction passes
        through unframed, each chunk one L{txvaurien.frames.DATA} message,
        and one warning is logged.  A response framer that gives up makes
        the request framer give up too where its next request starts, so
        that no request waits for a response that will not be framed.
        The proxy never answers garbage itself: the backend's own error
        reaches the client unchanged.

      - B{Pairing.}  A downstream framer pairs each response with the
        oldest request in its session's C{sent} (the requests the backend
        was really sent, see L{IProtocolSession.requestSent}) and removes
        it from there: C{Message.request} is that request.  Requests that
        expect no response never enter C{sent}; bytes that answer nothing
        (a push, an unsolicited line) are a message with no C{request}.
    """

    def feed(data):
        """
        @param data: the next bytes of this direction.
        @type data: L{bytes}

        @return: a L{list} of L{txvaurien.frames.Frame}.
        """

    def finish():
        """
        The direction ended (EOF).  A framer owes, in this order:

          1. the bytes it holds, as the end of the open message (or as a
             L{txvaurien.frames.DATA} message if none is open);
          2. a last frame (empty if nothing is held) for the open message,
             so that every message that started also ends;
          3. (downstream) an empty response for each request still waiting
             in the session's C{sent}, whose C{meta} has
             L{txvaurien.frames.UNANSWERED} set to C{True}: the proxy
             writes the responses in request order, and nothing may wait
             behind a request the backend will never answer.

        @return: a L{list} of final frames.
        """


class IProtocolSession(Interface):
    """
    One connection's view of a wire protocol, like a
    L{twisted.internet.interfaces.IProtocol} built by an L{IProtocolHandler}.

    A session keeps what both directions share: the requests the backend
    was sent and has not answered (C{sent}, oldest first), which the
    downstream framer pairs responses with, and the protocol's state
    (version, transaction, subscriptions).  It says what an error looks
    like (L{errorReply}).  L{txvaurien.protocols.base.Session} is a base.
    """

    upstream = Attribute("The L{IFramer} for client-to-backend bytes.")
    downstream = Attribute("The L{IFramer} for backend-to-client bytes.")
    serverSpeaksFirst = Attribute(
        "C{True} if the backend talks before the client (SMTP, MySQL)."
    )
    passthrough = Attribute(
        """
        C{True} while framing adds nothing a behavior could use (C{tcp}, or
        a connection that switched to TLS).  With no fault on a Pipe, a
        passthrough session lets the proxy skip the framers altogether, so
        once a session says C{True} its framers must not depend on bytes
        they did not see.
        """
    )

    def requestSent(request):
        """
        The first bytes of C{request} were written to the backend.  Requests
        a fault swallowed never are, so the session can pair backend
        responses with the requests the backend really saw: a session
        appends C{request} to C{sent} if it expects a response
        (C{request.expectsResponse}).

        @type request: L{txvaurien.frames.Message}
        """

    def errorReply(request, reason, code=None):
        """
        Bytes the client will parse as a protocol error answering
        C{request}: the proxy writes them in the request's place among the
        responses (L{IConnection.reply}).

        @param request: the request L{txvaurien.frames.Message}, or L{None}.
        @param reason: a short human-readable L{str}.
        @param code: a numeric status a behavior asks for, in the HTTP
            status space (the C{error} behavior's C{codes}); protocols whose
            errors have no such status ignore it and use their own options.
        @rtype: L{bytes}

        A request that expects no response (C{noreply}, C{CLIENT REPLY
        OFF}) gets C{b""}: its client reads nothing.

        A session whose error ends the conversation (SMTP's C{421}) sets
        C{request.meta[txvaurien.frames.CLOSE_AFTER]} to a reason: the
        proxy closes the connection once the reply to C{request} is
        written.
        """

    def connectFailed(reason):
        """
        The backend could not be reached.

        @param reason: a short human-readable L{str}.
        @return: L{bytes} to send the client before closing (may be empty).
        """


class IProtocolHandler(IPluginDeclaration):
    """
    A wire protocol the proxy can frame, like a
    L{twisted.internet.protocol.Factory} of L{IProtocolSession}s.
    """

    framesRequests = Attribute(
        """
        C{True} if sessions cut streams into requests and responses, which
        makes request scope the default for the behavior table.
        """
    )

    def buildSession(connection):
        """
        @param connection: the L{IConnection} to frame.
        @return: an L{IProtocolSession}.
        """
