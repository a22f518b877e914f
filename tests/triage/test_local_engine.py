from __future__ import annotations

import csv
from pathlib import Path

import pytest

from triage.llm import local

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="module")
def model() -> local.LocalIntentModel:
    with (FIXTURES / "bitext" / "utterances.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return local.LocalIntentModel.train([r["utterance"] for r in rows[::3]], [r["intent"] for r in rows[::3]])


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("I forgot my password and cannot get into my account", "recover_password"),
        ("how do I cancel the order I placed yesterday", "cancel_order"),
        ("I want my money back for this broken lamp", "get_refund"),
        ("please unsubscribe me from your newsletter", "newsletter_subscription"),
    ],
)
def test_it_labels_plain_requests_with_the_right_intent(model: local.LocalIntentModel, text: str,
                                                        intent: str) -> None:
    [(label, confidence)] = model.predict([text])
    assert label == intent
    assert 0 < confidence <= 1


def test_gibberish_gets_low_confidence(model: local.LocalIntentModel) -> None:
    [(_label, confidence)] = model.predict(["qwzx plorb zzzt"])
    assert confidence < 0.5


def test_a_trained_model_survives_a_round_trip(model: local.LocalIntentModel) -> None:
    again = local.LocalIntentModel.loads(model.dumps())
    text = ["where is my parcel"]
    assert again.predict(text) == model.predict(text)


def test_it_will_not_train_on_a_single_intent() -> None:
    with pytest.raises(ValueError):
        local.LocalIntentModel.train(["a", "b"], ["x", "x"])


def test_classification_fills_every_field(model: local.LocalIntentModel) -> None:
    result = local.classify(model, subject="URGENT: charged twice",
                            body="You charged my card twice. This is unacceptable, fix it immediately!")
    assert result.urgency == "urgent"
    assert result.sentiment == "negative"
    assert result.language == "en"
    assert result.summary.startswith("You charged my card twice.")


@pytest.mark.parametrize(("text", "urgency"), [
    ("My account was hacked, someone placed orders", "urgent"),
    ("I still haven't received my order", "high"),
    ("Just wondering when the newsletter goes out", "low"),
    ("Can I change the colour of my order?", "normal"),
])
def test_urgency_rules(text: str, urgency: str) -> None:
    assert local.urgency_of(text, local.sentiment_of(text)[1]) == urgency


def test_language_is_detected() -> None:
    assert local.language_of("Hola, mi pedido no ha llegado todavía, ¿me pueden ayudar?") == "es"
    assert local.language_of("Bonjour, ma commande n'est toujours pas arrivée") == "fr"


def test_a_draft_cites_the_passages_it_quotes() -> None:
    passages = [
        local.PassageRef(1, "Reset Password", "Tell the customer you cannot get their password, but you can "
                         "generate a new one for them. Ask for their username and email address first."),
        local.PassageRef(2, "Shipping Cost", "Shipping is free on orders over fifty dollars in the country."),
    ]
    body, cited = local.compose_draft(from_name="Sam Carter", subject="Forgot password",
                                      body="I forgot my password, please help me get a new one",
                                      intent="recover_password", passages=passages, escalated=False)
    assert body.startswith("Hi Sam,")
    assert cited and cited[0] == 1
    assert "generate a new one for them. [1]" in body or "[1]" in body
    for marker in cited:
        assert f"[{marker}]" in body


def test_an_escalated_draft_says_a_person_will_follow_up() -> None:
    body, cited = local.compose_draft(from_name="", subject="Help", body="help", intent="complaint",
                                      passages=[], escalated=True)
    assert body.startswith("Hello,") and cited == []
    assert "senior member of our team" in body
