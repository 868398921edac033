"""A real rsyslog for tests and benchmarks: Debian's ``rsyslogd`` started in the foreground
(``-n``) with its own configuration, work directory and pid file, listening on free loopback ports:

- ``udp``: imudp;
- ``tcp``: imtcp, plain (octet-counting and LF framing, as rsyslog detects them);
- ``tls``: imtcp with the gtls stream driver (``StreamDriver.Mode=1``), ``anon`` or ``x509/certvalid``
  (then the client must present a certificate the test CA signed).

Each input writes what it receives to its own file (``udp.log``, ``tcp.log``, ``tls.log``), one JSON
line per message holding the raw message (``%rawmsg%``, control characters kept), so that a test
reads back exactly the bytes the sender framed. The test CA and certificates are made with
``cryptography`` (:func:`make_pki`). ``stop()`` / ``start()`` again keep the ports: a test can take
the receiver down and bring it back.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)


def gtls_available() -> bool:
    """Whether the gtls stream driver (Debian package rsyslog-gnutls) is installed."""
    return Path("/usr/lib/rsyslog/lmnsd_gtls.so").exists() or any(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so"))


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Pki:
    ca: Path
    """The test CA's certificate (PEM)."""
    cert: Path
    key: Path
    """The server's certificate (for ``localhost`` and 127.0.0.1) and key."""
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed nothing here: trusting it alone must fail verification."""


def make_pki(directory: Path) -> Pki:
    """A test CA, a server certificate for localhost/127.0.0.1, a client certificate, and an unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def leaf(cn: str, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256()), key

    def write(path: Path, cert: x509.Certificate | None = None, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
        if cert is not None:
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return path

    ca_cert, ca_key = ca("tidings test CA")
    server, server_key = leaf("localhost", ca_cert, ca_key, server=True)
    client, client_key = leaf("tidings client", ca_cert, ca_key, server=False)
    other, _ = ca("some other CA")
    return Pki(
        ca=write(directory / "ca.pem", ca_cert),
        cert=write(directory / "server.pem", server),
        key=write(directory / "server.key", key=server_key),
        client_cert=write(directory / "client.pem", client),
        client_key=write(directory / "client.key", key=client_key),
        other_ca=write(directory / "other-ca.pem", other),
    )


class Rsyslog:
    """One rsyslogd in ``directory``; ``start()`` waits until every port listens."""

    def __init__(self, directory: Path, *, auth: str = "anon", pki: Pki | None = None) -> None:
        if RSYSLOGD is None:
            raise RuntimeError("rsyslogd is not installed (apt-get install -y rsyslog rsyslog-gnutls)")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "work").mkdir(exist_ok=True)
        self.pki = pki or make_pki(self.dir / "pki")
        self.auth = auth
        self.udp = _free_port(socket.SOCK_DGRAM)
        self.tcp = _free_port(socket.SOCK_STREAM)
        self.tls = _free_port(socket.SOCK_STREAM)
        self.conf = self.dir / "rsyslog.conf"
        self.pidfile = self.dir / "rsyslogd.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf.write_text(self._config())

    def _config(self) -> str:
        d, p = self.dir, self.pki
        auth = 'StreamDriver.AuthMode="x509/certvalid"' if self.auth == "x509" else 'StreamDriver.AuthMode="anon"'
        outputs = "\n".join(
            f'ruleset(name="{n}") {{ action(type="omfile" file="{d / (n + ".log")}" template="raw") }}'
            for n in ("udp", "tcp", "tls")
        )
        return f"""
global(workDirectory="{d / 'work'}" maxMessageSize="64k"
       parser.escapeControlCharactersOnReceive="off"
       defaultNetstreamDriverCAFile="{p.ca}"
       defaultNetstreamDriverCertFile="{p.cert}"
       defaultNetstreamDriverKeyFile="{p.key}")
template(name="raw" type="list") {{
  constant(value="{{\\"raw\\":\\"")
  property(name="rawmsg" format="json")
  constant(value="\\"}}\\n")
}}
module(load="imudp")
module(load="imtcp" maxSessions="1000")
{outputs}
input(type="imudp" address="127.0.0.1" port="{self.udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{self.tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{self.tls}" ruleset="tls"
      StreamDriver.Name="gtls" StreamDriver.Mode="1" {auth})
"""

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None, "already running"
        self.pidfile.unlink(missing_ok=True)
        log = (self.dir / "rsyslogd.out").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own configuration
            [str(RSYSLOGD), "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not (self._listening(self.tcp) and self._listening(self.tls) and self._udp_bound()):
            if self.proc.poll() is not None:
                out = (self.dir / "rsyslogd.out").read_text(errors="replace")
                self.proc = None
                raise RuntimeError(f"rsyslogd exited: {out[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("rsyslogd did not listen in time")
            time.sleep(0.02)

    def _listening(self, port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def _udp_bound(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", self.udp))
            except OSError:
                return True
            return False

    def stop(self) -> None:
        """Stop it (SIGTERM, as a service manager does) and wait until it has exited."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def received(self, name: str) -> list[str]:
        """The raw messages input ``name`` (udp, tcp, tls) wrote so far, in arrival order."""
        path = self.dir / f"{name}.log"
        if not path.exists():
            return []
        out: list[str] = []
        for line in path.read_bytes().split(b"\n"):
            if line.strip():
                try:
                    out.append(json.loads(line)["raw"])
                except ValueError:  # a line being written right now
                    break
        return out

    def output(self) -> str:
        path = self.dir / "rsyslogd.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Rsyslog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def available() -> bool:
    return RSYSLOGD is not None and os.access(RSYSLOGD, os.X_OK)
