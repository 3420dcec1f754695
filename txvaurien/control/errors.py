"""
Errors of the control API, with Toxiproxy's messages and status codes.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """
    A request the control API refuses.

    @ivar message: what Toxiproxy's API calls the C{error}.
    @ivar status: the HTTP status code.
    @ivar field: for Vaurien's API, the name of the field at fault, if any.
    @ivar location: for Vaurien's API, where that field is (C{body},
        C{querystring}, C{header}).
    """

    def __init__(
        self, message: str, status: int, field: str | None = None, location: str = "body"
    ) -> None:
        Exception.__init__(self, message)
        self.message = message
        self.status = status
        self.field = field
        self.location = location

    def __repr__(self) -> str:
        return "<ApiError {} {!r}>".format(self.status, self.message)


def badBody(detail: str, field: str | None = None) -> ApiError:
    """
    C{400 bad request body: DETAIL}.
    """
    return ApiError("bad request body: " + detail, 400, field)


def missingField(detail: str) -> ApiError:
    """
    C{400 missing required field: DETAIL}.
    """
    return ApiError("missing required field: " + detail, 400, detail.split(" ")[0])


def proxyNotFound() -> ApiError:
    return ApiError("proxy not found", 404, "proxy")


def proxyExists() -> ApiError:
    return ApiError("proxy already exists", 409, "name")


def toxicNotFound() -> ApiError:
    return ApiError("toxic not found", 404, "toxic")


def toxicExists() -> ApiError:
    return ApiError("toxic already exists", 409, "name")


def invalidStream() -> ApiError:
    return ApiError(
        "stream was invalid, can be either upstream or downstream", 400, "stream"
    )


def invalidToxicType() -> ApiError:
    return ApiError("invalid toxic type", 400, "type")


def typeMismatch(value: Any, struct: str, field: str, goType: str) -> ApiError:
    """
    Go's message for a JSON value of the wrong type, as Toxiproxy relays
    it: C{bad request body: json: cannot unmarshal string into Go struct
    field Proxy.enabled of type bool}.
    """
    from txvaurien.control.jsonio import goTypeName

    return badBody(
        "json: cannot unmarshal {} into Go struct field {}.{} of type {}".format(
            goTypeName(value), struct, field, goType
        ),
        field,
    )


def listenFailed(description: str, error: Exception) -> ApiError:
    """
    C{500} for a port that could not be bound, worded as Go's C{net.Listen}
    words it (C{listen tcp 127.0.0.1:8000: bind: address already in use}).
    """
    socketError = getattr(error, "socketError", None)
    strerror = getattr(socketError, "strerror", None)
    port = getattr(error, "port", None)
    if strerror and port is not None:
        host = getattr(error, "interface", "") or ""
        if ":" in host:
            host = "[{}]".format(host)
        reason = strerror[0].lower() + strerror[1:]
        return ApiError("listen tcp {}:{}: bind: {}".format(host, port, reason), 500)
    return ApiError("listen {}: {}".format(description, error), 500)
