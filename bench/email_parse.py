"""How long the inbound parser takes on a 1 MB HTML mail, and on the corpus.

    .venv/bin/python bench/email_parse.py [--repeat 5]

Prints median and best times for html_to_text and parse_mime on a ~1 MB table-layout HTML mail, the
corpus messages per second, and the ratio to the previous run (bench/results/email_parse.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from email.message import EmailMessage

from _common import ROOT, report

ROW = ('<tr><td><p>Hello <b>Ana</b>, order <a href="https://shop.example.com/o/{0}">#{0}</a> has shipped.</p>'
       '<ul><li>Mug &amp; lid</li><li>Tea</li></ul><img src="cid:logo{0}@example.com" alt="logo"></td>'
       '<td><div>Tracking: <span style="color:red">ZX{0}</span><br>Delivery in 2&ndash;3 days</div></td></tr>')


def big_html(target: int = 1_000_000) -> str:
    rows, i = [], 0
    while sum(len(r) for r in rows) < target:
        rows.append(ROW.format(i))
        i += 1
    return "<html><body><table>" + "".join(rows) + "</table></body></html>"


def timed(fn: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from triage.intake.mime import html_to_text, parse_mime

    html = big_html()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Shop <news@shop.example>", "a@example.com", "Your order"
    message["Message-ID"] = "<bench@shop.example>"
    # HTML only, the worst case: the text triage reads has to be made from the HTML.
    message.set_content(html, subtype="html")
    raw = message.as_bytes()
    corpus = [p.read_bytes() for p in sorted((ROOT / "fixtures" / "email").glob("*.eml"))]
    h2t = timed(lambda: html_to_text(html), args.repeat)
    mime = timed(lambda: parse_mime(raw), args.repeat)
    corpus_times = timed(lambda: [parse_mime(r) for r in corpus], args.repeat)
    figures = {
        "html_bytes": len(html),
        "html_to_text_s_median": round(statistics.median(h2t), 3), "html_to_text_s_best": round(min(h2t), 3),
        "parse_mime_1mb_s_median": round(statistics.median(mime), 3), "parse_mime_1mb_s_best": round(min(mime), 3),
        "corpus_messages": len(corpus),
        "corpus_messages_per_s": round(len(corpus) / statistics.median(corpus_times), 1),
    }
    print(json.dumps(figures, indent=2))
    report("email_parse", figures,
           ["parse_mime_1mb_s_median", "html_to_text_s_median", "corpus_messages_per_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
