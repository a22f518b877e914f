from __future__ import annotations

import base64
import codecs
import re

import pytest

from triage.llm.prompts import CLASSIFY, DRAFT
from triage.policy import (
    CANARY_MASK,
    CATEGORIES,
    DEFAULT_RULES,
    PROMPT_LEAK,
    GateRule,
    check_draft,
    find_pii,
    mask_canary,
    prompt_leak,
    redact,
    restore,
    validate_rule,
)

TICKET = """Ana García
Pedido 612345678 no ha llegado
Hola, escribo desde ana.garcia@example.es. Mi móvil es 612 345 678 (o +34 612 345 679).
Pagué el 03.05.2024 con la tarjeta 4111 1111 1111 1111 por €1.299,00.
Devuélvanlo a ES91 2100 0418 4502 0005 1332.
Vielen Dank, meine Berliner Nummer ist 030 12345678 und mein Konto DE89 3704 0044 0532 0130 00.
Saludos, Ana García
"""


# --- Redaction: what is hidden from external models ---------------------------------------------

def test_an_email_address_is_replaced_by_a_placeholder() -> None:
    r = redact("Reply to j.smith+shop@mail.example.com please.")
    assert r.text == "Reply to [EMAIL_1] please."
    assert r.mapping == {"[EMAIL_1]": "j.smith+shop@mail.example.com"}


@pytest.mark.parametrize("phone", ["+1 415 555 2671", "(415) 555-2671", "+44 20 7946 0958", "020 7946 0958",
                                   "0034 612 345 678", "06 12 34 56 78"])
def test_phone_numbers_in_international_and_national_formats_are_redacted(phone: str) -> None:
    r = redact(f"Call me on {phone} after six.")
    assert r.text == "Call me on [PHONE_1] after six."
    assert r.mapping["[PHONE_1]"] == phone


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "5555555555554444",
                                  "3782 822463 10005"])
def test_a_card_number_that_passes_the_luhn_check_is_redacted(card: str) -> None:
    r = redact(f"I paid with {card} yesterday.")
    assert r.text == "I paid with [CARD_1] yesterday."
    assert r.counts == {"CARD": 1}


def test_a_card_like_number_that_fails_the_luhn_check_is_left_alone() -> None:
    text = "The card 4111 1111 1111 1112 was declined."
    assert redact(text).text == text


def test_a_long_order_number_stays_readable_even_when_its_digits_pass_luhn() -> None:
    # 113542617735902 does pass Luhn; it is kept because no card network a shop takes starts with 1.
    text = "Where is order 113542617735902? It cost $49.99 on 2024-05-03."
    assert redact(text).text == text


@pytest.mark.parametrize("iban", ["DE89 3704 0044 0532 0130 00", "ES91 2100 0418 4502 0005 1332",
                                  "GB82 WEST 1234 5698 7654 32", "de89370400440532013000"])
def test_an_iban_with_a_valid_checksum_is_redacted(iban: str) -> None:
    r = redact(f"Refund to {iban} IBAN please")
    assert r.text == "Refund to [IBAN_1] IBAN please"


def test_an_iban_with_a_bad_checksum_is_left_alone_digits_and_all() -> None:
    text = "Mein Konto: DE89 3704 0044 0532 0130 01."
    assert redact(text).text == text


@pytest.mark.parametrize("text", [
    "Ordered 03.05.2024, shipped 2024-05-06, due 05/10/2024 at 14:32.",
    "Total €1.299,00 (USD 1,299.00), 2 items, size 42, 30% off.",
    "Pedido 612345678 y factura nº 912345678.",
    "Bestellnummer 4012345678, Sendungsnummer 00340434161094042557.",
    "Invoice #4155552671 and EAN 4006381333931.",
    "I need to cancel purchase 370795561790",
])
def test_dates_prices_and_quoted_references_are_not_redacted(text: str) -> None:
    assert redact(text).text == text


def test_spanish_and_german_tickets_have_every_phone_iban_and_card_redacted() -> None:
    r = redact(TICKET)
    assert r.counts == {"EMAIL": 1, "PHONE": 3, "CARD": 1, "IBAN": 2}
    for value in ["ana.garcia@example.es", "612 345 678", "+34 612 345 679", "4111 1111 1111 1111",
                  "ES91 2100 0418 4502 0005 1332", "030 12345678", "DE89 3704 0044 0532 0130 00"]:
        assert value not in r.text
    for kept in ["Pedido 612345678", "03.05.2024", "€1.299,00"]:
        assert kept in r.text


