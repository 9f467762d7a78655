"""Drift detection on synthetic shifts: PSI per task as shifted texts replace normal ones.

    python bench/bench_drift.py [--window 1000] [--tasks sentiment,moderation,...]

For each bundled task and each shift of bench/drift_corpus.py (`long`, `language`,
`negative`), a fresh monitor with the bundled reference (as a service builds it) is fed
`window` in-distribution texts (held out: another seed than the reference's), then
1.5 x `window` shifted texts, in batches of 50. It prints the highest feature PSI at
every tenth of a window and, per shift, after how many shifted texts the first feature
crossed the alert's 0.2. The models run in process (no HTTP: detection, not speed, is
measured); each text is predicted once and its prediction reused by every shift.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.drift_corpus import SHIFTS, in_distribution, shifted  # noqa: E402
from bench.make_drift_reference import models, predict  # noqa: E402
from ml_services.drift import DriftMonitor, bundled_reference, load_references  # noqa: E402

THRESHOLD = 0.2  # the MlDriftHigh alert's
BATCH = 50


def run(task: str, model: Any, window: int, normal: list[str],
        shifts: dict[str, list[str]]) -> None:
    entry = load_references().get(task)
    probe = model.drift_probe(entry)
    reference = bundled_reference(entry, probe)
    assert reference is not None, f"{task}: the bundled reference does not apply"
    started = time.perf_counter()
    normal_out = predict(model, normal)
    shift_out = {k: predict(model, texts) for k, texts in shifts.items()}
    print(f"\n{task}: features {[f.name for f in probe.features]}, window {window}, "
          f"predicted in {time.perf_counter() - started:.1f} s")
    for kind, texts in shifts.items():
        monitor = DriftMonitor(probe, window, min_texts=window // 5, reference=reference)
        trace, crossed = [], None
        feed = [(t, p, False) for t, p in zip(normal, normal_out, strict=True)] + \
               [(t, p, True) for t, p in zip(texts, shift_out[kind], strict=True)]
        for i in range(0, len(feed), BATCH):
            part = feed[i:i + BATCH]
            monitor.observe([t for t, _, _ in part], [p for _, p, _ in part])
            done = i + len(part)
            values = monitor.psi() or {}
            worst = max(values.items(), key=lambda kv: kv[1], default=("-", 0.0))
            after = done - len(normal)
            if after > 0 and crossed is None and worst[1] > THRESHOLD:
                crossed = (after, worst[0])
            if done % (window // 10) == 0:
                trace.append(f"{worst[1]:.2f}")
        before = DriftMonitor(probe, window, min_texts=1, reference=reference)
        before.observe(normal, normal_out)
        at_shift = before.psi() or {}
        print(f"  {kind:8s} in-distribution PSI "
              + " ".join(f"{k}={v:.3f}" for k, v in at_shift.items()))
        end = monitor.psi() or {}
        print(f"  {'':8s} after the shift     "
              + " ".join(f"{k}={v:.3f}" for k, v in end.items()))
        print(f"  {'':8s} max PSI every {window // 10} texts: {' '.join(trace)}")
        print(f"  {'':8s} crossed {THRESHOLD}: "
              + (f"after {crossed[0]} shifted texts ({crossed[1]})" if crossed else "never"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--tasks", default="sentiment,moderation,embedding,intent")
    args = parser.parse_args()
    wanted = args.tasks.split(",")
    normal = in_distribution(args.window, seed=1)
    shifts = {k: shifted(k, args.window * 3 // 2, seed=2) for k in SHIFTS}
    for task, model in models().items():
        if task in wanted:
            run(task, model, args.window, normal, shifts)


if __name__ == "__main__":
    main()
