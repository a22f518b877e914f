"""Polling a real IMAPS mailbox (Dovecot on loopback)."""

from __future__ import annotations

import imaplib
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.support.imap_server import PASSWORD, USER, Dovecot
from triage.models import Message, Ticket

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).resolve().parents[3] / "fixtures" / "email"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    # Dovecot's own processes run as unprivileged users, so the directory must be reachable by them
    # (pytest's tmp_path sits under a 0700 directory).
    root = Path(tempfile.mkdtemp(prefix="tierdesk-imap-"))
    root.chmod(0o755)
    try:
        with Dovecot(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _deliver(server: Dovecot, *names: str) -> None:
    context = ssl.create_default_context(cafile=str(server.cert))
    with imaplib.IMAP4_SSL("127.0.0.1", server.port, ssl_context=context) as client:
        client.login(USER, PASSWORD)
        for name in names:
            client.append("INBOX", None, imaplib.Time2Internaldate(time.time()), (CORPUS / name).read_bytes())


def _folder_count(server: Dovecot, folder: str) -> int:
    context = ssl.create_default_context(cafile=str(server.cert))
    with imaplib.IMAP4_SSL("127.0.0.1", server.port, ssl_context=context) as client:
        client.login(USER, PASSWORD)
        status, data = client.select(f'"{folder}"')
        return int(data[0]) if status == "OK" else -1


def _poll(server: Dovecot, monkeypatch: Any, *extra: str) -> None:
    monkeypatch.setenv("TIERDESK_IMAP_PASSWORD", PASSWORD)
    call_command("poll_imap", "--host", "127.0.0.1", "--port", str(server.port), "--user", USER,
                 "--ca-file", str(server.cert), *extra)


def test_new_mail_becomes_tickets_and_is_moved(dovecot: Dovecot, monkeypatch: Any, settings: Any,
                                               tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    _deliver(dovecot, "gmail_reply.eml", "pdf_attachment_rfc2231.eml", "newsletter_alternative.eml")
    _poll(dovecot, monkeypatch, "--move-to", "Processed")
    assert Message.objects.count() == 3 and Ticket.objects.count() == 3
    assert _folder_count(dovecot, "INBOX") == 0 and _folder_count(dovecot, "Processed") == 3
    _poll(dovecot, monkeypatch, "--move-to", "Processed")  # nothing new, nothing twice
    assert Message.objects.count() == 3


def test_without_a_target_folder_mail_is_flagged_read_and_not_taken_twice(dovecot: Dovecot,
                                                                         monkeypatch: Any) -> None:
    _deliver(dovecot, "spanish_reply.eml")
    _poll(dovecot, monkeypatch)
    _poll(dovecot, monkeypatch)
    assert Message.objects.count() == 1 and _folder_count(dovecot, "INBOX") == 1


def test_a_wrong_password_is_a_clear_error(dovecot: Dovecot, monkeypatch: Any) -> None:
    from django.core.management.base import CommandError

    monkeypatch.setenv("TIERDESK_IMAP_PASSWORD", "wrong")
    with pytest.raises(CommandError, match="login refused"):
        call_command("poll_imap", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", USER,
                     "--ca-file", str(dovecot.cert))


def test_an_untrusted_certificate_is_refused(dovecot: Dovecot, monkeypatch: Any) -> None:
    from django.core.management.base import CommandError

    monkeypatch.setenv("TIERDESK_IMAP_PASSWORD", PASSWORD)
    with pytest.raises(CommandError, match="cannot connect"):
        call_command("poll_imap", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", USER)