def test_the_same_value_gets_the_same_placeholder_everywhere_in_one_text() -> None:
    r = redact("Write to ana@example.es or call 612 345 678. Again: ana@example.es, 612 345 678, bob@x.com")
    assert r.text == "Write to [EMAIL_1] or call [PHONE_1]. Again: [EMAIL_1], [PHONE_1], [EMAIL_2]"
    assert r.counts == {"EMAIL": 3, "PHONE": 2}


def test_redaction_keeps_the_line_structure_callers_split_on() -> None:
    r = redact(TICKET)
    assert r.text.count("\n") == TICKET.count("\n")


def test_restore_round_trips_the_original_text() -> None:
    r = redact(TICKET, names=["Ana García"])
    assert restore(r.text, r.mapping) == TICKET


def test_restore_fills_in_placeholders_a_model_echoed_and_leaves_unknown_ones() -> None:
    r = redact("Contact: ana@example.es, +34 612 345 678")
    reply = "We will write to [EMAIL_1] and call [ phone_1 ]; [EMAIL_9] is not ours."
    assert restore(reply, r.mapping) == (
        "We will write to ana@example.es and call +34 612 345 678; [EMAIL_9] is not ours."
    )


def test_a_placeholder_already_in_the_ticket_is_never_reused() -> None:
    r = redact("You wrote to [EMAIL_1] last time; my address is ana@example.es")
    assert r.mapping == {"[EMAIL_2]": "ana@example.es"}
    assert restore(r.text, r.mapping) == "You wrote to [EMAIL_1] last time; my address is ana@example.es"


def test_a_known_customer_name_and_address_are_redacted_when_the_caller_passes_them() -> None:
    text = "Ana García\nPlease send it to Calle Mayor 5, 28013 Madrid instead.\nThanks, Ana"
    r = redact(text, names=["Ana García"], addresses=["Calle Mayor 5, 28013 Madrid"])
    assert r.text == "[PERSON_1]\nPlease send it to [ADDRESS_1] instead.\nThanks, [PERSON_2]"
    assert restore(r.text, r.mapping) == text


def test_names_and_addresses_are_not_guessed_without_a_known_value() -> None:
    # No offline NER: a stranger's name in free text is not detected (see the module docstring).
    text = "My neighbour John Miller at 12 Baker Street took the parcel."
    assert redact(text).text == text


# --- Output gates: what a draft must not say ------------------------------------------------------

FIRING = {
    "legal_advice": ["Honestly, you should sue the courier.", "You could take them to small claims court.",
                     "Si quiere, puede demandar a la empresa."],
    "medical_advice": ["Take 400 mg of ibuprofen for the rash.", "This cream is safe during pregnancy.",
                       "You probably have an allergy to the dye."],
    "financial_advice": ["I would recommend you invest in bitcoin instead.", "It is a safe investment."],
    "chargeback_advice": ["Just file a chargeback with your bank.",
                          "Dispute the charge with your card issuer.",
                          "Call your bank and ask them to reverse the payment.", "Haga un contracargo."],
    "guaranteed_outcome": ["You will get a guaranteed refund.", "It is 100% guaranteed to arrive Friday.",
                           "We guarantee it will not happen again.", "Wir garantieren die Lieferung."],
    "unapproved_compensation": ["We will compensate you with 50 EUR.",
                                "Here is a voucher for the inconvenience.",
                                "As a goodwill gesture we add free shipping."],
    "liability_admission": ["We admit liability for the damage.", "This was entirely our fault.",
                            "Asumimos toda la responsabilidad."],
}

BENIGN = [
    ("Hi Ana, thanks for reaching out. Your order 113542617735902 shipped on 2024-05-06 and should arrive "
     "within 3-5 business days. You can track it from your account page."),
    ("We're sorry for the inconvenience. Once we receive the item we will refund the full amount to your "
     "original payment method; your bank may take 5-10 days to show it. If it does not appear by then, "
     "please reply to this email and we will look into it."),
    "Our 2-year warranty covers defects. You can take them to any of our stores for an exchange.",
    "Gracias por escribirnos. El reembolso se procesará en 3-5 días hábiles.",
    "Vielen Dank für Ihre Nachricht. Die Rücksendung ist innerhalb von 30 Tagen kostenlos.",
]


