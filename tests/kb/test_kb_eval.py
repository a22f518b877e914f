"""kb_eval measures retrieval on files in a temporary index, and never reads or writes the deployment's KB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from kb.models import Article, Chunk
from kb.services import article_upsert

pytestmark = pytest.mark.django_db

ARTICLES = [
    {"id": "pw", "title": "Reset your password", "body": "Use the forgot password link on the sign-in page. "
     "A reset email arrives within minutes."},
    {"id": "ship", "title": "Track a shipment", "body": "Every order has a tracking number. Open the order to "
     "see where the parcel is and when it will be delivered."},
    {"id": "refund", "title": "Refunds", "body": "Refunds are paid to the original card within five days of "
     "receiving the returned item."},
    {"id": "de-konto", "title": "Konto löschen", "body": "Sie können Ihr Kundenkonto jederzeit löschen. "
     "Öffnen Sie die Kontoeinstellungen und wählen Sie Konto löschen.", "language": "de"},
]
QUERIES = [
    {"query": "I forgot my password", "gold_id": "pw"},
    {"query": "where is my parcel, what is the tracking number", "gold_id": "ship"},
    {"query": "when will I get my refund", "gold_id": "refund"},
    {"query": "Wie kann ich mein Kundenkonto löschen?", "gold_id": "de-konto"},
    # Nothing in the KB is about gift cards; the gold article is one that cannot come first.
    {"query": "gift card balance", "gold_id": "ship"},
]


def write_jsonl(path: Path, rows: list[dict[str, object]] | list[str]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_it_reports_hits_mrr_and_latency_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb, queries = write_jsonl(tmp_path / "kb.jsonl", ARTICLES), write_jsonl(tmp_path / "q.jsonl", QUERIES)
    call_command("kb_eval", "--kb", str(kb), "--queries", str(queries), "--output", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    printed = json.loads(capsys.readouterr().out)
    assert report["n"] == 5 and report["articles"] == 4 and report["chunks"] == 4
    assert report["hit_at_1"] == pytest.approx(4 / 5)
    [miss] = report["misses"]
    assert miss["query"] == "gift card balance" and miss["top"] != "ship"
    assert report["mrr"] == pytest.approx((4 + (1 / miss["rank"] if miss["rank"] else 0)) / 5)
    assert report["embedding"] == {"provider": "local", "model": "multilingual-e5-small", "dim": 384}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    assert printed["hit_at_1"] == report["hit_at_1"] and "misses" not in printed
    # Kept for the evals page, beside the classification runs.
    from triage.models import EvalRun

    run = EvalRun.objects.get()
    assert (run.kind, run.engine, run.report["mrr"]) == ("kb", "local", report["mrr"])


def test_it_neither_sees_nor_touches_the_deployment_kb(tmp_path: Path) -> None:
    # A deployed article that would be the best answer: the evaluation must not return it.
    article_upsert(slug="deployed", title="Forgot password", body="I forgot my password: reset it here.")
    chunks = list(Chunk.objects.values_list("id", "text"))
    kb = write_jsonl(tmp_path / "kb.jsonl", ARTICLES[1:])
    queries = write_jsonl(tmp_path / "q.jsonl", [{"query": "I forgot my password", "gold_id": "ship"}])
    call_command("kb_eval", "--kb", str(kb), "--queries", str(queries), "--output", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["misses"] == [] or report["misses"][0]["top"] in {"ship", "refund", "de-konto"}
    assert list(Chunk.objects.values_list("id", "text")) == chunks
    assert list(Article.objects.values_list("slug", flat=True)) == ["deployed"]


@pytest.mark.parametrize(("kb_rows", "query_rows", "message"), [
    ([ARTICLES[0], "{not json"], QUERIES[:1], "kb.jsonl:2: not valid JSON"),
    ([ARTICLES[0], {"id": "x", "body": "no title"}], QUERIES[:1], "kb.jsonl:2: 'title' must be a non-empty string"),
    ([ARTICLES[0], ARTICLES[0]], QUERIES[:1], "kb.jsonl:2: duplicate id 'pw'"),
    ([{**ARTICLES[0], "language": "german"}], QUERIES[:1], "kb.jsonl:1: 'language' must be an ISO 639-1 code"),
    ([ARTICLES[0]], [QUERIES[0], {"query": "x", "gold_id": "nope"}], "q.jsonl:2: gold_id 'nope' is not an article"),
    ([ARTICLES[0]], [{"query": "", "gold_id": "pw"}], "q.jsonl:1: 'query' must be a non-empty string"),
    ([ARTICLES[0]], ["[1, 2]"], "q.jsonl:1: expected a JSON object"),
])
def test_bad_files_get_an_error_with_the_line_number(
    tmp_path: Path, kb_rows: list[dict[str, object]], query_rows: list[dict[str, object]], message: str
) -> None:
    kb, queries = write_jsonl(tmp_path / "kb.jsonl", kb_rows), write_jsonl(tmp_path / "q.jsonl", query_rows)
    with pytest.raises(CommandError, match=message):
        call_command("kb_eval", "--kb", str(kb), "--queries", str(queries))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"nowhere\.jsonl: no such file"):
        call_command("kb_eval", "--kb", str(tmp_path / "nowhere.jsonl"), "--queries", str(tmp_path / "q.jsonl"))
