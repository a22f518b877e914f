"""The local engine's replies: one coherent answer to the customer, filled from the ticket, never an agent's text."""

from __future__ import annotations

import pytest

from triage import policy
from triage.llm import replies

RETURNS = replies.Source(1, "returns/return-an-item.md", "Return an item",
                         "You have 30 days from delivery to return an item. Start a return from Account > Orders, "
                         "print the prepaid label and drop the parcel at any post office. Refunds go back to the "
                         "original payment method within 5-10 working days after the return arrives.")
DELIVERY = replies.Source(2, "delivery/delivery-times.md", "Delivery times",
                          "Standard delivery takes 3-5 working days and costs 4.95 euros. Express delivery "
                          "arrives the next working day when you order before 14:00.")
MEMORY = replies.Memory(7, "Thanks for letting us know about order {{order_number}}. You can return it within 30 "
                           "days from Account > Orders, and we refund {{amount}} to your card once it arrives.",
                        "en", ("returns/return-an-item.md",), 0.91)


def write(**overrides: object) -> replies.Reply:
    ticket = {"subject": "Return my jacket", "body": "Hi, I want to send back order 48213, it cost €59.90.",
              "from_name": "Maria Lopez", "language": "en", "sources": [DELIVERY, RETURNS], "memory": MEMORY,
              "escalated": False}
    return replies.write(**(ticket | overrides))  # type: ignore[arg-type]


def test_a_reply_starts_from_the_remembered_reply_filled_from_the_ticket() -> None:
    reply = write()
    assert reply.text.startswith("Hi Maria,\n\n")
    assert "order 48213" in reply.text and "refund €59.90 to your card" in reply.text
    assert reply.text.rstrip().endswith("Kind regards,\nCustomer Support")
    assert reply.memory_id == 7 and reply.blanks == []


def test_it_cites_the_articles_the_remembered_reply_rests_on() -> None:
    reply = write()
    assert reply.cited == [1]
    assert "[1]" in reply.text and "[2]" not in reply.text


def test_a_value_the_ticket_lacks_becomes_a_blank_for_the_agent() -> None:
    reply = write(body="I want to send my jacket back, how does it work?")
    assert reply.blanks == ["[[amount]]"]
    assert "we refund [[amount]] to your card" in reply.text


@pytest.mark.parametrize(("memory", "language", "expected"), [
    ("Thanks for letting us know about order {{order_number}}.", "en", "Thanks for letting us know about your order."),
    ("Order {{order_number}} was placed an hour ago.", "en", "Your order was placed an hour ago."),
    ("Abre el pedido {{order_number}} en tu cuenta.", "es", "Abre el pedido en tu cuenta."),
    ("Die Bestellung {{order_number}} ist unterwegs.", "de", "Die Bestellung ist unterwegs."),
])
def test_without_an_order_number_the_reply_speaks_of_the_order(memory: str, language: str, expected: str) -> None:
    reply = write(memory=replies.Memory(9, memory, language), body="Where is my parcel?", language=language)
    assert expected in reply.text and reply.blanks == []


def test_no_name_gets_a_plain_greeting_in_the_reply_language() -> None:
    spanish = replies.Memory(8, "Puede devolver el pedido {{order_number}} en 30 días.", "es", (), 0.9)
    reply = write(from_name="", memory=spanish, language="es")
    assert reply.text.startswith("Hola:\n\nPuede devolver el pedido 48213")
    assert reply.text.rstrip().endswith("Un saludo,\nAtención al cliente")


def test_without_a_remembered_reply_it_quotes_one_passage_as_prose() -> None:
    reply = write(memory=None, subject="How long does delivery take?", body="When will standard delivery arrive?")
    assert reply.cited == [2]
    assert "Standard delivery takes 3-5 working days and costs 4.95 euros." in reply.text
    # One passage's sentences, once each: no bullets, nothing from a second article.
    assert "- " not in reply.text and "30 days" not in reply.text
    lines = [line for line in reply.text.splitlines() if line]
    assert len(set(lines)) == len(lines)


def test_nothing_to_quote_is_said_plainly_and_cites_nothing() -> None:
    reply = write(memory=None, sources=[], body="Hello?")
    assert reply.cited == []
    assert "I am checking this for you" in reply.text


def test_directives_shorten_lengthen_and_apologise() -> None:
    short = write(instruction="shorter please")
    longer = write(instruction="give more detail")
    sorry = write(instruction="apologise for the wait")
    assert len(short.text) < len(write().text) < len(longer.text)
    assert "I am sorry for the trouble" in sorry.text
    assert "Explain" not in longer.text


def test_a_directive_alone_does_not_steer_retrieval() -> None:
    assert replies.instruction_topic("Shorter, please") == ""
    assert replies.instruction_topic("Explain how to recover the username instead") == "recover username"


def test_an_escalated_reply_says_a_person_follows_up() -> None:
    assert "senior member of our team" in write(escalated=True).text


@pytest.mark.parametrize(("body", "expected"), [
    ("my order #NW-20931 never came", "NW-20931"),
    ("Bestellnummer: 559120 ist nicht da", "559120"),
    ("mi pedido nº 48213 no ha llegado", "48213"),
    ("I live at 10115 Berlin and nothing arrived", None),
])
def test_order_numbers_are_read_as_customers_write_them(body: str, expected: str | None) -> None:
    values = replies.ticket_values(subject="", body=body, from_name="")
    assert values.get("order_number") == expected


def test_a_sent_reply_is_remembered_as_a_template() -> None:
    sent = ("Hi Maria,\n\nYour refund for order 48213 of €59.90 is on its way [1].\n\nKind regards,\nAlex")
    values = replies.ticket_values(subject="", body="order 48213, €59.90", from_name="Maria Lopez")
    assert replies.templatize(sent, values) == "Your refund for order {{order_number}} of {{amount}} is on its way."


def test_markers_are_removed_from_what_the_customer_reads() -> None:
    assert replies.strip_markers("Returns take 30 days [1]. Express is next day [2].") == \
        "Returns take 30 days. Express is next day."


# --- The internal-text gate ---------------------------------------------------------------------

INTERNAL = ("Get the customer's full name or account ID with [Pull up Account]. If they ask for a refund "
            "outside the window, we will just give them the credit anyway.")


@pytest.mark.parametrize("draft", [
    "Hi Sam,\n\nTell them that you will send the reset code.\n\nKind regards",
    "Hi Sam,\n\nPlease open [Pull up Account] first.",
    "Hi Sam,\n\nIf they ask for a refund outside the window, we will just give them the credit anyway.",
    "Hola Sam:\n\nDígale al cliente que espere.",
    "Bonjour,\n\nLe client doit attendre.",
])
def test_internal_text_fails_the_gate(draft: str) -> None:
    assert not policy.internal_text(draft, internal=[INTERNAL]).passed


@pytest.mark.parametrize("draft", [
    "Hi Sam,\n\nYou can reset your password from the sign-in page [1]. Our customer service team is here "
    "Monday to Friday.\n\nKind regards,\nCustomer Support",
    "Hola Sam:\n\nNuestro equipo de atención al cliente le responderá hoy. Rellene [[order number]].",
    "Hallo Sam,\n\nunser Kundenservice hilft gern weiter.",
])
def test_a_reply_to_the_customer_passes_the_internal_text_gate(draft: str) -> None:
    assert policy.internal_text(draft, internal=[INTERNAL]).passed
