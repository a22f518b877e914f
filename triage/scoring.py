"""How right a set of predictions is: the scores every eval report, model version and the learning page share.
Pure functions over labels and confidences, so the training, the evals and the desk's figures agree."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from triage.routing import OTHER_INTENT


def report_scores(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the labels the set holds, per-label scores and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = sorted(set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    extra = sorted(set(predicted) - set(labels) - {""})
    matrix_labels = labels + extra + ([""] if "" in predicted else [])
    matrix = confusion_matrix(truth, predicted, labels=matrix_labels)
    return {
        "n": len(truth),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "per_label": {
            label: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                    "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion": {"labels": [label or "(failed)" for label in matrix_labels], "matrix": matrix.tolist()},
        "other_rate": round(sum(p == OTHER_INTENT for p in predicted) / len(predicted), 4),
    }


# Confidence bands shown on the learning page and in eval reports: [lower, upper) except the last.
CONFIDENCE_BANDS = (0.0, 0.5, 0.7, 0.8, 0.9, 1.0)
ECE_BINS = 10


def calibration_report(truth: list[str], predicted: list[str], confidences: list[float]) -> dict[str, Any]:
    """Whether stated confidence means what it says: accuracy per confidence band, and the expected
    calibration error (over 10 equal-width bins, the share-weighted gap between mean confidence and accuracy)."""
    conf = np.asarray(confidences, dtype=float)
    right = np.asarray([t == p for t, p in zip(truth, predicted, strict=True)], dtype=float)
    bands = []
    for low, high in itertools.pairwise(CONFIDENCE_BANDS):
        inside = (conf >= low) & ((conf < high) if high < 1.0 else (conf <= high))
        n = int(inside.sum())
        bands.append({"low": low, "high": high, "n": n,
                      "accuracy": round(float(right[inside].mean()), 4) if n else None,
                      "mean_confidence": round(float(conf[inside].mean()), 4) if n else None})
    ece = 0.0
    for i in range(ECE_BINS):
        inside = (conf > i / ECE_BINS) & (conf <= (i + 1) / ECE_BINS) if i else (conf <= 1 / ECE_BINS)
        if inside.any():
            ece += inside.mean() * abs(conf[inside].mean() - right[inside].mean())
    return {"ece": round(float(ece), 4), "bands": bands, "n": len(truth)}