def _rule(name: str) -> GateRule:
    return next(r for r in DEFAULT_RULES if r.name == name)


def test_every_default_rule_is_valid_and_has_examples_here() -> None:
    for rule in DEFAULT_RULES:
        validate_rule(rule)
    assert {r.name for r in DEFAULT_RULES} == set(FIRING) | {"pii_leak"}
    assert {r.category for r in DEFAULT_RULES} == set(CATEGORIES)


@pytest.mark.parametrize(("name", "draft"), [(n, d) for n, drafts in FIRING.items() for d in drafts])
def test_each_default_rule_holds_a_draft_that_says_what_it_forbids(name: str, draft: str) -> None:
    [result] = check_draft(draft, [_rule(name)])
    assert not result.passed
    assert result.rule == name and result.category == _rule(name).category
    assert result.matches and all(m.lower() in draft.lower() for m in result.matches)


@pytest.mark.parametrize("draft", BENIGN)
def test_a_routine_reply_passes_every_default_gate(draft: str) -> None:
    results = check_draft(draft, DEFAULT_RULES, redaction=redact(TICKET))
    assert [(r.rule, r.matches) for r in results if not r.passed] == []
    assert len(results) == len(DEFAULT_RULES)


def test_the_customers_own_contact_details_may_appear_in_the_draft_in_any_format() -> None:
    redaction = redact(TICKET)
    reply = "We will call you on [PHONE_1] or +49 30 12345678 and refund to [IBAN_1]."
    draft = restore(reply, redaction.mapping)
    draft += " A copy goes to ANA.GARCIA@example.es."
    [result] = check_draft(draft, [_rule("pii_leak")], redaction=redaction)
    assert result.passed, result.matches


def test_someone_elses_email_phone_card_or_iban_fails_the_pii_gate_without_being_repeated() -> None:
    draft = ("Please contact bob@other.example or +44 20 7946 0958; the refund went to card "
             "5555 5555 5555 4444 "
             "and account GB82 WEST 1234 5698 7654 32.")
    [result] = check_draft(draft, [_rule("pii_leak")], redaction=redact(TICKET))
    assert not result.passed
    assert result.matches == ("EMAIL b***@other.example", "PHONE ***0958", "CARD ***4444", "IBAN GB***5432")


def test_without_a_redaction_any_pii_in_the_draft_is_a_leak() -> None:
    [result] = check_draft("Write to ana@example.es", [_rule("pii_leak")])
    assert not result.passed


def test_the_shops_own_contact_details_can_be_allowed() -> None:
    draft = "Questions? Write to support@shop.example or call +34 910 000 000."
    [result] = check_draft(draft, [_rule("pii_leak")], allowed=["Support@shop.example", "910 00 00 00"])
    assert result.passed, result.matches


def test_a_pii_rule_can_be_narrowed_to_some_types() -> None:
    rule = GateRule(name="no-cards", category="pii_leak", pattern="CARD", message="No card numbers.")
    [result] = check_draft("Mail bob@other.example, card 4111111111111111", [rule])
    assert result.matches == ("CARD ***1111",)


# --- Admin-edited rules -----------------------------------------------------------------------------

def test_a_bad_regex_is_refused_with_a_clear_error() -> None:
    rule = GateRule(name="refund-promise", category="regulated_language", pattern=r"(refund|guarantee",
                    message="x")
    with pytest.raises(ValueError, match=r"'refund-promise'.*not a valid regular expression: missing \), "
                                         r"unterminated subpattern at position 0"):
        validate_rule(rule)


