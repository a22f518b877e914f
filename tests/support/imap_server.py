"""A real IMAPS server for tests: Debian's Dovecot, run in the foreground with its own config and a
self-signed certificate, on a free loopback port."""

from __future__ import annotations

import imaplib
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

USER, PASSWORD = "support", "imap-test-pass"


class Dovecot:
    def __init__(self, root: Path) -> None:
        self.root = root
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.cert = root / "cert.pem"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dovecot:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        (self.root / "run").mkdir()
        home = self.root / "home"
        home.mkdir()
        home.chmod(0o777)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(self.root / "key.pem"), "-out", str(self.cert)],
                       check=True, capture_output=True)
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        config = self.root / "dovecot.conf"
        config.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/run
log_path = {self.root}/dovecot.log
ssl = required
ssl_cert = <{self.cert}
ssl_key = <{self.root}/key.pem
mail_location = maildir:{home}/%u/Maildir
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={home}/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
""")
        self.proc = subprocess.Popen([binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # Ready when a real login works: the listener opens before the auth process is up.
        context = ssl.create_default_context(cafile=str(self.cert))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=2) as client:
                    client.login(USER, PASSWORD)
                    if client.select("INBOX")[0] == "OK":
                        return self
            except (OSError, imaplib.IMAP4.error):
                time.sleep(0.2)
        log = (self.root / "dovecot.log").read_text() if (self.root / "dovecot.log").exists() else ""
        raise RuntimeError(f"dovecot did not start: {log[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
