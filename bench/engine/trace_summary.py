#!/usr/bin/env python3
"""Summarises a Kineto/Chrome trace written by `sfd_bench_trace --trace FILE`: GPU kernel time
by class (GEMM, attention, elementwise, reductions, copies, ...) and the top kernels, so that
bench/NOTES.md can say where a step's device time goes.

  trace_summary.py TRACE.json [--top 25] [--gaps 25]

The gap table lists the longest stretches with no kernel running on any stream, with the kernel
before and after, the copies in flight and the host runtime calls that overlap the stretch (a
long cudaStreamSynchronize/cudaEventSynchronize/cudaMalloc there names who held the GPU idle).
"""
import argparse
import bisect
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
    ap.add_argument("--gaps", type=int, default=25)
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
    gaps_table(events, kernels, args.gaps)


def overlap(a0, a1, b0, b1):
    return max(0, min(a1, b1) - max(a0, b0))


def gaps_table(events, kernels, top):
    """Idle stretches of the union of all kernel intervals, and what the host was doing."""
    iv = sorted((e["ts"], e["ts"] + e.get("dur", 0), e["name"]) for e in kernels)
    gaps = []  # (start, end, name before, name after)
    cur_end, cur_name = iv[0][1], iv[0][2]
    for s, e, n in iv[1:]:
        if s > cur_end:
            gaps.append((cur_end, s, cur_name, n))
        if e > cur_end:
            cur_end, cur_name = e, n
    start = iv[0][0]
    runtime = sorted((e for e in events if e.get("ph") == "X" and e.get("cat") in ("cuda_runtime", "cuda_driver")),
                     key=lambda e: e["ts"])
    copies = sorted((e for e in events if e.get("ph") == "X" and e.get("cat") == "gpu_memcpy"),
                    key=lambda e: e["ts"])
    rt_ts = [e["ts"] for e in runtime]
    cp_ts = [e["ts"] for e in copies]
    rt_max = max((e.get("dur", 0) for e in runtime), default=0)
    cp_max = max((e.get("dur", 0) for e in copies), default=0)

    def near(lst, ts, maxdur, a, b):  # events of `lst` (sorted by start) that may overlap [a, b)
        return lst[bisect.bisect_left(ts, a - maxdur):bisect.bisect_right(ts, b)]

    total = sum(b - a for a, b, _, _ in gaps)
    print(f"\nidle (no kernel on any stream): {total/1e3:.1f} ms in {len(gaps)} gaps; "
          f"> 1 ms: {sum(b-a for a,b,_,_ in gaps if b-a>1000)/1e3:.1f} ms, "
          f"0.1-1 ms: {sum(b-a for a,b,_,_ in gaps if 100<b-a<=1000)/1e3:.1f} ms, "
          f"< 0.1 ms: {sum(b-a for a,b,_,_ in gaps if b-a<=100)/1e3:.1f} ms")
    # Idle time by what overlaps it: a copy in flight, a blocking host call, or neither.
    blocking = re.compile(r"Synchronize|Malloc|Free|HostAlloc|HostRegister|cudaMemcpy$|cudaMemcpy[^A]", re.I)
    by_call = collections.Counter()
    copy_ms = 0.0
    for a, b, _, _ in gaps:
        copy_ms += max((overlap(a, b, c["ts"], c["ts"] + c.get("dur", 0))
                        for c in near(copies, cp_ts, cp_max, a, b)), default=0)
        for r in near(runtime, rt_ts, rt_max, a, b):
            if blocking.search(r["name"]):
                o = overlap(a, b, r["ts"], r["ts"] + r.get("dur", 0))
                if o:
                    by_call[r["name"]] += o
    print(f"idle time with a copy in flight: {copy_ms/1e3:.1f} ms; with a blocking host call: "
          + ", ".join(f"{k} {v/1e3:.1f} ms" for k, v in by_call.most_common(6)))
    calls = collections.Counter()
    ncalls = collections.Counter()
    for r in runtime:
        calls[r["name"]] += r.get("dur", 0)
        ncalls[r["name"]] += 1
    print("host runtime calls by total time: "
          + ", ".join(f"{k} {ncalls[k]}x {v/1e3:.1f} ms" for k, v in calls.most_common(8)))
    print(f"\n| gap at ms | ms | before | after | copies in flight | host calls in it |\n|---|---|---|---|---|---|")
    for a, b, before, after in sorted(gaps, key=lambda g: g[0] - g[1])[:top]:
        inflight = [c["name"][:20] for c in near(copies, cp_ts, cp_max, a, b) if overlap(a, b, c["ts"], c["ts"] + c.get("dur", 0))]
        host = collections.Counter(r["name"] for r in near(runtime, rt_ts, rt_max, a, b)
                                   if overlap(a, b, r["ts"], r["ts"] + r.get("dur", 0)) > 0.3 * (b - a))
        print(f"| {(a-start)/1e3:.1f} | {(b-a)/1e3:.2f} | `{before[:40]}` | `{after[:40]}` | "
              f"{len(inflight)} {inflight[0] if inflight else ''} | "
              + " ".join(f"{k}x{v}" for k, v in host.most_common(3)) + " |")


if __name__ == "__main__":
    main()
