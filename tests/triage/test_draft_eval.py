"""Draft evals (`draft_eval`) over a temporary knowledge base, draft replays of answered tickets, and the metric
functions they are built from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from kb.models import Article
from kb.services import article_upsert
from tests.support import builders
from tests.support.scripted_openai import Reply, ScriptedOpenAI, completion, tier_settings
from triage import draft_metrics
from triage.llm.tiers import cost_usd
from triage.models import Draft, EvalRun, Intent, Job, ReviewAction, RouteDecision, Ticket, TriageRun

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "draft_eval"
TICKETS, KB = FIXTURES / "tickets.jsonl", FIXTURES / "kb.jsonl"


@pytest.fixture(autouse=True)
def _forget_retrieval_caches() -> Iterator[None]:
    """These tests index and search knowledge bases that their transactions roll back: the process-wide cache of
    lexeme statistics must not outlive them into other tests."""
    from kb import selectors

    yield
    selectors._stats_cache.clear()


# --- The metric functions, on strings written by hand ---------------------------------------------

def test_token_f1_counts_shared_words_as_squad_does() -> None:
    assert draft_metrics.token_f1("the parcel is late", "the parcel is late") == 1.0
    assert draft_metrics.token_f1("nothing alike", "the parcel is late") == 0.0
    # 2 shared words of 4 drafted and 2 referenced: precision 0.5, recall 1.
    assert draft_metrics.token_f1("parcel late sorry again", "parcel late") == pytest.approx(2 / 3)
    # Citation markers are not words of the reply.
    assert draft_metrics.token_f1("the parcel is late [1]", "the parcel is late") == 1.0


def test_a_repeated_line_is_a_defect_and_blanks_are_counted() -> None:
    body = "Hi Anna,\n\n- Print the label [1]\n- Print the label [2]\n- print  the LABEL\n\nKind regards"
    assert draft_metrics.repeated_lines(body) == 2
    assert draft_metrics.repeated_lines("Hi,\n\n\nThanks\n\nBye") == 0  # blank lines are not lines said again
    assert draft_metrics.unfilled_blanks("Your order [[order number]] ships on {{date}}; see [1].") == \
        ["[[order number]]", "{{date}}"]
    assert draft_metrics.defects("Hi,\nSee [[order number]].\nSee [[order number]].",
                                 failed_gates=["pii_leak", "internal_text"]) == \
        {"gate:pii_leak": 1, "internal_text": 1, "repeated_line": 1, "unfilled_blank": 2}
    assert draft_metrics.defects("A clean reply.", failed_gates=[]) == {}
    # With no internal_text gate, citing an internal article is the internal-text defect.
    assert draft_metrics.defects("A reply.", failed_gates=[], cited_audiences=["public", "internal"]) == \
        {"internal_text": 1}


def test_a_sentence_is_supported_when_half_its_content_words_are_in_a_cited_passage() -> None:
    passage = "We refund returned items within three working days of the parcel reaching our warehouse."
    draft = ("Hi Tomasz,\n\nThank you for getting in touch.\n"
             "We refund returned items within three working days [1].\n"
             "Your courier collects the sofa next Tuesday morning.\n\nKind regards,\nCustomer Support")
    # The greeting, the thanks and the sign-off have fewer than 4 content words: they are not claims.
    assert draft_metrics.sentences(draft) == ["We refund returned items within three working days [1].",
                                              "Your courier collects the sofa next Tuesday morning."]
    assert draft_metrics.overlap("We refund returned items within three working days", passage) == 1.0
    assert draft_metrics.support(draft, [passage]) == (1, 2)
    assert draft_metrics.support(draft, []) == (0, 2)


def test_citation_recall_and_precision_are_counted_over_tickets_with_a_gold_article() -> None:
    rows = [
        draft_metrics.TicketScore(id="a", subject="", drafted=True, gold_article="g1", cited_gold=True,
                                  gold_citations=1, citations=2),
        draft_metrics.TicketScore(id="b", subject="", drafted=True, gold_article="g2", cited_gold=False,
                                  gold_citations=0, citations=1),
        draft_metrics.TicketScore(id="c", subject="", drafted=False, gold_article="g3"),
        draft_metrics.TicketScore(id="d", subject="", drafted=True, citations=4),  # no gold: not counted
    ]
    summary = draft_metrics.summarise(rows)
    assert (summary["citation_recall"], summary["citation_precision"]) == (round(1 / 3, 4), round(1 / 3, 4))
    assert (summary["refusals"], summary["refusal_rate"], summary["tickets_with_gold"]) == (1, 0.25, 3)
    score = draft_metrics.citation_score(["g1", "other", "g1"], "g1")
    assert (score.cited_gold, score.gold_citations, score.citations) == (True, 2, 3)


# --- draft_eval on the local engine -----------------------------------------------------------------

def _run(*args: str) -> tuple[str, dict[str, Any]]:
    out = StringIO()
    call_command("draft_eval", "--tickets", str(TICKETS), "--kb", str(KB), *args, stdout=out, stderr=StringIO())
    return out.getvalue(), EvalRun.objects.get(kind="draft").report


@pytest.mark.django_db
def test_draft_eval_on_the_local_engine_scores_each_ticket_and_keeps_the_run(tmp_path: Path) -> None:
    printed, report = _run("--tier", "local", "--output", str(tmp_path / "report.json"))
    assert json.loads((tmp_path / "report.json").read_text())["citation_recall"] == report["citation_recall"]
    assert (report["n"], report["tier"], report["engine"], report["cost_usd"]) == (5, "local", "local", 0.0)
    assert report["kb"] == {"articles": 6, "internal": 1, "chunks": report["kb"]["chunks"]}
    rows = {r["id"]: r for r in report["tickets"]}
    # The parcel question retrieves its gold article and the draft cites it: recall 1 for that ticket.
    assert rows["t1"]["extra"]["retrieved"][0] == "track-order"
    assert rows["t1"]["cited_gold"] and "track-order" in rows["t1"]["cited"]
    # The figures are the rows' figures.
    gold = [r for r in rows.values() if r["gold_article"]]
    assert report["citation_recall"] == round(sum(r["cited_gold"] for r in gold) / len(gold), 4)
    assert report["defects"] == sum(report["defects_by_kind"].values()) == \
        sum(sum(r["defects"].values()) for r in rows.values())
    assert report["refusals"] == 0 and report["latency_ms"]["p95"] >= report["latency_ms"]["p50"]
    assert 0 < report["reference_f1"] < 1 and 0 < report["reference_similarity"] <= 1
    assert report["reference_n"] == 4  # t4 has no reference reply
    assert rows["t4"]["token_f1"] is None and rows["t4"]["extra"]["intent_source"] == "unclassified"
    assert report["support_rule"].startswith("content-word overlap >= 0.5")
    # Drafts quote public articles only; the internal one guides the writer and is never cited.
    assert report["internal_text_gate"] and all("refund-exceptions" not in r["cited"] for r in rows.values())
    assert "citation recall" in printed and f"kept as eval run #{EvalRun.objects.get().pk}" in printed
    # The temporary index went with its transaction; the deployment's knowledge base is untouched.
    assert not Article.objects.exists()


@pytest.mark.django_db
def test_draft_eval_reads_a_folder_of_markdown_articles(tmp_path: Path) -> None:
    folder = tmp_path / "helpcentre"
    (folder / "orders").mkdir(parents=True)
    for article in map(json.loads, KB.read_text().splitlines()):
        audience = f"audience: {article['audience']}\n" if article.get("audience") else ""
        (folder / "orders" / f"{article['id']}.md").write_text(
            f"---\ntitle: {article['title']}\nlanguage: en\n{audience}---\n\n# {article['title']}\n\n{article['body']}\n")
    tickets = tmp_path / "t.jsonl"
    tickets.write_text("\n".join(
        line.replace('"gold_article": "', '"gold_article": "orders/') for line in TICKETS.read_text().splitlines()))
    (folder / "README.md").write_text("# About this folder\n\nNot an article.\n")
    call_command("draft_eval", "--tickets", str(tickets), "--kb", str(folder), "--limit", "2", "--no-save",
                 "--output", str(tmp_path / "r.json"), stdout=StringIO(), stderr=StringIO())
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 2 and report["kb"] == {**report["kb"], "articles": 6, "internal": 1}
    # An article's id is its path, as kb_import names it; a gold article may leave out the suffix.
    parcel = report["tickets"][0]
    assert parcel["gold_article"] == "orders/track-order.md" and parcel["cited"][0] == "orders/track-order.md"
    assert parcel["cited_gold"] and not EvalRun.objects.exists()


@pytest.mark.django_db
def test_draft_eval_refuses_bad_input_and_stores_nothing(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command("draft_eval", "--tickets", str(tmp_path / "missing.jsonl"), "--kb", str(KB))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(TICKETS.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(CommandError, match=r"bad.jsonl:2: not valid JSON"):
        call_command("draft_eval", "--tickets", str(bad), "--kb", str(KB))
    with pytest.raises(CommandError, match="unknown tier 'huge'; choose nano, mini, large, local"):
        call_command("draft_eval", "--tickets", str(TICKETS), "--kb", str(KB), "--tier", "huge")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(CommandError, match=r"empty\.jsonl: no records"):
        call_command("draft_eval", "--tickets", str(tmp_path / "empty.jsonl"), "--kb", str(KB))
    (tmp_path / "nobody.jsonl").write_text('{"id": 1, "subject": "Hi"}\n')
    with pytest.raises(CommandError, match=r"nobody.jsonl:1: 'body' must be a non-empty string"):
        call_command("draft_eval", "--tickets", str(tmp_path / "nobody.jsonl"), "--kb", str(KB))
    (tmp_path / "gold.jsonl").write_text('{"id": 1, "subject": "Hi", "body": "b", "gold_article": "nope"}\n')
    with pytest.raises(CommandError, match="gold_article not in the knowledge base: nope"):
        call_command("draft_eval", "--tickets", str(tmp_path / "gold.jsonl"), "--kb", str(KB))
    (tmp_path / "kb.jsonl").write_text('{"id": "a", "title": "A", "body": "b", "audience": "secret"}\n')
    with pytest.raises(CommandError, match="'audience' must be public or internal"):
        call_command("draft_eval", "--tickets", str(TICKETS), "--kb", str(tmp_path / "kb.jsonl"))
    with pytest.raises(CommandError, match="prompt draft has no version 9"):
        call_command("draft_eval", "--tickets", str(TICKETS), "--kb", str(KB), "--prompt-version", "9")
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        call_command("draft_eval", "--tickets", str(TICKETS), "--kb", str(KB), "--limit", "0")
    # The judge needs the large tier's API key; without one it refuses before drafting anything.
    with pytest.raises(CommandError, match="large tier has no API key"):
        call_command("draft_eval", "--tickets", str(TICKETS), "--kb", str(KB), "--judge", "large")
    assert not EvalRun.objects.exists()


# --- The OpenAI path, with the judge ------------------------------------------------------------------

DRAFTS = {
    # Cites passage [1] (the parcel article) twice and says one line twice: a repeated-line defect.
    "Where is my parcel?": "Hi [PERSON_1],\n\nOpen the tracking link to see where your parcel is and the day the "
                           "courier expects to deliver it [1].\nOpen the tracking link to see where your parcel is "
                           "and the day the courier expects to deliver it [1].\n\nKind regards",
    # Quotes the internal article and cites nothing: the internal_text gate fails it.
    "Return a rug": "Hi [PERSON_1],\n\nTell them that the refund is sent today and that they can keep or recycle "
                    "the damaged item.\n\nKind regards",
}


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    def respond(payload: dict[str, Any]) -> Reply | None:
        schema = payload["response_format"]["json_schema"]["name"]
        user = json.loads(payload["messages"][-1]["content"])
        if schema == "draft_judgement":
            return completion({"score": 4, "reason": "Right answer; says one line twice."}, tokens_in=500,
                              tokens_out=20)
        if schema == "ticket_classification":
            return completion({"intent": "recover_password", "urgency": "high", "sentiment": "neutral",
                               "language": "en", "confidence": 0.9, "summary": "s"}, tokens_in=200, tokens_out=20)
        if schema == "ticket_reply":
            if user["subject"] == "Cannot sign in":
                return completion({"reply": "Hi,\n\nUse Forgot password on the sign-in page [1].",
                                   "citations": [1]})
            if user["subject"] == "Refund not on my card yet":
                return completion(None, refusal="I cannot help with that.")
            cites = [1] if user["subject"] == "Where is my parcel?" else []
            return completion({"reply": DRAFTS[user["subject"]], "citations": cites}, tokens_in=900, tokens_out=60)
        return None

    with ScriptedOpenAI(respond=respond) as scripted:
        yield scripted


@pytest.mark.django_db
def test_draft_eval_on_an_openai_tier_counts_cost_refusals_defects_and_the_judges_score(
        server: ScriptedOpenAI, tmp_path: Path) -> None:
    with override_settings(TIERS=tier_settings(server, openai_tiers=("mini", "large"))):
        printed, report = _run("--tier", "mini", "--limit", "3", "--judge", "large")
    assert (report["engine"], report["model"], report["n"]) == ("openai", "scripted-mini", 3)
    rows = {r["id"]: r for r in report["tickets"]}
    # The draft went out redacted and came back with the customer's name restored.
    draft_request = next(r["json"] for r in server.requests
                         if r["json"]["response_format"]["json_schema"]["name"] == "ticket_reply"
                         and "parcel" in r["json"]["messages"][-1]["content"])
    assert "Anna" not in draft_request["messages"][-1]["content"]
    parcel = rows["t1"]
    assert parcel["body"].startswith("Hi Anna Berg,") and parcel["cited"] == ["track-order"]
    assert parcel["defects"] == {"repeated_line": 1}
    assert (parcel["supported"], parcel["sentences"]) == (2, 2)
    # One ticket of three refused: no draft, counted as a refusal and as a recall miss.
    assert rows["t2"]["drafted"] is False and rows["t2"]["extra"]["refused"]
    assert (report["refusals"], report["refusal_rate"]) == (1, 0.3333)
    # The rug reply repeats the internal article to the customer: the same gate as production holds it.
    rug = rows["t3"]
    assert rug["defects"] == {"internal_text": 1} and "internal_text" in rug["failed_gates"]
    assert report["internal_text_gate"] and report["defects_by_kind"] == {"internal_text": 1, "repeated_line": 1}
    # Only the parcel draft cites its gold article; the rug draft cites nothing.
    assert (report["citation_recall"], report["citation_precision"]) == (0.3333, 1.0)
    # mini's price for two drafts' 900 tokens in and 60 out, and for the refusal's 120 and 40: spent all the same.
    assert report["cost_usd"] == pytest.approx(float(2 * cost_usd("mini", 900, 60) + cost_usd("mini", 120, 40)))
    assert report["judge"]["cost_usd"] == pytest.approx(float(2 * cost_usd("large", 500, 20)))
    judge = report["judge"]
    assert judge["rubric"] == {"id": "draft-rubric", "version": 1} and judge["model"] == "scripted-large"
    assert (parcel["judge_score"], report["judge_mean"], report["judged"]) == (4, 4.0, 2)
    judge_request = next(r["json"] for r in server.requests
                         if r["json"]["response_format"]["json_schema"]["name"] == "draft_judgement")
    assert "Anna" not in judge_request["messages"][-1]["content"]
    assert "judge score" in printed and "draft-rubric v1" in printed


@pytest.mark.django_db
def test_a_ticket_without_an_intent_is_classified_by_the_nano_tier(server: ScriptedOpenAI, tmp_path: Path) -> None:
    Intent.objects.create(name="recover_password")
    t4 = tmp_path / "t4.jsonl"
    t4.write_text(next(line for line in TICKETS.read_text().splitlines() if '"t4"' in line) + "\n")
    with override_settings(TIERS=tier_settings(server, openai_tiers=("nano", "mini"))):
        call_command("draft_eval", "--tickets", str(t4), "--kb", str(KB), "--tier", "mini", "--no-save",
                     "--output", str(tmp_path / "r.json"), stdout=StringIO(), stderr=StringIO())
    report = json.loads((tmp_path / "r.json").read_text())
    [row] = report["tickets"]
    assert (row["extra"]["intent"], row["extra"]["intent_source"]) == ("recover_password", "nano")
    assert report["classify"]["classified"] == 1 and report["classify"]["cost_usd"] > 0
    # The draft was asked with the classification's intent and urgency.
    draft = next(r["json"] for r in server.requests if r["json"]["response_format"]["json_schema"]["name"] == "ticket_reply")
    sent = json.loads(draft["messages"][-1]["content"])
    assert (sent["intent"], sent["urgency"]) == ("recover_password", "high")
    assert row["cited"] == ["reset-password"] and report["citation_recall"] == 1.0


# --- Draft replay -----------------------------------------------------------------------------------

def _answered(subject: str, body: str, sent: str, *, lane: str, action: str, user: User) -> Ticket:
    intent = Intent.objects.get_or_create(name="track_order")[0]
    ticket = builders.ticket(subject=subject, body=body, from_name="Anna Berg", from_email="a@example.org",
                                   intent=intent, lane=lane, status="closed")
    run = TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=intent,
                                   urgency="normal", sentiment="neutral", language="en", confidence=0.9, summary="s")
    decision = RouteDecision.objects.create(ticket=ticket, triage_run=run, lane=lane, top_similarity=0.9)
    draft = Draft.objects.create(ticket=ticket, route_decision=decision, tier=lane, engine="local", model="m",
                                 body="Hello, we are looking into it.")
    ReviewAction.objects.create(ticket=ticket, draft=draft, user=user, action=action,
                                drafted_text=draft.body, final_text=sent)
    return ticket


SENT = "Hi Anna, open the tracking link to see where your parcel is and the day the courier expects to deliver it."


def _live_kb() -> None:
    for article in map(json.loads, KB.read_text().splitlines()):
        article_upsert(slug=article["id"], title=article["title"], body=article["body"], source="test")


@pytest.mark.django_db
def test_draft_replay_compares_candidate_drafts_with_what_agents_sent_per_lane() -> None:
    _live_kb()
    agent = User.objects.create_user("agent")
    sent = SENT
    _answered("Where is my parcel?", "The tracking page shows nothing. Where is my parcel?", sent, lane="mini",
              action="approve", user=agent)
    _answered("Parcel late", "My parcel is late, when will the courier deliver it?", sent, lane="large",
              action="edit_approve", user=agent)
    rejected = _answered("Rejected", "Where is my lamp?", sent, lane="mini", action="reject", user=agent)

    out = StringIO()
    call_command("draft_replay", "--tier", "local", "--limit", "10", stdout=out, stderr=StringIO())
    report = EvalRun.objects.get(kind="draft_replay").report
    assert report["n"] == 2 and str(rejected.pk) not in {r["id"] for r in report["tickets"]}
    assert set(report["per_lane"]) == {"mini", "large"}
    mini = report["per_lane"]["mini"]
    assert mini["n"] == 1 and mini["reference_f1"] > mini["production_f1"]  # it now quotes what the agent sent
    assert report["engine"] == "local" and json.loads(out.getvalue())["n"] == 2
    with pytest.raises(CommandError, match="unknown tier"):
        call_command("draft_replay", "--tier", "huge")


@pytest.mark.django_db
def test_a_draft_replay_never_starts_from_the_reply_it_is_scored_against() -> None:
    from triage import reply_memory

    _live_kb()
    agent = User.objects.create_user("agent")
    first = _answered("Where is my parcel?", "The tracking page shows nothing. Where is my parcel?",
                      SENT, lane="mini", action="edit_approve", user=agent)
    second = _answered("Where is my parcel now?", "Tracking shows nothing at all. Where is my parcel now?",
                       "Hello Anna, the tracking link shows where your parcel is; the first scan can take a day.",
                       lane="mini", action="edit_approve", user=agent)
    remembered = {t.pk: reply_memory.remember(review_id=t.reviews.get().pk) for t in (first, second)}
    assert all(remembered.values())

    call_command("draft_replay", "--tier", "local", "--limit", "5", stdout=StringIO(), stderr=StringIO())
    rows = {int(r["id"]): r for r in EvalRun.objects.get(kind="draft_replay").report["tickets"]}
    # Each ticket may start from the other's answer, never from its own.
    for ticket, other in ((first, second), (second, first)):
        assert rows[ticket.pk]["extra"].get("memory_id") in (None, remembered[other.pk].pk)  # type: ignore[union-attr]
    assert any("memory_id" in r["extra"] for r in rows.values())


@pytest.mark.django_db
def test_a_draft_replay_started_on_the_evals_page_runs_as_a_job(client: Client, admin_user: Any) -> None:
    from triage import jobs

    _live_kb()
    _answered("Where is my parcel?", "Where is my parcel?", SENT, lane="mini", action="compose", user=admin_user)
    client.force_login(admin_user)
    client.post("/settings/evals/draft-replay", {"tier": "local", "limit": "5"})
    job = Job.objects.get()
    assert (job.kind, job.params["name"]) == ("draft_replay", "draft replay: local")
    jobs.job_run(job_id=job.pk)  # what the worker's run_job task does
    job.refresh_from_db()
    assert (job.status, job.error, job.done, job.total) == ("done", "", 1, 1)
    assert job.eval_run.kind == "draft_replay" and job.eval_run.report["n"] == 1


@pytest.mark.django_db
def test_draft_replay_with_nothing_answered_says_so() -> None:
    with pytest.raises(CommandError, match="no ticket has an answer an agent sent"):
        call_command("draft_replay", "--limit", "5")
    assert not EvalRun.objects.exists()


# --- The evals page ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_evals_page_lists_draft_runs_and_their_tickets(client: Client, admin_user: Any,
                                                           django_assert_num_queries: Any) -> None:
    _run("--tier", "local", "--name", "local drafts")
    run = EvalRun.objects.get()
    client.force_login(admin_user)
    client.get("/settings/evals")  # the session is loaded once before counting
    with django_assert_num_queries(5):  # session, user, the runs, the jobs, the prompt versions
        page = client.get("/settings/evals").content.decode()
    assert 'data-testid="draft-runs"' in page and "local drafts" in page
    detail = client.get(f"/settings/evals/{run.pk}").content.decode()
    assert 'data-testid="draft-tickets"' in detail and "Where is my parcel?" in detail

    response = client.post("/settings/evals/draft-replay", {"tier": "local", "limit": "20", "name": "local replay"})
    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.kind, job.status, job.params["limit"]) == ("draft_replay", "queued", 20)
    bad = client.post("/settings/evals/draft-replay", {"tier": "huge", "limit": "5"}, follow=True)
    assert "choose a tier" in bad.content.decode()


@pytest.mark.django_db
def test_a_draft_eval_uploaded_on_the_evals_page_runs_as_a_job(client: Client, admin_user: Any,
                                                               tmp_path: Path) -> None:
    from triage import jobs

    client.force_login(admin_user)
    bad = tmp_path / "mine.jsonl"
    bad.write_text(TICKETS.read_text().splitlines()[0] + "\n{not json\n")
    with bad.open("rb") as tickets, KB.open("rb") as kb:
        response = client.post("/settings/evals/drafts", {"tickets_file": tickets, "kb_file": kb, "tier": "local"},
                               follow=True)
    assert "mine.jsonl:2: not valid JSON" in response.content.decode() and not Job.objects.exists()
    with TICKETS.open("rb") as tickets, KB.open("rb") as kb:
        client.post("/settings/evals/drafts", {"tickets_file": tickets, "kb_file": kb, "tier": "local",
                                               "name": "from the page"})
    job = Job.objects.get()
    assert (job.kind, job.params["name"], job.params["judge"]) == ("draft_eval", "from the page", None)
    jobs.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.error, job.done, job.total) == ("done", "", 5, 5)
    assert job.eval_run.kind == "draft" and job.eval_run.dataset == "tickets.jsonl · kb.jsonl"
    with TICKETS.open("rb") as tickets, KB.open("rb") as kb:
        refused = client.post("/settings/evals/drafts", {"tickets_file": tickets, "kb_file": kb, "tier": "local",
                                                         "judge": "large"}, follow=True)
    assert "large tier has no API key" in refused.content.decode() and Job.objects.count() == 1

