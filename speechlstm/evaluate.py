"""Evaluation: WER/CER, closed-set (and 12-class Speech Commands) accuracy with a confusion matrix,
keyword-spotting ROC/DET with false alarms per hour, real-time factor; reports as JSON, Markdown and
PNG plots."""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List

import numpy as np

from .alphabet import DIGIT_WORDS
from .data import COMMAND_CLASSES, read_any
from .errors import ParameterError, error_line
from .kws import NO_SPEECH
from .metrics import (bootstrap_rate_interval, cer, command_class, confusion_matrix, error_counts, mcnemar_exact,
                      paired_bootstrap_difference, wilson_interval)
from .transcribe import word_list

__all__ = ["evaluate", "compare", "evaluate_model_suite", "write_report"]


def _timed_results(rows, run, key):
    """``run(path)[key]`` per row (None where it failed), audio and processing seconds, failures."""
    hyps, audio_s, proc_s, failures = [], 0.0, 0.0, []
    for r in rows:
        t0 = time.perf_counter()
        try:
            res = run(r["path"])
        except Exception as exc:  # one bad file is reported, the evaluation goes on
            failures.append({"path": r["path"], "error": error_line(exc, r["path"])})
            hyps.append(None)
            continue
        proc_s += time.perf_counter() - t0
        audio_s += res["duration"]
        hyps.append(res[key])
    return hyps, audio_s, proc_s, failures


def _kws_curve(model, rows, keywords, threshold_grid):
    """Scores of every detection (threshold 0) vs. ground truth word occurrences."""
    audio_s, pos, dets, failures = 0.0, 0, [], []  # dets: (score, is_true)
    for r in rows:
        words = r["text"].split()
        try:
            found = model.spot(r["path"], keywords, threshold=0.05)
        except Exception as exc:  # one bad file is reported, the evaluation goes on
            failures.append({"path": r["path"], "error": error_line(exc, r["path"])})
            continue
        audio_s += r.get("duration", 0.0) or 0.0
        truth = {k: words.count(k) for k in keywords}
        pos += sum(truth.values())
        best = {}
        for d in sorted(found, key=lambda d: -d["score"]):
            k = d["keyword"]
            if truth.get(k, 0) > best.get(k, 0):
                best[k] = best.get(k, 0) + 1
                dets.append((d["score"], True))
            else:
                dets.append((d["score"], False))
    hours = max(audio_s / 3600.0, 1e-9)
    curve = []
    for th in threshold_grid:
        tp = sum(1 for s, t in dets if t and s >= th)
        fa = sum(1 for s, t in dets if not t and s >= th)
        curve.append({"threshold": float(th), "miss_rate": 1 - tp / max(pos, 1), "false_alarms_per_hour": fa / hours,
                      "false_alarms": fa, "hits": tp})
    ok = [c for c in curve if c["false_alarms_per_hour"] <= 0.5]
    miss_at = min((c["miss_rate"] for c in ok), default=1.0)
    return {"curve": curve, "positives": pos, "audio_hours": hours, "miss_rate_at_0.5_fa_per_hour": miss_at,
            "failures": failures}


