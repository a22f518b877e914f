"""Triage reads a ticket as a ticket: the request apart from its wrapping, urgency from what it says, and a
confidence that is calibrated on held-back tickets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import builders
from triage import corrections, evals, learning
from triage.errors import ApplicationError
from triage.llm import local, ticket_shape
from triage.llm.urgency import UrgencyModel, cue_counts, urgency_by_rules
from triage.models import Intent, IntentExample, TriageRun


@pytest.mark.parametrize(("subject", "body", "kept", "dropped"), [
    ("Re: Fwd: Order NW-48213", ("Hi Anna,\n\nWhere is my parcel? It left your warehouse a week ago.\n\nThanks,\nTom\n"
     "Sent from my iPhone"), ["Where is my parcel?", "It left your warehouse a week ago."], ["Hi Anna", "Thanks", "iPhone"]),
    ("", "Hola, buenos días:\n\nQuiero cambiar la talla del abrigo.\n\nUn saludo,\nMarta García",
     ["Quiero cambiar la talla del abrigo."], ["Hola", "Un saludo", "Marta"]),
    ("Rechnung", "Sehr geehrte Damen und Herren,\nbitte senden Sie mir die Rechnung.\nMit freundlichen Grüßen\nJ. Meier",
     ["bitte senden Sie mir die Rechnung."], ["Sehr geehrte", "freundlichen"]),
    ("", ("Bonjour, je voudrais annuler ma commande.\n\nLe 3 mars 2026 à 10:12, Boutique <aide@example.com> a écrit :\n"
     "> Votre commande est confirmée."), ["je voudrais annuler ma commande."], ["confirmée", "Bonjour"]),
])
def test_the_request_is_read_apart_from_greetings_signatures_and_quotes(
        subject: str, body: str, kept: list[str], dropped: list[str]) -> None:
    request = ticket_shape.ticket_request(subject, body)
    for sentence in kept:
        assert sentence in request.sentences
    for word in dropped:
        assert word not in request.text
    assert not request.subject.lower().startswith(("re:", "fwd:"))


def test_a_one_line_request_is_read_as_it_is() -> None:
    assert local.model_input("where is my parcel?") == "where is my parcel?"
    assert local.model_input("Hi, where is my parcel?") == "where is my parcel?"


def test_a_ticket_s_sentences_vote_by_how_much_each_looks_like_a_request() -> None:
    # Labels: cancel_order, track_order, other. One sentence leans to cancelling; two agree on tracking; a
    # greeting-like aside looks like nothing in the taxonomy and hardly counts.
    whole = np.array([1 / 3, 1 / 3, 1 / 3])
    parts = np.array([[0.86, 0.09, 0.05], [0.08, 0.82, 0.10], [0.10, 0.80, 0.10], [0.45, 0.05, 0.50]])
    combined = local._combine(whole, parts, other=2)
    assert combined.argmax() == 1 and combined.sum() == pytest.approx(1.0)
    # A single clear request among asides still leads.
    alone = local._combine(whole, parts[[0, 3]], other=2)
    assert alone.argmax() == 0 and alone[0] > 0.5
    # Parts that all look out of scope leave "other" in front.
    assert local._combine(whole, np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), other=2).argmax() == 2


@pytest.mark.parametrize(("text", "family"), [
    ("Me habéis cobrado dos veces el mismo pedido", "money"),
    ("Ich komme nicht mehr in mein Konto", "access"),
    ("C'est la troisième fois que je vous écris", "repeated"),
    ("Preciso do casaco até amanhã, é para uma viagem", "deadline"),
    ("Non comprerò mai più da voi", "churn"),
    ("Ho gia scritto due volte, nessuna risposta", "repeated"),  # accents left out, as customers do
])
def test_urgency_cues_are_read_in_the_customers_language(text: str, family: str) -> None:
    assert cue_counts(text)[family] >= 1


def test_urgency_rules_name_the_costly_cases_urgent() -> None:
    assert urgency_by_rules("Someone hacked my account and placed orders", 0.0) == "urgent"
    assert urgency_by_rules("Mi abogado presentará una denuncia", 0.0) == "urgent"
    assert urgency_by_rules("Can I change the colour of my order?", 0.0) == "normal"


def test_only_fraud_or_a_legal_threat_overrides_a_learned_urgency() -> None:
    from triage.llm.urgency import names_a_costly_case

    assert names_a_costly_case("If this is not fixed I will ask my bank for a chargeback")
    assert names_a_costly_case("Je n'ai pas passé cette commande, c'est une fraude")
    # Words a rule calls urgent, but which customers also write about newsletters, leave the learned urgency be.
    assert urgency_by_rules("Remove this address from your mailing list immediately.", 0.0) == "urgent"
    assert not names_a_costly_case("Remove this address from your mailing list immediately.")


def test_the_urgency_model_learns_from_labelled_tickets() -> None:
    texts = (["You charged my card twice and nobody answers"] * 6 + ["Just wondering if you ship to Norway"] * 6
             + ["Please change the size of my order to M"] * 6)
    levels = ["high"] * 6 + ["low"] * 6 + ["normal"] * 6
    intents = ["payment_issue"] * 6 + ["delivery_options"] * 6 + ["change_order"] * 6
    vectors = local.embed_texts(texts)
    labels = ["change_order", "delivery_options", "payment_issue"]
    model = UrgencyModel.fit(texts, levels, vectors, intents, labels)
    probe = ["Me han cobrado dos veces y nadie contesta", "Por curiosidad, ¿enviáis a Noruega?"]
    onehot = np.asarray([[0, 0, 1], [0, 1, 0]], dtype=np.float32)
    assert [u for u, _ in model.predict(probe, local.embed_texts(probe), onehot)] == ["high", "low"]
    with pytest.raises(ValueError, match="at least two urgencies"):
        UrgencyModel.fit(texts[:2], ["high", "high"], vectors[:2], intents[:2], labels)


def test_calibration_reports_accuracy_per_band_and_the_expected_error() -> None:
    truth = ["a"] * 10
    predicted = ["a"] * 9 + ["b"]  # 90 % right
    report = evals.calibration_report(truth, predicted, [0.9] * 10)
    assert report["ece"] == pytest.approx(0.0)
    band = next(b for b in report["bands"] if b["low"] == 0.9)
    assert (band["n"], band["accuracy"]) == (10, 0.9)
    overconfident = evals.calibration_report(truth, ["a"] * 5 + ["b"] * 5, [0.95] * 10)
    assert overconfident["ece"] == pytest.approx(0.45)
    assert [b["n"] for b in overconfident["bands"]][:-1] == [0, 0, 0, 0]


def test_calibration_fits_a_temperature_that_softens_an_overconfident_model() -> None:
    texts = ["where is my parcel", "track my order please", "I want my money back", "refund me now",
             "where is my order", "give me a refund"] * 3
    labels = ["track_order", "track_order", "get_refund", "get_refund", "track_order", "get_refund"] * 3
    model = local.LocalIntentModel.train(texts, labels, background=[])
    # Held back, and labelled the opposite way half the time: the model is right half the time at most.
    held = ["where's the parcel", "money back please", "parcel location?", "refund?"]
    truth = ["get_refund", "get_refund", "track_order", "track_order"]
    temperature = model.calibrate(held, truth)
    assert temperature > 1.0
    assert max(c for _, c in model.predict(held)) < 0.75
    again = local.LocalIntentModel.loads(model.dumps())
    assert (again.temperature, again.embedding_weight) == (model.temperature, model.embedding_weight)


def test_a_ticket_set_is_read_from_jsonl_with_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "tickets.jsonl"
    good.write_text(json.dumps({"subject": "Hola", "body": "¿Dónde está mi pedido?", "intent": "track_order",
                                "language": "es", "urgency": "normal"}) + "\n\n", encoding="utf-8")
    [row] = evals.read_labelled(good)
    assert (row.text, row.label, row.language, row.urgency) == ("Hola\n¿Dónde está mi pedido?", "track_order", "es",
                                                                 "normal")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "x", "body": "y", "intent": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ApplicationError, match=r"bad.jsonl:2: not a JSON object"):
        evals.read_labelled(bad)
    bad.write_text('{"subject": "x", "body": "y", "intent": "a", "urgency": "soon"}\n', encoding="utf-8")
    with pytest.raises(ApplicationError, match="urgency 'soon' is not one of"):
        evals.read_labelled(bad)
    bad.write_text('{"subject": "x", "intent": "a"}\n', encoding="utf-8")
    with pytest.raises(ApplicationError, match="needs string fields subject, body, intent"):
        evals.read_labelled(bad)
    with pytest.raises(ApplicationError, match="a CSV needs --text-column"):
        evals.read_labelled(tmp_path / "x.csv")


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_the_evaluation_tickets_cover_the_taxonomy_in_five_languages_and_are_never_trained_on() -> None:
    intents = {i["name"] for i in json.loads((FIXTURES / "bitext" / "intents.json").read_text())} | {"other"}
    sets = {name: evals.read_labelled(FIXTURES / "triage_eval" / f"{name}.jsonl") for name in ("tickets", "varied")}
    every = [row for rows in sets.values() for row in rows]
    assert len(sets["tickets"]) >= 150
    assert {row.label for row in sets["tickets"]} == intents
    assert all(row.urgency in evals.URGENCY_ORDER for row in every)
    for rows in sets.values():
        assert len({row.language for row in rows}) >= 5
        assert all(len(row.text.split()) >= 15 for row in rows)  # tickets, not one-line utterances
    ids = [json.loads(line)["id"] for name in sets
           for line in (FIXTURES / "triage_eval" / f"{name}.jsonl").read_text().splitlines() if line.strip()]
    assert len(ids) == len(set(ids))

    def normal(text: str) -> str:
        return " ".join(text.lower().split())

    store = FIXTURES / "store"
    trained = {normal(f"{t['subject']} {t['body']}") for t in map(json.loads, (store / "labelled_tickets.jsonl")
                                                                   .read_text().splitlines())}
    trained |= {normal(line.rsplit(",", 2)[0]) for line in (store / "utterances.csv").read_text().splitlines()}
    assert not {normal(row.text) for row in every} & trained


# --- Learning from the team's labelled tickets -----------------------------------------------------

@pytest.mark.django_db
def test_a_grown_labelled_fixture_adds_only_its_new_tickets_to_a_seeded_database(tmp_path: Path) -> None:
    from tests.support import data
    from triage import demo

    data.load_taxonomy(per_intent=2)
    utterances = tmp_path / "utterances.csv"
    utterances.write_text("utterance,intent,language\n¿Dónde está mi pedido?,track_order,es\n", encoding="utf-8")
    first = {"subject": "Pedido NW-1", "body": "¿Dónde está?", "intent": "track_order", "urgency": "normal"}
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(json.dumps(first) + "\n", encoding="utf-8")
    assert demo.labelled_load(utterances_path=utterances, tickets_path=tickets) == 2

    second = {"subject": "Factura", "body": "Necesito la factura, por favor.", "intent": "get_invoice",
              "urgency": "low"}
    tickets.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n" + json.dumps(second) + "\n",
                       encoding="utf-8")
    assert demo.labelled_load(utterances_path=utterances, tickets_path=tickets) == 1
    rows = IntentExample.objects.filter(source="ticket").order_by("id")
    assert [(r.intent.name, r.urgency) for r in rows] == [("track_order", "normal"), ("get_invoice", "low")]
    assert IntentExample.objects.filter(source="seed", text="¿Dónde está mi pedido?").count() == 1


@pytest.mark.django_db
@pytest.mark.slow  # trains on the store's labelled data
def test_the_team_s_tickets_teach_intent_urgency_and_calibration(client: Any, admin_user: Any) -> None:
    from tests.support import data
    from triage import demo

    data.load_taxonomy(per_intent=10)
    added = demo.labelled_load(utterances_path=data.FIXTURES / "store" / "utterances.csv",
                               tickets_path=data.FIXTURES / "store" / "labelled_tickets.jsonl")
    tickets = IntentExample.objects.filter(source="ticket")
    assert added == IntentExample.objects.count() - 10 * 27
    assert tickets.count() >= 100 and not tickets.filter(urgency="").exists()
    assert demo.labelled_load(utterances_path=data.FIXTURES / "store" / "utterances.csv",
                              tickets_path=data.FIXTURES / "store" / "labelled_tickets.jsonl") == 0

    model = learning.local_model_train()

    metrics = model.metrics
    assert metrics["calibration"]["on"] == "tickets" and metrics["calibration"]["n"] >= learning.MIN_CALIBRATION_TICKETS
    assert metrics["temperature"] > 0 and 0 <= metrics["calibration"]["ece"] < 1
    assert sum(b["n"] for b in metrics["calibration"]["bands"]) == metrics["calibration"]["n"]
    assert metrics["urgency"]["learned"] and metrics["urgency"]["examples"] >= 80
    active = learning.local_model_active()
    assert active is not None and active.urgency is not None
    result = local.classify(active, subject="Cobrado dos veces",
                            body="Hola, me habéis cobrado dos veces el pedido NW-10203 y nadie contesta mis correos.")
    assert (result.intent, result.urgency in ("high", "urgent")) == ("payment_issue", True)

    client.force_login(admin_user)
    page = client.get("/settings/learning").content.decode()
    assert "Does confidence mean what it says?" in page and f"calibration error <strong>{metrics['calibration']['ece']}" in page
    assert "No reviewed tickets yet." in page


@pytest.mark.django_db
def test_an_urgency_correction_labels_the_ticket_for_the_urgency_model(django_user_model: Any) -> None:

    agent = django_user_model.objects.create_user("agent-u", password="pw")
    intent = Intent.objects.create(name="track_order")
    ticket = builders.ticket(subject="Parcel", body="Where is it? I need it for Saturday.", from_email="c@example.com",
                                   intent=intent, urgency="normal", sentiment="neutral", status="awaiting_review")
    TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=intent, urgency="normal",
                             sentiment="neutral", language="en", confidence=0.72, summary="s")
    before = learning.data_fingerprint()
    corrections.ticket_correct(ticket=ticket, user=agent, field="urgency", value="high")
    example = IntentExample.objects.get(ticket=ticket)
    assert (example.intent, example.urgency, example.source) == (intent, "high", "correction")
    assert learning.data_fingerprint() != before  # a scheduled training picks it up
    corrections.ticket_correct(ticket=ticket, user=agent, field="urgency", value="urgent")
    assert IntentExample.objects.get(ticket=ticket).urgency == "urgent"


@pytest.mark.django_db
def test_reviewed_tickets_show_accuracy_per_confidence_band(django_user_model: Any) -> None:
    from triage.models import ReviewAction

    agent = django_user_model.objects.create_user("agent-r", password="pw")
    right, wrong = Intent.objects.create(name="track_order"), Intent.objects.create(name="get_refund")
    for i, (confidence, final) in enumerate([(0.95, right), (0.93, right), (0.55, wrong), (0.6, right)]):
        ticket = builders.ticket(subject=f"t{i}", body="b", from_email="c@example.com", intent=final,
                                       urgency="normal", sentiment="neutral", status="awaiting_review")
        TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=right,
                                 urgency="normal", sentiment="neutral", language="en", confidence=confidence,
                                 summary="s")
        ReviewAction.objects.create(ticket=ticket, action="compose", user=agent, drafted_text="", final_text="x")
    builders.ticket(subject="unreviewed", body="b", from_email="c@example.com", intent=right)

    report = learning.reviewed_calibration(days=30)

    assert report["n"] == 4
    bands = {b["low"]: b for b in report["bands"]}
    assert (bands[0.9]["n"], bands[0.9]["accuracy"]) == (2, 1.0)
    assert (bands[0.5]["n"], bands[0.5]["accuracy"]) == (2, 0.5)
