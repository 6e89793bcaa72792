#!/usr/bin/env python3
"""Summarises a Kineto/Chrome trace written by `sfd_bench_trace --trace FILE`: GPU kernel time
by class (GEMM, attention, elementwise, reductions, copies, ...) and the top kernels, so that
bench/NOTES.md can say where a step's device time goes.

  trace_summary.py TRACE.json [--top 25]
"""
import argparse
import collections
import json
import re

CLASSES = [  # first match wins
    ("gemm", re.compile(r"gemm|xmma|cutlass|nvjet|cublas|sm90_", re.I)),
    ("attention", re.compile(r"flash|fmha|attention|sdpa", re.I)),
    ("sfd fused", re.compile(r"sfd_|fused_rms|fused_swiglu|fused_rope", re.I)),
    ("reduction", re.compile(r"reduce|norm_kernel|sum_kernel", re.I)),
    ("index/embedding", re.compile(r"index|embedding|scatter|gather", re.I)),
    ("cat/copy", re.compile(r"cat|copy|transpose|permute", re.I)),
    ("elementwise", re.compile(r"elementwise|vectorized|unrolled|pointwise", re.I)),
]


def classify(name):
    for cls, pat in CLASSES:
        if pat.search(name):
            return cls
    return "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    with open(args.trace) as f:
        events = json.load(f).get("traceEvents", [])
    kernels = [e for e in events if e.get("ph") == "X" and e.get("cat") == "kernel"]
    copies = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("gpu_memcpy", "gpu_memset")]
    if not kernels:
        print("no kernel events in", args.trace)
        return
    start = min(e["ts"] for e in kernels)
    end = max(e["ts"] + e.get("dur", 0) for e in kernels)
    total = sum(e.get("dur", 0) for e in kernels)
    by_class = collections.Counter()
    by_name = collections.Counter()
    count = collections.Counter()
    for e in kernels:
        by_class[classify(e["name"])] += e.get("dur", 0)
        short = e["name"][:110]
        by_name[short] += e.get("dur", 0)
        count[short] += 1
    span = end - start
    print(f"kernels: {len(kernels)}, busy {total/1e3:.1f} ms of a {span/1e3:.1f} ms span "
          f"({100*total/max(span,1):.1f}% of the span has a kernel running, summed over streams)")
    for kind in ("gpu_memcpy", "gpu_memset"):
        ev = [e for e in copies if e.get("cat") == kind]
        if ev:
            print(f"{kind}: {len(ev)} ops, {sum(e.get('dur',0) for e in ev)/1e3:.1f} ms (on copy engines)")
    print("\n| class | ms | share of kernel time |\n|---|---|---|")
    for cls, t in by_class.most_common():
        print(f"| {cls} | {t/1e3:.1f} | {100*t/total:.1f}% |")
    print(f"\n| top kernels | calls | ms | share |\n|---|---|---|---|")
    for name, t in by_name.most_common(args.top):
        print(f"| `{name}` | {count[name]} | {t/1e3:.1f} | {100*t/total:.1f}% |")


if __name__ == "__main__":
    main()