def evaluate(model, rows: List[dict], task: str, *, beam_size: int = 16, words=None, keywords=None,
             no_speech: bool = True) -> dict:
    """Evaluate ``model`` on manifest rows for ``task`` in {"transcribe", "classify", "kws"}.

    ``transcribe``: beam search (restricted to ``words`` if given), WER/CER and sentence accuracy.
    ``classify``: closed-set classification by CTC likelihood (:meth:`Model.classify`).  Without
    ``words``, the candidates are the model's vocabulary plus "no speech", mapped to the 12 Speech
    Commands classes (a row's ``label`` if it has one, else its text: the command word, ``_unknown_``
    for any other text, ``_silence_`` for none).  With ``words``, the candidates and classes are
    those words (plus ``_silence_`` when ``no_speech``) and each row's text is its class.
    ``kws``: keyword-spotting miss rate against false alarms per hour over ``keywords``.
    """
    if task not in ("transcribe", "classify", "kws"):
        raise ParameterError(f"task must be transcribe, classify or kws, got {task!r}")
    if not rows:
        raise ParameterError("nothing to evaluate: the data is empty")
    out = {"task": task, "utterances": len(rows), "model": model.name, "model_path": getattr(model, "path", None)}
    if task == "kws":
        kws = keywords or sorted({w for r in rows for w in r["text"].split()})
        out.update(_kws_curve(model, rows, kws, np.linspace(0.05, 1.0, 20)))
        out["keywords"] = list(kws)
        return out
    if task == "classify":
        words = word_list(words)
        hyps, audio_s, proc_s, failures = _timed_results(
            rows, lambda p: model.classify(p, words, no_speech=no_speech), "label")
        hyps = [None if h is None else ("" if h == NO_SPEECH else h) for h in hyps]
    else:
        hyps, audio_s, proc_s, failures = _timed_results(
            rows, lambda p: model.transcribe(p, beam_size=beam_size, words=words), "text")
    keep = [i for i, h in enumerate(hyps) if h is not None]
    refs = [rows[i]["text"] for i in keep]
    hs = [hyps[i] for i in keep]
    right = sum(r == h for r, h in zip(refs, hs))
    word_errors = [error_counts([r], [h], "word") for r, h in zip(refs, hs)]  # (errors, reference words) each
    errs, lens = [e for e, _ in word_errors], [n for _, n in word_errors]
    out.update({"failures": failures, "audio_seconds": round(audio_s, 2), "rtf": proc_s / max(audio_s, 1e-9),
                "wer": sum(errs) / max(sum(lens), 1), "cer": cer(refs, hs),
                "wer_ci95": bootstrap_rate_interval(errs, lens),
                "sentence_accuracy": right / len(hs) if hs else 0.0,
                "sentence_accuracy_ci95": wilson_interval(right, len(hs))})
    # per utterance, for paired comparisons (compare()): word errors / reference words, or for
    # classify a wrong (1) or right (0) class out of 1
    scored = [{"path": rows[i]["path"], "ref": r, "hyp": h, "errors": e, "length": n}
              for i, r, h, e, n in zip(keep, refs, hs, errs, lens)]
    if task == "classify":
        if words is None:
            classes = list(COMMAND_CLASSES)
            truth = [rows[i]["label"] if rows[i].get("label") in classes else command_class(rows[i]["text"], classes[:10])
                     for i in keep]
            pred = [command_class(h, classes[:10]) for h in hs]
        else:
            classes = list(words) + ([NO_SPEECH] if no_speech else [])
            truth = [r or NO_SPEECH for r in refs]
            pred = [h or NO_SPEECH for h in hs]
            outside = sorted({t for t in truth if t not in classes})
            if outside:
                raise ParameterError(f"references outside the candidate words: {outside[:5]}")
        cm = confusion_matrix(truth, pred, classes)
        for u, t, p in zip(scored, truth, pred):
            u.update(errors=int(t != p), length=1)
        out.update({"accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
                    "accuracy_ci95": wilson_interval(int(np.trace(cm)), int(cm.sum())), "classes": classes,
                    "confusion": cm.tolist()})
    out["examples"] = [{"ref": r, "hyp": h} for r, h in zip(refs, hs) if r != h][:20]
    out["per_utterance"] = scored
    return out


