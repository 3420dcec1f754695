# -*- test-case-name: txvaurien.test.test_tls_faults -*-
"""
The C{tls_certificate} behavior: the client is shown a bad certificate.
"""

from __future__ import annotations

from typing import Any

from txvaurien.behaviors.base import Behavior
from txvaurien.frames import DOWNSTREAM
from txvaurien.interfaces import IConnection
from txvaurien.options import Choice


class TLSCertificate(Behavior):
    """
    Present a bad certificate, minted on the fly, to a client of a TLS
    listener (C{--proxy ssl:...}): C{expired}, C{not_yet_valid},
    C{wrong_host} (for C{wrong_name} instead of the name asked for),
    C{self_signed} or C{untrusted_ca} (signed by a CA nobody trusts).

    A client that verifies certificates must refuse the connection, with
    the matching error (curl exits with 60; Python raises
    C{ssl.SSLCertVerificationError}: "certificate has expired", "Hostname
    mismatch", "self-signed certificate"...).  A client that goes on
    anyway reaches the backend as usual.

    The certificates are signed by the listener's minting CA (C{caCert} or
    C{caDir}), so that a client trusting it sees only the intended
    problem; without one, by a CA nobody trusts.  Acts under connection
    scope, on TLS listeners only; the direction is irrelevant.

    Example::

        twistd -n vaurien --proxy ssl:8443:caDir=ca --backend 127.0.0.1:8080 \\
            --behavior 50:tls_certificate --behavior-tls-certificate-kind expired
    """

    name = "tls_certificate"
    defaultDirection = DOWNSTREAM
    options = {
        "kind": (
            "What is wrong with the certificate: expired, not_yet_valid, "
            "wrong_host, self_signed or untrusted_ca",
            Choice("expired", "not_yet_valid", "wrong_host", "self_signed", "untrusted_ca"),
            "expired",
        ),
        "wrong_name": (
            "The name a wrong_host certificate is made for",
            str,
            "wrong.host.invalid",
        ),
    }

    def connectionMade(self, connection: IConnection) -> Any:
        from txvaurien.tls.faults import CertificateFault, clientTLS
        from txvaurien.tls.server import setFault

        found = clientTLS(connection, self.name)
        if found is not None:
            setFault(found[0], CertificateFault(self.settings["kind"],
                                                self.settings["wrong_name"]))
        return None


__all__ = ["TLSCertificate"]
