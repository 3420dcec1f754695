# -*- test-case-name: txvaurien.test.test_client -*-
"""
A synchronous client for the control API, for test suites and scripts
(standard library only)::

    from txvaurien.client import Client

    client = Client("127.0.0.1", 8080)
    with client.with_behavior("delay", sleep=0.5):
        ...  # every connection through the proxy is slowed down
    # the previous behavior and its options are back

    client.create_proxy("redis", upstream="127.0.0.1:6379")
    client.add_toxic("redis", "latency", attributes={"latency": 100})

Vaurien's methods (C{get_behavior}, C{set_behavior}, C{list_behaviors},
C{get_backend}, C{set_backend}, C{with_behavior}) act on the default proxy,
or on C{proxy} if the client was given one.  The other methods mirror
Toxiproxy's API.  A refused request raises a L{ClientError} subclass
carrying the server's message and status.
"""

from __future__ import annotations

import http.client
import json
import ssl
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import quote, urlencode, urlsplit

from txvaurien._version import __version__

#: The C{User-Agent} the client sends: txvaurien's, with its version.
USER_AGENT = "txvaurien-client/{}".format(__version__)


class ClientError(Exception):
    """
    The control API refused a request, or could not be reached.

    @ivar status: the HTTP status, or L{None} if there was no answer.
    @ivar message: the server's message.
    @ivar body: the decoded JSON body of the answer, if any.
    """

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        Exception.__init__(self, message)
        self.message = message
        self.status = status
        self.body = body

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return "HTTP {}: {}".format(self.status, self.message)


class ConnectionFailed(ClientError):
    """
    The control API could not be reached.
    """


class BadRequest(ClientError):
    """
    400: a value was refused.
    """


class Unauthorized(ClientError):
    """
    401: a missing or wrong token.
    """


class Forbidden(ClientError):
    """
    403: the request was refused (for example a browser user agent).
    """


class NotFound(ClientError):
    """
    404: no such proxy, toxic or path.
    """


class Conflict(ClientError):
    """
    409: the proxy or toxic already exists.
    """


class PayloadTooLarge(ClientError):
    """
    413: the body was too large.
    """


class ServerError(ClientError):
    """
    5xx: the server could not do it (for example a port already in use).
    """


_ERRORS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


def _message(body: Any, text: str) -> str:
    """
    The server's message, from either API's error form.
    """
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return body["error"]
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            parts = []
            for error in errors:
                if isinstance(error, dict):
                    name = error.get("name")
                    description = error.get("description", "")
                    parts.append("{}: {}".format(name, description) if name else description)
            if parts:
                return "; ".join(parts)
    return text.strip() or "no message"


