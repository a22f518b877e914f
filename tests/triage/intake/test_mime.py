"""Inbound mail parsing over the fixtures/email corpus, written for Tierdesk. Pure: no database, no network."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from triage.intake.mime import from_parts, html_to_text, parse_mime, sanitize_html, strip_reply
from triage.intake.types import Attachment, InboundEmail, InboundError

# Hypothesis caches what it learns in ./.hypothesis, which is not ignored by git; keep the checkout clean.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "tierdesk-hypothesis"))

CORPUS = Path(__file__).resolve().parents[3] / "fixtures" / "email"
CORPUS_FILES = sorted(CORPUS.glob("*.eml"))  # top level only: providers/ holds another suite's fixtures


def load(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


@dataclass(frozen=True)
class Expected:
    from_email: str
    subject: str
    message_id: str
    reply_text: str
    attachments: tuple[str, ...] = ()
    auto_submitted: bool = False
    is_bounce: bool = False
    bounced_message_id: str | None = None


EXPECTED: dict[str, Expected] = {
    "gmail_reply.eml": Expected(
        "ana.lima@example.org", "Re: Where is my order #20417?",
        "CAK7wq=Vd3hG+N1q2mZpQe8x_0Yt4kR5fW9sLb1cJ@mail.gmail.com",
        'Hi,\n\nThe tracking link still shows "label created" four days after you said the\n'
        "parcel left the warehouse. Could you check with the carrier?\n\nThanks,\nAna",
    ),
    "outlook_desktop_reply.eml": Expected(
        "bob.stone@example.org", "RE: Invoice 1043 has the wrong VAT number",
        "DM6PR11MB43215C0FFEE2A7D1B3E4F5A6B7C8D9E0A1@DM6PR11MB4321.namprd11.prod.outlook.com",
        "Hi,\n\nI tried the steps from your last email but the invoice still shows our old VAT number "
        "(GB123456789). Can you re-issue it?\n\nRegards,\nBob Stone\nFinance | Example Org",
    ),
    "outlook_web_reply.eml": Expected(
        "henry.ito@example.com", "Re: Cannot export report",
        "AM9PR04MB81234A5B6C7D8E9F0A1B2C3D4E5F6A7B8C9D0@AM9PR04MB8123.eurprd04.prod.outlook.com",
        'Hello,\n\nThe "Export to CSV" button is greyed out for me on the Reports page, both in Edge and '
        "Firefox. I am an admin on the account.\n\nHenry Ito",
    ),
    "outlook_original_message_cp1252.eml": Expected(
        "sam.carter@example.com", "RE: Getting started", "003401db8d2b$1a2b3c40$4e5f6a70$@example.com",
        "Hi there,\n\nI\u2019ve attached nothing this time \u2013 just wanted to say the \u201cquick start\u201d"
        " guide link is broken.\n\nRegards\nSam Carter",
    ),
    "apple_mail_reply.eml": Expected(
        "frank.okafor@example.com", "Re: Replacement kettle", "7E3A1C9B-4D2F-4B8A-9C61-2F0E8D5A1B34@example.com",
        "It arrived today, thank you! The box was a bit dented but everything inside is fine.",
    ),
    "thunderbird_reply.eml": Expected(
        "grace.kim@example.org", "Re: Calendar sync stopped", "1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b@example.org",
        'Hi,\n\nhere is the log output you asked for. The sync fails every night at 02:00 with "token expired", '
        "even right after I reconnect the account.\n\n2025-03-05T02:00:03Z ERROR sync: token expired "
        "(account 7781)\n\nGrace",
    ),
    "newsletter_alternative.eml": Expected(
        "news@mail.example.com", "Example Cloud Weekly: scheduled exports are here",
        "20250311140000.8f3k2.news@mail.example.com",
        "Example Cloud Weekly - March 2025\n\nNew: scheduled exports\nExport any report on a schedule and get "
        "it by email.\nRead more: https://www.example.com/blog/scheduled-exports\n\n"
        "Unsubscribe: https://mail.example.com/u/8f3k2",
        auto_submitted=True,
    ),
    "mailing_list_post.eml": Expected(
        "ravi.sharma@example.org", "[users] Anyone else seeing slow dashboard loads?",
        "5f4e3d2c1b0a@mail.example.org",
        "Since this morning our dashboard takes 30+ seconds to load. Is it just us?\n\nRavi",
        auto_submitted=True,
    ),
    "html_only_script.eml": Expected(
        "ivan.petrov@example.com", "Charged twice for order 55120", "20250312190544.4711.ivan@example.com",
        "Hello support team,\n\nMy account ivan.petrov@example.com was charged twice for order 55120.\n"
        "Please refund one of the payments.\n\nView my statement or "
        "[the bank's copy](https://bank.example.com/statement/55120).\n\n"
        "* Charge 1: 49.00 EUR\n* Charge 2: 49.00 EUR\n\nIvan",
    ),
    "pdf_attachment_rfc2231.eml": Expected(
        "julia.novak@example.org", "Rechnung für März – bitte prüfen",
        "a81c6e2f-73d4-4f0b-9a55-0b7c3e9d2f61@example.org",
        "Hallo,\n\nanbei die Rechnung für März. Der Betrag ist doppelt so hoch wie im Februar, obwohl wir "
        "nichts geändert haben.\n\nViele Grüße\nJulia Novák",
        attachments=("Rechnung_März_2025.pdf",),
    ),
    "inline_cid_image.eml": Expected(
        "kofi.mensah@example.com", "Checkout error on every card",
        "CAJp2Lk4uQ8vZ+3mC7n0eR1sT6yWb9dF2hG5jK8lM@mail.gmail.com",
        "Hi,\n\nthe checkout page shows this error (screenshot below):\n\n[image: checkout-error.png]\n\n"
        "It happens with every card we try.\n\nKofi",
        attachments=("checkout-error.png",),
    ),
    "iso8859_1_qp_french.eml": Expected(
        "chloe.martin@example.org", "Re : Remboursement non reçu", "000001db91a2$4c3d2e10$e4b78a30$@example.org",
        "Bonjour,\n\nJe n'ai toujours pas reçu le remboursement de ma commande n° 31877. Pouvez-vous "
        "vérifier ?\n\nCordialement,\nChloé Martin",
    ),
    "iso2022jp_japanese.eml": Expected(
        "hanako.tanaka@example.com", "Re: 商品が届きません", "20250311102000.A1B2C3@example.com",
        "お世話になっております。\n\n注文番号 60231 の商品がまだ届いていません。\n配送状況を確認していただけますか。\n\n田中 花子",
    ),
    "shift_jis_windows_chars.eml": Expected(
        "ken.sato@example.com", "請求金額について", "202503121542.KS77@example.com",
        "サポートご担当者様\n\n請求書の金額が違います。\n① 基本料金\n② 追加オプション（解約済み）\n②は先月解約しました。\n\n佐藤 健",
    ),
    "spanish_reply.eml": Expected(
        "elena.garcia@example.com", "Re: No puedo iniciar sesión",
        "CAM9xT2pQ4wR6yU8iO0pA2sD4fG6hJ8kL0zX2cV4bN6m@mail.gmail.com",
        'Hola,\n\nSigo sin poder iniciar sesión en la aplicación. Me aparece "contraseña incorrecta" aunque '
        "la cambié ayer.\n\nSaludos,\nElena",
    ),
    "forwarded_gmail.eml": Expected(
        "priya.nair@example.com", "Fwd: Your order 58213 has been dispatched",
        "CAFwd8xQ2kP9rT4vN7mB3sL6hJ1gF5dC8aZ0yX2wE4uR6tY@mail.gmail.com",
        'Hi, I got the email below a week ago but the parcel never came. The tracking\nlink says "delivered" '
        "but nothing was left at my door. Can you help?\n\nPriya",
    ),
    "german_reply.eml": Expected(
        "daniel.weber@example.org", "Re: Lieferadresse ändern",
        "CAB3nR7tY9uI1oP3aS5dF7gH9jK1lZ3xC5vB7nM9qW1e@mail.gmail.com",
        "Hallo,\n\ndie neue Lieferadresse wird im Kundenkonto immer noch nicht angezeigt. Ich habe es in "
        "Chrome und Safari versucht.\n\nMit freundlichen Grüßen\nDaniel Weber",
    ),
    "out_of_office_autoreply.eml": Expected(
        "maria.rossi@example.org", "Out of office Re: Your ticket #4521 has been updated",
        "CAN4kW8qE1rT3yU5iO7pA9sD1fG3hJ5kL7zX9cV1bN3m@mail.gmail.com",
        "I am out of the office until 17 March with limited access to email.\n"
        "For urgent matters please contact office@example.org.\n\nMaria",
        auto_submitted=True,
    ),
    "outlook_autoreply.eml": Expected(
        "tom.becker@example.com", "Automatic reply: Your ticket #4530 has been updated",
        "b6d1e9c2a8f04e7db3c5a1f2e0d9c8b7@EXCH01.corp.example.com",
        "Thank you for your email. I am on parental leave until 1 April and will not read my messages. "
        "Please write to it-helpdesk@example.com instead.",
        auto_submitted=True,
    ),
    "dsn_bounce.eml": Expected(
        "mailer-daemon@mx.example.net", "Undelivered Mail Returned to Sender",
        "20250310101502.4Z7xQk2bL9z9sVd@mx.example.net",
        "This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you that your message "
        "could not\nbe delivered to one or more recipients. It's attached below.\n\n"
        "<nobody.here@example.org>: host mx.example.org[192.0.2.25] said: 550 5.1.1\n"
        "<nobody.here@example.org>: Recipient address rejected: User unknown in\n"
        "virtual mailbox table (in reply to RCPT TO command)",
        attachments=("delivery-status.txt", "message.eml"),
        auto_submitted=True, is_bounce=True, bounced_message_id="tierdesk.42.abc123@tierdesk.localhost",
    ),
    "qmail_bounce.eml": Expected(
        "mailer-daemon@mail.example.net", "failure notice", "20250310112044.31337.qmail@mail.example.net",
        "Hi. This is the qmail-send program at mail.example.net.\nI'm afraid I wasn't able to deliver your "
        "message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work "
        "out.\n\n<old.customer@example.net>:\nuser is over quota",
        auto_submitted=True, is_bounce=True, bounced_message_id="tierdesk.43.def456@tierdesk.localhost",
    ),
    "no_message_id.eml": Expected(
        "noreply@example.com", "Contact form: question about bulk pricing",
        "generated-94eedc924ec4b735fb4f340284ea1e594c26e7a4246da89abcee4e54b569d0da@tierdesk.invalid",
        "Name: Liam O'Brien\nEmail: liam.obrien@example.org\nCompany: Example Org\n\nMessage:\n"
        "Do you offer a discount for 50 or more seats?",
    ),
    "undeclared_charset.eml": Expected(
        "zoe.muller@example.org", "Bestellung #7781 – Lieferzeit?", "7781.zoe@example.org",
        "Grüße aus Köln! Wann kommt meine Bestellung #7781? Der Status sagt seit Montag „in Bearbeitung“.\n\nZoë",
    ),
}


def test_every_corpus_file_has_an_expectation() -> None:
    assert len(CORPUS_FILES) >= 15
    assert sorted(path.name for path in CORPUS_FILES) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_corpus_mail_parses_to_what_its_sender_meant(name: str) -> None:
    expected = EXPECTED[name]
    email = parse_mime(load(name))

    assert email.from_email == expected.from_email
    assert email.subject == expected.subject
    assert email.message_id == expected.message_id
    assert email.reply_text == expected.reply_text
    assert tuple(a.filename for a in email.attachments) == expected.attachments
    assert email.auto_submitted is expected.auto_submitted
    assert email.is_bounce is expected.is_bounce
    assert email.bounced_message_id == expected.bounced_message_id
    assert email.raw == load(name)
    assert email.date is None or email.date.tzinfo is not None
    assert "\x00" not in email.text and "\ufffd" not in email.text
    assert email.to and all(address == address.lower() for address in email.to)
    assert "<" not in email.message_id and ">" not in email.message_id
    assert all(name == name.lower() for name in email.headers)


def test_display_names_and_addresses_are_decoded_and_lower_cased() -> None:
    julia = parse_mime(load("pdf_attachment_rfc2231.eml"))
    assert (julia.from_name, julia.from_email) == ("Julia Novák", "julia.novak@example.org")
    assert julia.to == ("support@example.com",)
    assert julia.cc == ("accounts@example.org", "marek.dvorak@example.org")

    assert parse_mime(load("iso2022jp_japanese.eml")).from_name == "田中 花子"
    assert parse_mime(load("html_only_script.eml")).from_name == "Petrov, Ivan"
    assert parse_mime(load("outlook_desktop_reply.eml")).from_email == "bob.stone@example.org"


def test_thread_ids_come_without_angle_brackets_oldest_first() -> None:
    email = parse_mime(load("thunderbird_reply.eml"))
    assert email.in_reply_to == "tierdesk.45.d00d11@tierdesk.localhost"
    assert email.references == (
        "9c8b7a6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d@example.org",
        "tierdesk.45.d00d11@tierdesk.localhost",
        "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e@example.org",
    )


def test_references_survive_junk_between_the_ids() -> None:
    raw = (
        b"From: a@example.org\nSubject: x\nIn-Reply-To: <one@example.org> (Ana's message of Mon)\n"
        b"References: junk <one@example.org>, \"quoted\" <two@example.org>\n  <three\n @example.org> trailing\n\nhi\n"
    )
    email = parse_mime(raw)
    assert email.in_reply_to == "one@example.org"
    assert email.references == ("one@example.org", "two@example.org", "three@example.org")


def test_a_missing_message_id_is_derived_stably_from_the_raw_bytes() -> None:
    raw = load("no_message_id.eml")
    first, again = parse_mime(raw), parse_mime(raw)
    changed = parse_mime(raw.replace(b"50 or more", b"60 or more"))
    assert first.message_id == again.message_id
    assert first.message_id.startswith("generated-") and first.message_id.endswith("@tierdesk.invalid")
    assert changed.message_id != first.message_id


def test_dates_are_timezone_aware_or_none() -> None:
    assert parse_mime(load("gmail_reply.eml")).date == datetime(2025, 3, 7, 16, 40, 58, tzinfo=UTC)
    assert parse_mime(load("no_message_id.eml")).date is None
    minus_zero = parse_mime(b"From: a@example.org\nDate: Mon, 3 Mar 2025 10:00:00 -0000\n\nhi\n").date
    assert minus_zero == datetime(2025, 3, 3, 10, tzinfo=UTC)
    assert parse_mime(b"From: a@example.org\nDate: the day after tomorrow\n\nhi\n").date is None


def test_windows_1252_bytes_under_a_latin_1_label_read_as_curly_quotes() -> None:
    text = parse_mime(load("outlook_original_message_cp1252.eml")).text
    assert "I\u2019ve attached nothing this time \u2013 just" in text


def test_a_wrong_charset_label_does_not_garble_utf8() -> None:
    raw = "From: a@example.org\nContent-Type: text/plain; charset=x-unknown\n\nGrüße, Zoë\n".encode()
    assert parse_mime(raw).text == "Grüße, Zoë"
    raw = b"From: a@example.org\nContent-Type: text/plain; charset=us-ascii\n\nCaf\xe9 cr\xe8me\n"
    assert parse_mime(raw).text == "Café crème"


def test_format_flowed_paragraphs_are_joined() -> None:
    text = parse_mime(load("thunderbird_reply.eml")).text
    assert "at 02:00 with \"token expired\"" in text
    assert "> could you send us the last lines of the sync log? You find it under Settings > Diagnostics." in text


def test_html_only_mail_gets_text_and_sanitised_html() -> None:
    email = parse_mime(load("html_only_script.eml"))
    assert "charged twice for order 55120" in email.text
    assert "document.cookie" not in email.text
    for dangerous in ("<script", "onerror", "onload", "javascript:", "<iframe", "<form", "<style", "evil.example.net"):
        assert dangerous not in email.html
    assert '<a href="https://bank.example.com/statement/55120" target="_blank" rel="noopener noreferrer">' in email.html


def test_multipart_alternative_prefers_the_plain_part_and_keeps_the_html() -> None:
    email = parse_mime(load("newsletter_alternative.eml"))
    assert email.text.startswith("Example Cloud Weekly - March 2025")
    assert "<h1>Example Cloud Weekly – March 2025</h1>" in email.html
    assert "8f3k2.gif" not in email.html  # the tracking pixel


def test_inline_cid_image_is_marked_inline_and_stays_referenced_in_the_html() -> None:
    email = parse_mime(load("inline_cid_image.eml"))
    (image,) = email.attachments
    assert (image.content_type, image.content_id, image.inline) == ("image/png", "ii_m7x2k9a10", True)
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert 'src="cid:ii_m7x2k9a10"' in email.html


def test_pdf_attachment_keeps_its_rfc2231_name_and_bytes() -> None:
    (pdf,) = parse_mime(load("pdf_attachment_rfc2231.eml")).attachments
    assert (pdf.filename, pdf.content_type, pdf.inline, pdf.content_id) == (
        "Rechnung_März_2025.pdf", "application/pdf", False, None
    )
    assert pdf.content.startswith(b"%PDF-1.4") and pdf.content.rstrip().endswith(b"%%EOF")


def test_an_attachment_over_the_size_limit_is_dropped_and_counted() -> None:
    email = parse_mime(load("pdf_attachment_rfc2231.eml"), max_attachment_bytes=100)
    assert email.attachments == ()
    assert email.headers["x-tierdesk-dropped-attachments"] == "1"
    assert email.headers["x-tierdesk-dropped-attachment-names"] == "Rechnung_März_2025.pdf"
    assert email.reply_text.startswith("Hallo,")


def _with_attachments(count: int, size: int = 10) -> bytes:
    message = EmailMessage()
    message["From"] = "Nina Berg <nina.berg@example.org>"
    message["To"] = "support@example.com"
    message["Subject"] = "Photos of the damage"
    message.set_content("Photos attached.\n")
    for index in range(count):
        message.add_attachment(bytes([index]) * size, maintype="image", subtype="jpeg", filename=f"photo{index}.jpg")
    return message.as_bytes()


def test_attachments_beyond_the_count_limit_are_dropped_not_fatal() -> None:
    email = parse_mime(_with_attachments(5), max_attachments=2)
    assert [a.filename for a in email.attachments] == ["photo0.jpg", "photo1.jpg"]
    assert email.headers["x-tierdesk-dropped-attachments"] == "3"
    assert email.headers["x-tierdesk-dropped-attachment-names"] == "photo2.jpg, photo3.jpg, photo4.jpg"


def test_a_large_base64_attachment_is_dropped_without_being_decoded() -> None:
    email = parse_mime(_with_attachments(1, size=300_000), max_attachment_bytes=200_000)
    assert email.attachments == ()
    assert email.headers["x-tierdesk-dropped-attachments"] == "1"


def test_a_sender_cannot_set_tierdesk_headers() -> None:
    raw = b"From: a@example.org\nX-Tierdesk-Dropped-Attachments: 99\nX-Tierdesk-Noise: none\n\nhello\n"
    email = parse_mime(raw)
    assert not any(name.startswith("x-tierdesk-") for name in email.headers)


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01", b"just some text\n"])
def test_input_that_is_not_an_email_is_a_permanent_error(raw: bytes) -> None:
    with pytest.raises(InboundError) as caught:
        parse_mime(raw)
    assert caught.value.permanent is True
    assert caught.value.message


def test_null_sender_has_an_empty_from_email_and_is_noise() -> None:
    email = parse_mime(b"From: <>\nTo: support@example.com\nSubject: Delivery report\n\nsomething\n")
    assert email.from_email == ""
    assert email.auto_submitted is True


def test_people_writing_in_are_not_noise() -> None:
    for name in ("gmail_reply.eml", "outlook_desktop_reply.eml", "apple_mail_reply.eml", "spanish_reply.eml"):
        email = parse_mime(load(name))
        assert email.auto_submitted is False, name
        assert "x-tierdesk-noise" not in email.headers


def test_noise_says_why_and_keeps_the_headers_it_used() -> None:
    autoreply = parse_mime(load("outlook_autoreply.eml"))
    assert autoreply.headers["x-auto-response-suppress"] == "All"
    assert "x-auto-response-suppress" in autoreply.headers["x-tierdesk-noise"]

    list_post = parse_mime(load("mailing_list_post.eml"))
    assert list_post.headers["list-id"] == "Example Cloud users <users.lists.example.org>"
    assert list_post.headers["precedence"] == "list"

    ooo = parse_mime(load("out_of_office_autoreply.eml"))
    assert ooo.headers["auto-submitted"] == "auto-replied"
    assert ooo.headers["x-tierdesk-noise"].startswith("auto-submitted:auto-replied")


def test_auto_submitted_no_is_a_person() -> None:
    email = parse_mime(b"From: a@example.org\nAuto-Submitted: no\nSubject: hi\n\nhello\n")
    assert email.auto_submitted is False


def test_a_dsn_bounce_names_the_reply_that_bounced() -> None:
    email = parse_mime(load("dsn_bounce.eml"))
    assert email.is_bounce and email.auto_submitted
    assert email.bounced_message_id == "tierdesk.42.abc123@tierdesk.localhost"
    assert email.headers["x-tierdesk-dsn-action"] == "failed"
    assert email.headers["content-type"].startswith("multipart/report; report-type=delivery-status")
    assert email.headers["return-path"] == "<>"


def test_a_delay_notice_is_not_a_bounce() -> None:
    email = parse_mime(load("dsn_bounce.eml").replace(b"Action: failed", b"Action: delayed"))
    assert email.is_bounce is False
    assert email.auto_submitted is True
    assert email.headers["x-tierdesk-dsn-action"] == "delayed"


def test_a_read_receipt_is_noise_but_not_a_bounce() -> None:
    raw = (
        b"From: Ana <ana@example.org>\nSubject: Read: Your ticket\n"
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nYour message was read.\n--b--\n"
    )
    email = parse_mime(raw)
    assert (email.is_bounce, email.auto_submitted) == (False, True)


# --------------------------------------------------------------------------------------- sanitiser


def test_sanitiser_removes_scripts_handlers_and_javascript_urls() -> None:
    dirty = (
        '<p onclick="steal()">Hi<script>alert(1)</script><style>p{}</style></p>'
        '<img src="x" onerror="alert(2)"><a href="javascript:alert(3)">x</a>'
        '<a href="JaVaScRiPt:alert(4)">y</a><svg onload="alert(5)"><circle/></svg><iframe src="https://e.example"></iframe>'
    )
    clean = sanitize_html(dirty)
    for dangerous in ("script", "alert", "onclick", "onerror", "onload", "javascript", "iframe", "svg", "style"):
        assert dangerous not in clean.lower()
    assert clean.startswith("<p>Hi</p>")


def test_sanitiser_keeps_cid_images_and_drops_remote_ones() -> None:
    clean = sanitize_html('<img src="cid:logo@example.com" alt="Logo"><img src="https://t.example.com/p.gif" alt="">')
    assert '<img src="cid:logo@example.com" alt="Logo">' in clean
    assert "t.example.com" not in clean


def test_sanitiser_opens_links_safely_and_drops_relative_ones() -> None:
    clean = sanitize_html('<a href="https://example.com/help">help</a> <a href="/account">account</a>')
    assert '<a href="https://example.com/help" target="_blank" rel="noopener noreferrer">help</a>' in clean
    assert "/account" not in clean


# ------------------------------------------------------------------------------------- html to text


def test_html_to_text_keeps_paragraphs_breaks_lists_and_links() -> None:
    text = html_to_text(
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<p>Hi Ana,</p><p>Line one<br>line two</p><ul><li>first</li><li>second</li></ul>"
        '<p>See <a href="https://example.com/x">the guide</a> or https://example.com/y '
        '<a href="https://example.com/y">https://example.com/y</a> or <a href="mailto:help@example.com">'
        "help@example.com</a>.</p><table><tr><td>Item</td><td>Qty</td></tr><tr><td>Mug</td><td>2</td></tr></table>"
        "</body></html>"
    )
    assert text == (
        "Hi Ana,\n\nLine one\nline two\n\n  * first\n  * second\n\n"
        "See [the guide](https://example.com/x) or https://example.com/y https://example.com/y or "
        "help@example.com.\n\nItem Qty\nMug 2"
    )


@pytest.mark.parametrize("html", ["", "   ", "<!-- only a comment -->", "<?xml version='1.0'?><p>x</p>", "\x00<p>a\x00b</p>"])
def test_html_to_text_takes_odd_input_in_its_stride(html: str) -> None:
    assert isinstance(html_to_text(html), str)


def test_deeply_nested_html_still_gives_text() -> None:
    # Long Outlook threads nest a few divs per reply; libxml2 drops text below 256 levels unless told not to.
    assert html_to_text("<div>" * 1500 + "deep" + "</div>" * 1500) == "deep"


# ------------------------------------------------------------------------------------- reply text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Passt, danke!\n\nVon: Example Shop Support <support@example.com>\nGesendet: Montag, 3. März 2025 10:02\n"
            "An: Daniel Weber <daniel.weber@example.org>\nBetreff: AW: Lieferadresse\n\nHallo Daniel,",
            "Passt, danke!", id="german-outlook-block",
        ),
        pytest.param(
            "Obrigado!\n\nEm seg., 3 de mar. de 2025 às 10:02, Example Shop Support <\nsupport@example.com> "
            "escreveu:\n\n> Olá Ana,\n> O pedido foi enviado.",
            "Obrigado!", id="portuguese-gmail",
        ),
        pytest.param(
            "Спасибо, всё работает.\n\nпн, 3 мар. 2025 г. в 10:02, Example Shop Support <support@example.com>:\n\n"
            "> Здравствуйте!",
            "Спасибо, всё работает.", id="unknown-language-attribution",
        ),
        pytest.param(
            "> Which browser do you use?\nFirefox 124.\n> And which OS?\nWindows 11.",
            "Firefox 124.\nWindows 11.", id="interleaved-quotes",
        ),
        pytest.param(
            "Thanks, that fixed it!\nBut the second invoice is still wrong.\n\nVon meinem iPhone gesendet",
            "Thanks, that fixed it!\nBut the second invoice is still wrong.", id="sign-off-kept-phone-line-cut",
        ),
        pytest.param(
            "Ok\n\n-----Original Message-----\nFrom: Example Shop Support\nSent: Monday\n\nHi",
            "Ok", id="original-message",
        ),
        pytest.param(
            "Ok for me.\n\nGet Outlook for Android<https://aka.ms/AAb9ysg>\n________________________________\n"
            "From: Example Shop Support <support@example.com>\nSent: Tuesday, March 4, 2025 8:15 AM",
            "Ok for me.", id="outlook-mobile",
        ),
    ],
)
def test_strip_reply_keeps_only_what_the_sender_wrote_this_time(text: str, expected: str) -> None:
    assert strip_reply(text) == expected


def test_strip_reply_falls_back_to_the_whole_text_of_a_bare_forward() -> None:
    forward = (
        "---------- Forwarded message ---------\nFrom: Example Shop <orders@example.net>\n"
        "Date: Mon, Mar 3, 2025 at 10:02 AM\nSubject: Your order 123\nTo: <ana@example.org>\n\nOrder 123 confirmed."
    )
    assert strip_reply(forward) == forward


def test_strip_reply_of_nothing_but_quotes_is_the_whole_text() -> None:
    assert strip_reply("> only\n> quoted") == "> only\n> quoted"
    assert strip_reply("") == ""


def test_a_huge_single_line_does_not_stall_reply_stripping() -> None:
    # mail-parser-reply's patterns are quadratic in line length; this took minutes before lines were shelved.
    line = "On " + "a " * 100_000
    assert strip_reply(line + "\n\nOn Mon, 3 Mar 2025 Ana <a@example.org> wrote:\n> hi") == line.strip()


# ------------------------------------------------------------------------------------ provider parts


def _provider_fields(raw: bytes) -> dict[str, Any]:
    """What a provider's parsed webhook would hand over for this raw message."""
    message: Any = BytesParser(policy=policy.default).parsebytes(raw)
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    return {
        "message_id": message["Message-ID"],
        "in_reply_to": message["In-Reply-To"],
        "references": message["References"],
        "subject": str(message["Subject"]),
        "from_header": str(message["From"]),
        "to": [str(address) for address in message["To"].addresses],
        "cc": [],
        "date": str(message["Date"]),
        "text": plain.get_content() if plain is not None else "",
        "html": html.get_content() if html is not None else "",
        "headers": {name: str(value) for name, value in message.items()},
        "attachments": [],
    }