def compare(result: dict, baseline: dict) -> dict:
    """Paired comparison of two :func:`evaluate` results (``transcribe`` or ``classify``) over the
    utterances both scored: the difference in error rate (WER, or 1 - accuracy) with a paired
    bootstrap 95 % interval, and how many utterances only one of the two gets right (exact McNemar
    p-value).  On a few hundred clips, two models a point or two apart are usually not told apart;
    this says whether they are.

    Returns
    -------
    dict
        ``{"task", "model", "baseline", "utterances", "metric", "value", "baseline_value",
        "error_rate_difference", "error_rate_difference_ci95", "only_model_right",
        "only_baseline_right", "mcnemar_p"}`` — ``metric`` is "wer" or "accuracy"; a difference below
        zero means the model makes fewer errors than the baseline.
    """
    task = result.get("task")
    if task not in ("transcribe", "classify") or baseline.get("task") != task:
        raise ParameterError(f"compare needs two transcribe or two classify results, got {task!r} and {baseline.get('task')!r}")
    if "per_utterance" not in result or "per_utterance" not in baseline:
        raise ParameterError("compare needs results of evaluate() with their per-utterance scores")
    base = {u["path"]: u for u in baseline["per_utterance"]}
    pairs = [(u, base[u["path"]]) for u in result["per_utterance"] if u["path"] in base]
    if not pairs:
        raise ParameterError("the two results share no utterance")
    differ = [u["path"] for u, v in pairs if u["ref"] != v["ref"] or u["length"] != v["length"]]
    if differ:
        raise ParameterError(f"{differ[0]}: the two results hold different references for it")
    ea = [u["errors"] for u, _ in pairs]
    eb = [v["errors"] for _, v in pairs]
    n = [u["length"] for u, _ in pairs]
    diff, lo, hi = paired_bootstrap_difference(ea, eb, n)
    only_a = sum(1 for u, v in pairs if u["errors"] == 0 < v["errors"])
    only_b = sum(1 for u, v in pairs if v["errors"] == 0 < u["errors"])
    rate_a, rate_b = sum(ea) / max(sum(n), 1), sum(eb) / max(sum(n), 1)
    metric = "wer" if task == "transcribe" else "accuracy"
    value, base_value = (rate_a, rate_b) if metric == "wer" else (1 - rate_a, 1 - rate_b)
    name_a, name_b = result.get("model", ""), baseline.get("model", "")
    if name_a == name_b and result.get("model_path") != baseline.get("model_path"):  # two files of one name
        name_a, name_b = result.get("model_path") or name_a, baseline.get("model_path") or name_b
    return {"task": task, "model": name_a, "baseline": name_b,
            "utterances": len(pairs), "metric": metric, "value": value, "baseline_value": base_value,
            "error_rate_difference": diff, "error_rate_difference_ci95": [lo, hi],
            "only_model_right": only_a, "only_baseline_right": only_b, "mcnemar_p": mcnemar_exact(only_a, only_b)}


