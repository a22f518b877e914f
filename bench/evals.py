"""Offline evals of the local engine through `manage.py triage_eval`, on the shared datasets.

For each dataset this makes a stratified 80/20 split (seed 42) into a temporary folder, runs the real
command with `--train` (a model trained for that run only) and prints macro-F1, accuracy, the `other`
rate, training seconds and the classify rate, then compares with the previous run.

  bitext     Bitext intents (27), utterances                       CDLA-Sharing-1.0
  banking77  Banking77 intents (77)                                CC BY 4.0
  oos        Bitext test set plus 400 IT-support tickets from support_tickets_multilang, labelled `other`
             (out of scope for a store's taxonomy; the model learns `other` from fixtures/oos/ only)
  priority   support_tickets_multilang priority (3), subject + body, en/de/es/fr/pt   CC BY-NC 4.0:
             read here at run time for evaluation only; nothing from it is stored in the repository.

Usage (from the repository root):
    .venv/bin/python bench/evals.py [--data-dir ../shared/datasets] [--only bitext,banking77]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "evals.json"
SEED = 42


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def load(name: str, data_dir: Path) -> list[tuple[str, str]]:
    if name in ("bitext", "oos"):
        return [(r["utterance"], r["intent"]) for r in _rows(data_dir / "bitext_customer_support" / "bitext_intent_train.csv")]
    if name == "banking77":
        return [(r["text"], r["category"]) for r in _rows(data_dir / "banking77" / "banking77_train.csv")]
    if name == "priority":
        return [(f"{r['subject']}\n{r['body']}".replace("\\n", "\n").strip(), r["priority"])
                for r in _rows(data_dir / "support_tickets_multilang" / "tickets_dev.csv") if r["priority"]]
    raise SystemExit(f"unknown dataset {name!r}")


def out_of_scope(data_dir: Path) -> list[str]:
    import random

    tickets = [text for text, _ in load("priority", data_dir)]
    return random.Random(SEED).sample(tickets, 400)


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def run(name: str, data_dir: Path, folder: Path) -> dict[str, object]:
    rows = load(name, data_dir)
    texts, labels = [t for t, _ in rows], [lab for _, lab in rows]
    x_train, x_test, y_train, y_test = train_test_split(texts, labels, test_size=0.2, stratify=labels,
                                                        random_state=SEED)
    test = list(zip(x_test, y_test, strict=True))
    if name == "oos":
        test += [(t, "other") for t in out_of_scope(data_dir)]
    write(folder / f"{name}-train.csv", list(zip(x_train, y_train, strict=True)))
    write(folder / f"{name}-test.csv", test)
    report_path = folder / f"{name}-report.json"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "triage_eval", "--test", str(folder / f"{name}-test.csv"),
         "--train", str(folder / f"{name}-train.csv"), "--text-column", "text", "--label-column", "label",
         "--tier", "local", "--no-save", "--output", str(report_path)],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    report = json.loads(report_path.read_text())
    figures: dict[str, object] = {
        "n_train": len(x_train), "n_test": report["n"], "macro_f1": report["macro_f1"],
        "accuracy": report["accuracy"], "other_rate": report["other_rate"],
        "train_seconds": report["train"]["seconds"], "classify_per_second": report["classify_per_second"],
        "latency_p50_ms": report["latency_ms"]["p50"], "latency_p95_ms": report["latency_ms"]["p95"],
        "wall_seconds": round(time.perf_counter() - started, 1), "model": report["model"],
    }
    if name == "oos":
        other = report["per_label"]["other"]
        figures["oos_labelled_other"] = other["recall"]
        in_scope = [v for k, v in report["per_label"].items() if k != "other"]
        figures["in_scope_macro_f1"] = round(sum(v["f1"] for v in in_scope) / len(in_scope), 4)
        matrix, names = report["confusion"]["matrix"], report["confusion"]["labels"]
        column = names.index("other")
        inside = [row for label, row in zip(names, matrix, strict=False) if label != "other"]
        figures["in_scope_labelled_other"] = round(sum(r[column] for r in inside) / max(sum(map(sum, inside)), 1), 4)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--only", default="bitext,banking77,oos,priority")
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", "postgres:///unused")  # --no-save: the command stores nothing
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="tierdesk-evals-") as tmp:
        for name in args.only.split(","):
            print(f"{name}: training and scoring …", file=sys.stderr, flush=True)
            results[name] = run(name, args.data_dir, Path(tmp))
            figures = results[name]
            before = previous.get(name, {})
            line = ", ".join(
                f"{k} {v}" + (f" (was {before[k]})" if k in before and before[k] != v and k != "model" else "")
                for k, v in figures.items()
            )
            print(f"{name}: {line}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**previous, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