COMPARED = ("message_id", "in_reply_to", "references", "subject", "from_email", "from_name", "to", "cc",
            "date", "text", "html", "reply_text", "auto_submitted", "is_bounce")


@pytest.mark.parametrize("name", ["gmail_reply.eml", "outlook_web_reply.eml", "html_only_script.eml",
                                  "out_of_office_autoreply.eml", "mailing_list_post.eml"])
def test_provider_parts_and_raw_mime_agree(name: str) -> None:
    raw = load(name)
    from_mime: InboundEmail = parse_mime(raw)
    from_provider = from_parts(**_provider_fields(raw))
    for attribute in COMPARED:
        assert getattr(from_provider, attribute) == getattr(from_mime, attribute), attribute


def test_provider_bounce_with_the_returned_message_attached_is_a_bounce() -> None:
    from_mime = parse_mime(load("dsn_bounce.eml"))
    email = from_parts(
        message_id=None, in_reply_to=None, references=None, subject="Undelivered Mail Returned to Sender",
        from_header="MAILER-DAEMON@mx.example.net (Mail Delivery System)", to="support@example.com", cc="",
        date=None, text=from_mime.text, html="",
        headers={"Content-Type": "multipart/report; report-type=delivery-status; boundary=x"},
        attachments=from_mime.attachments,
    )
    assert (email.is_bounce, email.auto_submitted) == (True, True)
    assert email.bounced_message_id == "tierdesk.42.abc123@tierdesk.localhost"