def write_report(result: dict, out_dir: str) -> Dict[str, str]:
    """report.json, report.md and PNG plots (confusion matrix or DET curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "report.json"), "md": os.path.join(out_dir, "report.md")}
    with open(paths["json"], "w") as f:
        json.dump(result, f, indent=2)
    lines = [f"# Evaluation: {result['task']} — {result.get('model', '')}", ""]
    for k in ("utterances", "audio_seconds", "wer", "cer", "sentence_accuracy", "accuracy", "rtf",
              "miss_rate_at_0.5_fa_per_hour", "audio_hours", "positives"):
        if k in result:
            v = result[k]
            ci = result.get(f"{k}_ci95")
            extra = f" (95 % interval {ci[0]:.4f}–{ci[1]:.4f})" if ci is not None else ""
            lines.append(f"- **{k}**: {v:.4f}{extra}" if isinstance(v, float) else f"- **{k}**: {v}")
    if result.get("failures"):
        lines += ["", f"{len(result['failures'])} files failed:"] + [f"- {x['error']}" for x in result["failures"]]  # the error names its file
    if "confusion" in result:
        cls = result["classes"]
        lines += ["", "| truth \\ predicted | " + " | ".join(cls) + " |", "|---" * (len(cls) + 1) + "|"]
        for c, row in zip(cls, result["confusion"]):
            lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
        fig, ax = plt.subplots(figsize=(7, 6))
        cm = np.array(result["confusion"], float)
        ax.imshow(cm / np.maximum(cm.sum(1, keepdims=True), 1), cmap="Blues")
        ax.set_xticks(range(len(cls)), cls, rotation=90)
        ax.set_yticks(range(len(cls)), cls)
        ax.set_xlabel("predicted")
        ax.set_ylabel("truth")
        fig.tight_layout()
        paths["confusion"] = os.path.join(out_dir, "confusion.png")
        fig.savefig(paths["confusion"], dpi=80)
        plt.close(fig)
    if "curve" in result:
        c = result["curve"]
        lines += ["", "| threshold | miss rate | false alarms / hour |", "|---|---|---|"]
        lines += [f"| {x['threshold']:.2f} | {x['miss_rate']:.3f} | {x['false_alarms_per_hour']:.2f} |" for x in c]
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot([x["false_alarms_per_hour"] for x in c], [x["miss_rate"] for x in c], marker="o")
        ax.set_xlabel("false alarms per hour")
        ax.set_ylabel("miss rate")
        ax.set_title("keyword spotting DET")
        fig.tight_layout()
        paths["det"] = os.path.join(out_dir, "det.png")
        fig.savefig(paths["det"], dpi=80)
        plt.close(fig)
    c = result.get("comparison")
    if c:
        lo, hi = c["error_rate_difference_ci95"]
        lines += ["", f"Against the baseline `{c['baseline']}` ({c['utterances']} utterances scored by both):", "",
                  f"- **{c['metric']}**: {c['value']:.4f} against {c['baseline_value']:.4f}; error rate "
                  f"{c['error_rate_difference']:+.4f} (95 % interval {lo:+.4f} to {hi:+.4f})",
                  f"- only this model right: {c['only_model_right']}; only the baseline right: "
                  f"{c['only_baseline_right']}; exact McNemar p = {c['mcnemar_p']:.4f}"]
    if result.get("examples"):
        lines += ["", "Errors (first 20):", ""] + [f"- ref `{e['ref']}` → hyp `{e['hyp']}`" for e in result["examples"]]
    with open(paths["md"], "w") as f:
        f.write("\n".join(lines) + "\n")
    return paths


def _rounded(interval) -> List[float]:
    return [round(float(v), 4) for v in interval]


def evaluate_model_suite(model_path: str, manifests: Dict[str, str], out_dir: str) -> dict:
    """The standard held-out suite used for the shipped model; returns headline metrics."""
    from .model import load_model

    model = load_model(model_path)
    metrics = {}
    jobs = [("fsdd_digit_accuracy", "test_fsdd", "transcribe"), ("sc_v2_12class_accuracy", "test_sc", "classify"),
            ("sc_sample_12class_accuracy", "test_sample", "classify"), ("synth_sequences_wer", "test_synth", "transcribe")]
    for name, key, task in jobs:
        if key not in manifests:
            continue
        res = evaluate(model, read_any(manifests[key]), task)
        write_report(res, os.path.join(out_dir, key))
        metric = "accuracy" if task == "classify" else ("sentence_accuracy" if key == "test_fsdd" else "wer")
        metrics[name] = res[metric]
        metrics[f"{name}_ci95"] = _rounded(res[f"{metric}_ci95"])
        metrics[f"{key}_utterances"] = res["utterances"]
        metrics[f"{key}_rtf"] = round(res["rtf"], 5)
    if "test_fsdd" in manifests:  # the same clips decoded with a digits-only word list, and classified
        fsdd = read_any(manifests["test_fsdd"])
        res = evaluate(model, fsdd, "transcribe", words=DIGIT_WORDS)
        write_report(res, os.path.join(out_dir, "test_fsdd_digits"))
        metrics["fsdd_digit_accuracy_digit_words"] = res["sentence_accuracy"]
        metrics["fsdd_digit_accuracy_digit_words_ci95"] = _rounded(res["sentence_accuracy_ci95"])
        single = [r for r in fsdd if r["text"] in DIGIT_WORDS]
        if single:  # closed-set: which of the ten digits (clips holding one digit word)
            res = evaluate(model, single, "classify", words=DIGIT_WORDS, no_speech=False)
            write_report(res, os.path.join(out_dir, "test_fsdd_classify"))
            metrics["fsdd_digit_accuracy_classify"] = res["accuracy"]
            metrics["fsdd_digit_accuracy_classify_ci95"] = _rounded(res["accuracy_ci95"])
            metrics["test_fsdd_classify_utterances"] = res["utterances"]
    return metrics