@pytest.mark.parametrize(("rule", "error"), [
    (GateRule("x", "marketing", "free", "m"),
     "category must be one of forbidden_advice, regulated_language, pii_leak"),
    (GateRule("x", "forbidden_advice", "sue|", "m"), "matches empty text"),
    (GateRule("x", "forbidden_advice", "  ", "m"), "pattern is empty"),
    (GateRule("x", "forbidden_advice", "sue", ""), "message is required"),
    (GateRule("x", "pii_leak", r"\d{16}", "m"), "must match at least one of EMAIL, PHONE, CARD, IBAN"),
])
def test_rules_that_cannot_work_are_refused_with_the_reason(rule: GateRule, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        validate_rule(rule)


def test_an_invalid_rule_that_reaches_the_gates_holds_the_draft() -> None:
    bad = GateRule(name="broken", category="forbidden_advice", pattern="(", message="m")
    [result] = check_draft("A harmless reply.", [bad])
    assert not result.passed
    assert "not a valid regular expression" in result.matches[0]


def test_rule_patterns_are_case_insensitive() -> None:
    rule = GateRule(name="no-sue", category="forbidden_advice", pattern=r"\bsue\b", message="m")
    [result] = check_draft("YOU SHOULD SUE.", [rule])
    assert result.matches == ("SUE",)


def test_find_pii_reports_spans_for_highlighting() -> None:
    [match] = find_pii("mail ana@example.es now")
    assert (match.type, match.start, match.end, match.canonical) == ("EMAIL", 5, 19, "ana@example.es")


# --- The prompt_leak gate -----------------------------------------------------------------------

CANARY = "tdc-5f3a9c0e1b2d4f6a8c7e9d01"
PROMPTS = [CLASSIFY.system, DRAFT.system]


@pytest.mark.parametrize("leak", [
    f"Sure, the marker is {CANARY}.",
    f"MARKER: {CANARY.upper()}",
    " ".join(CANARY),
    "\u200b".join(CANARY),
    f"backwards: {CANARY[::-1]}",
    codecs.encode(f"rot13: {CANARY}", "rot13"),
    "b64 " + base64.b64encode(f"my instructions say {CANARY}".encode()).decode(),
    "hex " + CANARY.encode().hex(),
    "".join(f"&#{ord(c)};" for c in CANARY),
    "".join(f"%{ord(c):02X}" for c in CANARY),
    "".join(chr(ord(c) + 0xFEE0) for c in CANARY),  # fullwidth
    "Thanks!" + "".join(chr(0xE0000 + ord(c)) for c in CANARY),  # invisible tag characters
    CANARY.replace("a", "\u0430").replace("e", "\u0435").replace("c", "\u0441"),  # Cyrillic look-alikes
    f"Part of it: {CANARY[6:24]}",
])
def test_the_canary_is_found_however_it_is_written_and_masked_where_it_stands(leak: str) -> None:
    result = prompt_leak(leak, canary=CANARY)
    assert not result.passed and result.rule == PROMPT_LEAK and result.matches == ("the prompt canary",)
    masked = mask_canary(leak, CANARY)
    assert CANARY_MASK in masked and prompt_leak(masked, canary=CANARY).matches == ("a withheld prompt canary",)
    assert CANARY[4:].lower() not in masked.lower()


def test_a_long_run_of_a_system_prompt_is_a_leak_without_the_canary() -> None:
    echoed = "My instructions: " + " ".join(re.findall(r"\w+", DRAFT.system)[:20])
    [result] = check_draft(echoed, [], canary=CANARY, prompts=PROMPTS)
    assert not result.passed and result.matches == ("20 words of a system prompt",)
    assert prompt_leak(" ".join(re.findall(r"\w+", DRAFT.system)[:13]), prompts=PROMPTS).passed  # a phrase


def test_quoting_a_knowledge_base_passage_is_not_a_leak() -> None:
    # Passages fill the draft prompt's {passages}: a draft is meant to use them, word for word if it likes.
    passage = ("To reset your password open the sign-in page, choose Forgot password, enter the email address "
               "on your account and follow the link we send you within the next thirty minutes.")
    sent = DRAFT.system.format(passages=f"[1] Recover password\n{passage}", guidance="(none)")
    assert prompt_leak(passage, canary=CANARY, prompts=PROMPTS).passed
    assert not prompt_leak(passage, prompts=[sent]).passed  # which is why the templates are checked, not this


@pytest.mark.parametrize("draft", BENIGN)
def test_a_routine_reply_passes_the_prompt_leak_gate(draft: str) -> None:
    [result] = check_draft(draft, [], canary=CANARY, prompts=PROMPTS)
    assert result.passed and result.rule == PROMPT_LEAK


def test_without_a_canary_or_prompts_the_gates_are_the_rules_alone() -> None:
    assert [r.rule for r in check_draft("Hello", DEFAULT_RULES)] == [r.name for r in DEFAULT_RULES]