def test_provider_stripped_text_is_used_and_html_becomes_text_when_text_is_missing() -> None:
    email = from_parts(
        message_id="<abc@example.org>", in_reply_to="tierdesk.9.x@tierdesk.localhost",
        references=["<tierdesk.8.y@tierdesk.localhost>", "tierdesk.9.x@tierdesk.localhost"],
        subject="=?UTF-8?Q?Re:_Caf=C3=A9?=", from_header='"Ana Lima" <ANA@Example.org>',
        to=["Support <support@example.com>", "billing@example.com"], cc="Bob <bob@example.org>, bob@example.org",
        date="2025-03-07T16:40:58", text="", html="<p>Yes please.</p><blockquote>old</blockquote>",
        headers={"Auto-Submitted": "no", "X-Tierdesk-Noise": "spoofed"},
        attachments=[Attachment("a.txt", "text/plain", b"a")], stripped_text="Yes please.\n\nSent from my iPhone",
    )
    assert email.message_id == "abc@example.org"
    assert email.in_reply_to == "tierdesk.9.x@tierdesk.localhost"
    assert email.references == ("tierdesk.8.y@tierdesk.localhost", "tierdesk.9.x@tierdesk.localhost")
    assert (email.subject, email.from_name, email.from_email) == ("Re: Café", "Ana Lima", "ana@example.org")
    assert email.to == ("support@example.com", "billing@example.com")
    assert email.cc == ("bob@example.org",)
    assert email.date == datetime(2025, 3, 7, 16, 40, 58, tzinfo=UTC)
    assert email.text == "Yes please.\n\nold"
    assert email.reply_text == "Yes please."
    assert email.headers == {"auto-submitted": "no"}
    assert email.auto_submitted is False


