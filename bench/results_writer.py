"""Turns the logs of one deploy/gpu/run_gpu.sh run into bench/results/<date>-<device>.{csv,md}.

Usage: python3 bench/results_writer.py LOG_DIR DEVICE_NAME COMMAND [OUT_DIR]
Reads sfd-*.log (sfd_bench RESULT/PLAN lines), peers.log (peers_baselines RESULT lines) and
parity.json; writes one CSV row per run (sfd and peers alike, same columns as
../shared/reference: mode,model,params,batch,seq,step_s,tokens_s,TFLOPS,peak_gpu_GiB,
peak_rss_GiB) plus a markdown report with ratios to SlideFormer's published runtime and to the
same-run PyTorch peers.
"""
import csv, datetime, glob, json, os, sys

SLIDEFORMER = {  # ../shared/reference/slideformer-h200-2026-11-21.csv (tokens/s, GPU GB)
    ("llama-3b", 8): (5073.8, 4.3), ("llama-3b", 32): (19083.9, 7.2),
    ("llama-8b", 16): (4861.1, 7.3), ("llama-8b", 64): (10349.6, 16.7),
}

def parse_result(line):
    f = line.strip().split(",")
    return dict(mode=f[1], model=f[2], params=f[3], batch=int(f[4]), seq=int(f[5]), step_s=float(f[6]),
                tokens_s=float(f[7]), tflops=float(f[8]), peak_gpu_gib=float(f[9]), peak_rss_gib=float(f[10]),
                extra=";".join(f[11:]))

def main(log_dir, device, command, out_dir="bench/results"):
    rows, plans = [], {}
    for path in sorted(glob.glob(os.path.join(log_dir, "sfd-*.log"))):
        for line in open(path):
            if line.startswith("RESULT,"):
                r = parse_result(line); r["log"] = os.path.basename(path); rows.append(r)
            elif line.startswith("PLAN,"):
                plans[os.path.basename(path)] = line[5:].strip()
    peers = []
    if os.path.exists(os.path.join(log_dir, "peers.log")):
        for line in open(os.path.join(log_dir, "peers.log")):
            if line.startswith("RESULT,") and "FAILED" not in line:
                peers.append(parse_result(line))
            elif line.startswith("RESULT,"):
                peers.append(dict(mode=line.split(",")[1], model=line.split(",")[2], failed=line.strip()))
    date = datetime.date.today().isoformat()
    dev = device.lower().replace(" ", "-")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"{date}-{dev}")
    cols = ["mode", "model", "params", "batch", "seq", "step_s", "tokens_s", "tflops", "peak_gpu_gib", "peak_rss_gib", "extra"]
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(cols)
        for r in rows + [p for p in peers if "failed" not in p]:
            w.writerow([r.get(c, "") for c in cols])
    md = [f"# sfd benchmark — {date} — {device}", "", f"Command: `{command}`", "",
          "Random-init Llama-architecture models (shapes of ../shared/reference), seq 1024, bf16 compute, "
          "TFLOPS = (6*N_matmul + 6*L*d*seq) * tokens / step time, median of the timed steps. "
          "SlideFormer's figures are its published runtime measured on the same kind of H200 (fixed bar); "
          "PyTorch peers ran in this same run.", "",
          "| run | batch | budget / label | tokens/s | TFLOPS | peak GPU GiB | peak RSS GiB | vs SlideFormer | SlideFormer GPU GB |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = r["model"].rsplit("-b", 1)[0]
        sf = SLIDEFORMER.get((shape, r["batch"]))
        ratio = f"{r['tokens_s'] / sf[0]:.2f}x" if sf else "—"
        md.append(f"| sfd {shape} | {r['batch']} | {r['model']} {r['extra']} | {r['tokens_s']:.0f} | {r['tflops']:.1f} | "
                  f"{r['peak_gpu_gib']:.1f} | {r['peak_rss_gib']:.1f} | {ratio} | {sf[1] if sf else '—'} |")
    for p in peers:
        if "failed" in p:
            md.append(f"| {p['mode']} {p['model']} | | FAILED | | | | | | |"); continue
        md.append(f"| PyTorch {p['mode']} {p['model']} | {p['batch']} | same run | {p['tokens_s']:.0f} | {p['tflops']:.1f} | "
                  f"{p['peak_gpu_gib']:.1f} | {p['peak_rss_gib']:.1f} | | |")
    md += ["", "Plans (what the planner decided before allocating):", ""]
    md += [f"- `{k}`: {v}" for k, v in plans.items()]
    pj = os.path.join(log_dir, "parity.json")
    if os.path.exists(pj):
        p = json.load(open(pj))
        md += ["", "## GPU parity vs transformers AMP (Llama-3.2-1B shape, 20 steps, bs4 x 1024)", "",
               f"- max per-step relative loss difference: {p.get('max_rel_loss_diff'):.5f} (target < 0.02) — "
               f"{'OK' if p.get('loss_parity_ok') else 'FAIL'}",
               f"- sfd's saved HF checkpoint reloaded in transformers: logits relative error "
               f"{p.get('reload_logits_rel_err', float('nan')):.4f}, top-1 agreement {p.get('reload_top1_agreement', 0):.3f}",
               "", "| step | transformers AMP loss | sfd loss |", "|---|---|---|"]
        md += [f"| {i+1} | {a:.5f} | {b:.5f} |" for i, (a, b) in enumerate(zip(p["hf_losses"], p["sfd_losses"]))]
    open(base + ".md", "w").write("\n".join(md) + "\n")
    print(base + ".md")

if __name__ == "__main__":
    main(*sys.argv[1:])
