# -*- test-case-name: txvaurien.test.test_tls_certs -*-
"""
Certificates: loading and checking the user's, and minting our own.

A L{CertificateAuthority} signs certificates on the fly: one per server
name the proxy is asked for (SNI), and the deliberately bad ones the TLS
fault behaviors present (expired, not yet valid, for another host).  It
comes from a certificate and key the user gives, or from a directory where
one is generated on first use (L{CertificateAuthority.inDirectory}).

Every error is a L{TLSConfigError} whose message names the file and what
is wrong with it, short enough for one line at start-up or a 400 from the
control API.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from txvaurien import logs

_log = logs.logger("txvaurien.tls")

#: How long minted certificates are valid around "now".
_BACKDATE = datetime.timedelta(hours=1)
_LIFETIME = datetime.timedelta(days=7)


class TLSConfigError(ValueError):
    """
    A certificate, key or trust store given by the user cannot be used.
    """


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def newKey() -> ec.EllipticCurvePrivateKey:
    """
    A new private key (elliptic curve P-256: fast to make and to use).
    """
    return ec.generate_private_key(ec.SECP256R1())


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError("cannot read {} {}: {}".format(what, path, e.strerror or e))


def loadCertificates(path: str, what: str = "certificate file") -> list[x509.Certificate]:
    """
    Every certificate of a PEM file.

    @raise TLSConfigError: if the file is unreadable or holds no PEM
        certificate.
    """
    data = _read(path, what)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise TLSConfigError("{} {} holds no PEM certificate".format(what, path))
    return certificates


def loadKey(path: str) -> Any:
    """
    A private key from a PEM file (unencrypted).

    @raise TLSConfigError: if the file is unreadable or not a PEM key.
    """
    data = _read(path, "private key")
    try:
        return serialization.load_pem_private_key(data, None)
    except (ValueError, TypeError) as e:
        raise TLSConfigError("private key {} is not an unencrypted PEM key: {}".format(
            path, str(e).splitlines()[0] if str(e) else type(e).__name__))


def _publicBytes(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def checkPair(certificate: x509.Certificate, key: Any, certPath: str, keyPath: str) -> None:
    """
    @raise TLSConfigError: if C{key} is not the key of C{certificate}.
    """
    if _publicBytes(certificate.public_key()) != _publicBytes(key.public_key()):
        raise TLSConfigError(
            "private key {} does not match certificate {}".format(keyPath, certPath)
        )


def checkCurrent(certificate: x509.Certificate, path: str, what: str) -> None:
    """
    @raise TLSConfigError: if C{certificate} has expired or is not valid yet.
    """
    now = _now()
    if certificate.not_valid_after_utc < now:
        raise TLSConfigError("{} {} expired on {}".format(
            what, path, certificate.not_valid_after_utc.isoformat()))
    if certificate.not_valid_before_utc > now:
        raise TLSConfigError("{} {} is not valid before {}".format(
            what, path, certificate.not_valid_before_utc.isoformat()))


def loadKeyPair(certPath: str, keyPath: str | None = None) -> tuple[list[x509.Certificate], Any]:
    """
    A certificate chain and its private key, checked.

    @param keyPath: the key's file; L{None} if it is in C{certPath}.
    @return: C{(chain, key)}, the leaf first.
    @raise TLSConfigError: saying which file is wrong and why.
    """
    chain = loadCertificates(certPath, "certificate")
    key = loadKey(keyPath or certPath)
    checkPair(chain[0], key, certPath, keyPath or certPath)
    return chain, key


def checkTrustFile(path: str) -> None:
    """
    @raise TLSConfigError: if C{path} is not a PEM file of certificates.
    """
    loadCertificates(path, "CA file")


def checkTrustDirectory(path: str) -> None:
    """
    @raise TLSConfigError: if C{path} is not a readable directory.
    """
    if not os.path.isdir(path) or not os.access(path, os.R_OK | os.X_OK):
        raise TLSConfigError("CA directory {} is not a readable directory".format(path))


def _name(commonName: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "txvaurien"),
        x509.NameAttribute(NameOID.COMMON_NAME, commonName[:64]),
    ])


def _altName(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class CertificateAuthority:
    """
    A CA that signs server certificates on the fly.

    @ivar certificate: the CA's certificate.
    @ivar key: the CA's private key.
    @ivar leafKey: the key of every certificate this CA mints (one key
        for all: minting is then one signature).
    @ivar path: where the CA's certificate is, if it came from a file.
    """

    def __init__(self, certificate: x509.Certificate, key: Any, path: str | None = None) -> None:
        self.certificate = certificate
        self.key = key
        self.path = path
        self.leafKey = newKey()

    @classmethod
    def generate(cls, commonName: str = "txvaurien CA") -> "CertificateAuthority":
        """
        A new CA, valid from an hour ago for ten years.
        """
        key = newKey()
        now = _now()
        name = _name(commonName)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False,
                    key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, certPath: str, keyPath: str | None = None) -> "CertificateAuthority":
        """
        The CA in C{certPath} (and C{keyPath}), checked: readable, PEM,
        matching, current and allowed to sign certificates.

        @raise TLSConfigError: saying what is wrong.
        """
        chain, key = loadKeyPair(certPath, keyPath)
        certificate = chain[0]
        checkCurrent(certificate, certPath, "CA certificate")
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            isCA = constraints.value.ca
        except x509.ExtensionNotFound:
            isCA = False
        if not isCA:
            raise TLSConfigError(
                "CA certificate {} is not a CA (no basicConstraints CA:TRUE)".format(certPath))
        return cls(certificate, key, certPath)

    @classmethod
    def inDirectory(cls, directory: str) -> "CertificateAuthority":
        """
        The CA kept in C{directory} (C{ca.pem} and C{ca.key}), generated
        there on first use; its path is logged either way.

        @raise TLSConfigError: if the directory cannot be made or written,
            or holds an unusable CA.
        """
        certPath = os.path.join(directory, "ca.pem")
        keyPath = os.path.join(directory, "ca.key")
        if os.path.exists(certPath):
            ca = cls.load(certPath, keyPath)
            _log.info("TLS: using the CA in {path}", path=certPath)
            return ca
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            ca = cls.generate()
            keyBytes = ca.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd = os.open(keyPath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(keyBytes)
            with open(certPath, "wb") as f:
                f.write(ca.certificatePEM())
        except OSError as e:
            raise TLSConfigError("cannot create a CA in {}: {}".format(
                directory, e.strerror or e))
        ca.path = certPath
        _log.warn(
            "TLS: generated a new CA in {path}; clients must trust it to accept "
            "the certificates the proxy mints",
            path=certPath,
        )
        return ca

    def certificatePEM(self) -> bytes:
        """
        The CA's certificate in PEM, for clients to trust.
        """
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def mint(
        self,
        names: Sequence[str],
        notBefore: datetime.datetime | None = None,
        notAfter: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """
        A server certificate for C{names} (DNS names or IP addresses; the
        first is also the common name), signed by this CA with
        L{leafKey}.

        @param notBefore: start of validity (default: an hour ago).
        @param notAfter: end of validity (default: in a week).
        """
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.certificate.subject)
            .public_key(self.leafKey.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(notBefore or now - _BACKDATE)
            .not_valid_after(notAfter or now + _LIFETIME)
            .add_extension(x509.SubjectAlternativeName([_altName(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        return builder.sign(self.key, hashes.SHA256())


def selfSigned(names: Sequence[str], key: Any) -> x509.Certificate:
    """
    A certificate for C{names} signed by its own key C{key} (no CA).
    """
    now = _now()
    name = _name(names[0])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.SubjectAlternativeName([_altName(n) for n in names]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )


def pem(certificate: x509.Certificate) -> bytes:
    """
    A certificate in PEM.
    """
    return certificate.public_bytes(serialization.Encoding.PEM)


def keyPEM(key: Any) -> bytes:
    """
    A private key in unencrypted PEM (PKCS#8).
    """
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


__all__ = [
    "CertificateAuthority",
    "TLSConfigError",
    "checkCurrent",
    "checkPair",
    "checkTrustDirectory",
    "checkTrustFile",
    "keyPEM",
    "loadCertificates",
    "loadKey",
    "loadKeyPair",
    "newKey",
    "pem",
    "selfSigned",
]