def test_provider_dates_keep_their_offset() -> None:
    fields = _provider_fields(load("gmail_reply.eml"))
    aware = datetime(2025, 3, 7, 17, 40, 58, tzinfo=timezone(timedelta(hours=1)))
    assert from_parts(**{**fields, "date": aware}).date == aware
    assert from_parts(**{**fields, "date": "not a date"}).date is None


def test_provider_messages_without_an_id_get_a_stable_one() -> None:
    fields = {**_provider_fields(load("gmail_reply.eml")), "message_id": None}
    first, again = from_parts(**fields), from_parts(**fields)
    assert first.message_id == again.message_id
    assert first.message_id.startswith("generated-")


# ----------------------------------------------------------------------------------- property tests

_MIME_BITS = st.sampled_from([
    b"From: ", b"To: ", b"Subject: ", b"Message-ID: <", b"References: ", b"Date: ", b"Content-Type: ",
    b"multipart/mixed; boundary=b", b"multipart/report; report-type=delivery-status; boundary=b",
    b"message/rfc822", b"text/html; charset=", b"iso-2022-jp", b"x-unknown", b"utf-7",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Disposition: attachment; filename*=", b"utf-8''%E2%82", b"=?utf-8?b?", b"=?x?q?=FF?=", b"?=",
    b"--b", b"--b--", b"\n", b"\r\n", b"\n\n", b" ", b"<>", b"@", b">", b"On Mon wrote:", b"<a href=javascript:x>",
    b"<img src=cid:x>", b"\x00", b"\xff\xfe", b"\x1b$B", b"=\n", b"==", b"\xe9",
])