class Client:
    """
    A client of one control server.

    @ivar host: the server's host.
    @ivar port: its port.
    @ivar token: the bearer token sent with every request, or L{None}.
    @ivar proxy: the proxy Vaurien's methods act on (L{None}: the
        default proxy).
    @ivar timeout: seconds to wait for an answer.
    @cvar pageSize: how many connections of a proxy L{connections} asks
        for at a time.
    """

    pageSize = 1000

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        proxy: str | None = None,
        timeout: float = 30.0,
        scheme: str = "http",
        context: ssl.SSLContext | None = None,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError("scheme must be http or https, got {!r}".format(scheme))
        self.host = host
        self.port = port
        self.token = token
        self.proxy = proxy
        self.timeout = timeout
        self.scheme = scheme
        self.context = context

    @classmethod
    def fromURL(cls, url: str, **kwargs: Any) -> "Client":
        """
        A client for C{http://HOST:PORT} or C{https://HOST:PORT}.
        """
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected http://HOST:PORT, got {!r}".format(url))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.hostname, port, scheme=parts.scheme, **kwargs)

    @property
    def url(self) -> str:
        host = "[{}]".format(self.host) if ":" in self.host else self.host
        return "{}://{}:{}".format(self.scheme, host, self.port)

    # Transport

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """
        Send one request.

        @param body: a value sent as JSON, or L{None} for no body.
        @return: C{(status, body)} for any status below 400.
        @raise ClientError: a subclass for the status, with the server's
            message.
        """
        if self.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.context)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, data, headers)
            response = connection.getresponse()
            status, payload = response.status, response.read()
        except (OSError, http.client.HTTPException) as e:
            raise ConnectionFailed("cannot reach {}: {}".format(self.url, e))
        finally:
            connection.close()
        if status >= 400:
            text = payload.decode("utf-8", "replace")
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
            kind = _ERRORS.get(status, ServerError if status >= 500 else ClientError)
            raise kind(_message(decoded, text), status, decoded)
        return status, payload

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        _, payload = self.request(method, path, body)
        if not payload.strip():
            return None
        return json.loads(payload.decode("utf-8"))

    def _vaurien(self, path: str) -> str:
        if self.proxy is None:
            return path
        return "{}?{}".format(path, urlencode({"proxy": self.proxy}))

    # Vaurien's API

    def get_behavior(self) -> str:
        """
        The behavior (or weighted specification) of the proxy.
        """
        return str(self._json("GET", self._vaurien("/behavior"))["behavior"])

    def get_behavior_state(self) -> dict[str, Any]:
        """
        C{{"behavior": SPEC, "options": {...}}}, as C{GET /behavior} gives
        it.
        """
        return dict(self._json("GET", self._vaurien("/behavior")))

    def get_behavior_options(self) -> dict[str, Any]:
        """
        The options of the proxy's behavior (by behavior name for a
        specification of several).
        """
        return dict(self._json("GET", self._vaurien("/behavior"))["options"])

    def set_behavior(self, behavior: str, **options: Any) -> None:
        """
        Set the proxy's behavior and its options; options not given take
        their defaults.  Live connections see it.
        """
        self._json("PUT", self._vaurien("/behavior"), {"name": behavior, "options": options})

    @contextmanager
    def with_behavior(self, behavior: str, **options: Any) -> Iterator[None]:
        """
        A context in which the proxy has C{behavior}; the previous behavior
        and its options are restored on exit, even after an exception.
        """
        state = self.get_behavior_state()
        self.set_behavior(behavior, **options)
        try:
            yield
        finally:
            self._json("PUT", self._vaurien("/behavior"),
                       {"name": state["behavior"], "options": state["options"]})

    def list_behaviors(self) -> list[dict[str, Any]]:
        """
        Every behavior the server knows: C{name}, C{description},
        C{options} (each with C{type}, C{default}, C{description}).
        """
        return list(self._json("GET", "/behaviors")["behaviors"])

    def get_backend(self) -> str:
        return str(self._json("GET", self._vaurien("/backend"))["backend"])

    def get_backend_state(self) -> dict[str, Any]:
        """
        C{{"backend": ENDPOINT}}, as C{GET /backend} gives it, with
        C{"tls": {...}} when the backend leg is TLS (C{server_name},
        C{verify}, C{trust}...).
        """
        return dict(self._json("GET", self._vaurien("/backend")))

    def set_backend(self, backend: str) -> None:
        """
        Point the proxy at another backend (an endpoint string or
        C{host:port}); new connections go there.
        """
        self._json("PUT", self._vaurien("/backend"), {"backend": backend})

    def connections(self, proxy: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """
        Live connections by proxy name, oldest first: all of them, asked
        for L{pageSize} at a time (the server lists at most 1000 per
        request).
        """
        query: dict[str, Any] = {"limit": self.pageSize}
        if proxy is not None:
            query["proxy"] = proxy
        body = self._json("GET", "/connections?" + urlencode(query))
        result = {name: list(listed) for name, listed in body["proxies"].items()}
        more = dict(body.get("more") or {})
        while more:
            name, after = more.popitem()
            page = self._json("GET", "/connections?" + urlencode(
                {"proxy": name, "after": after, "limit": self.pageSize}))
            result[name].extend(page["proxies"].get(name, []))
            if (page.get("more") or {}).get(name) is not None:
                more[name] = page["more"][name]
        return result

    # Toxiproxy's API

    def proxies(self) -> dict[str, dict[str, Any]]:
        """
        Every proxy, by name.
        """
        return dict(self._json("GET", "/proxies"))

    def get_proxy(self, name: str) -> dict[str, Any]:
        return dict(self._json("GET", "/proxies/" + quote(name, safe="")))

    def create_proxy(
        self,
        name: str,
        upstream: str,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
        tls: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """
        Create a proxy; C{listen} with port 0 comes back resolved.

        @param tls: our extension to Toxiproxy's proxy, to make either leg
            TLS: C{{"upstream": {"caFile": "ca.pem"}, "listen": {"certKey":
            "cert.pem", "privateKey": "key.pem"}}} (see the control API's
            documentation); L{None} for plain TCP.
        """
        body: dict[str, Any] = {
            "name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        if tls is not None:
            body["tls"] = tls
        return dict(self._json("POST", "/proxies", body))

    def update_proxy(self, name: str, **fields: Any) -> dict[str, Any]:
        """
        Change a proxy's C{listen}, C{upstream} or C{enabled}.
        """
        return dict(self._json("PATCH", "/proxies/" + quote(name, safe=""), fields))

    def enable_proxy(self, name: str) -> dict[str, Any]:
        return self.update_proxy(name, enabled=True)

    def disable_proxy(self, name: str) -> dict[str, Any]:
        """
        Stop listening and close the proxy's connections; the port is free
        when this returns.
        """
        return self.update_proxy(name, enabled=False)

    def delete_proxy(self, name: str) -> None:
        self.request("DELETE", "/proxies/" + quote(name, safe=""))

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """
        Create or replace proxies from a list (each may list C{toxics}).
        """
        return list(self._json("POST", "/populate", proxies)["proxies"] or [])

    def reset(self) -> None:
        """
        Enable every proxy and remove every toxic.
        """
        self.request("POST", "/reset")

    def version(self) -> str:
        return str(self._json("GET", "/version")["version"])

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self._json("GET", "/proxies/{}/toxics".format(quote(proxy, safe=""))))

    def get_toxic(self, proxy: str, name: str) -> dict[str, Any]:
        return dict(self._json("GET", "/proxies/{}/toxics/{}".format(
            quote(proxy, safe=""), quote(name, safe=""))))

    def add_toxic(
        self,
        proxy: str,
        type: str,
        attributes: dict[str, Any] | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> dict[str, Any]:
        """
        Add a toxic; its default name is C{TYPE_STREAM}.
        """
        body: dict[str, Any] = {
            "type": type, "stream": stream, "toxicity": toxicity,
            "attributes": attributes or {}}
        if name is not None:
            body["name"] = name
        return dict(self._json(
            "POST", "/proxies/{}/toxics".format(quote(proxy, safe="")), body))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: dict[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> dict[str, Any]:
        """
        Change some attributes, or the toxicity, of a toxic.
        """
        body: dict[str, Any] = {"attributes": attributes or {}}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return dict(self._json("PATCH", "/proxies/{}/toxics/{}".format(
            quote(proxy, safe=""), quote(name, safe="")), body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.request("DELETE", "/proxies/{}/toxics/{}".format(
            quote(proxy, safe=""), quote(name, safe="")))

    def metrics(self) -> str:
        """
        The Prometheus metrics, as text.
        """
        _, payload = self.request("GET", "/metrics")
        return payload.decode("utf-8")


__all__ = [
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "Unauthorized",
]