def _must_only_raise_inbound_error(raw: bytes) -> None:
    try:
        email = parse_mime(raw)
    except InboundError as error:
        assert error.permanent
        return
    assert email.message_id
    assert "\x00" not in email.text + email.reply_text + email.html + email.subject + email.from_name


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048) | st.lists(_MIME_BITS | st.binary(max_size=16), max_size=60).map(b"".join))
def test_parse_mime_raises_nothing_but_inbound_error_on_arbitrary_bytes(raw: bytes) -> None:
    _must_only_raise_inbound_error(raw)


_EDITS = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]), st.floats(0, 1), st.binary(min_size=1, max_size=12)),
    min_size=1, max_size=8,
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS_FILES), _EDITS)
def test_parse_mime_raises_nothing_but_inbound_error_on_mutated_corpus_files(
    path: Path, edits: list[tuple[str, float, bytes]]
) -> None:
    data = bytearray(path.read_bytes())
    for kind, where, payload in edits:
        at = int(where * len(data))
        if kind == "flip" and at < len(data):
            data[at] ^= payload[0] or 0x80
        elif kind == "insert":
            data[at:at] = payload
        elif kind == "delete":
            del data[at:at + len(payload)]
        else:
            del data[at:]
    _must_only_raise_inbound_error(bytes(data))
