"""GPU parity of sfd's engine against PyTorch AMP (transformers), run on the GPU machine.

1. Builds a Llama-3.2-1B-shape model (random init, fp32, tied) and saves it with
   save_pretrained, plus 20 steps of token batches with learnable structure (affine bigram
   sequences) in the golden-fixture format.
2. Trains 20 steps with transformers + torch AMP (bf16 autocast, fp32 master, fused AdamW,
   clip 1.0), recording each step's loss.
3. Trains the same 20 steps from the same weights with sfd_bench (CUDA, bf16, 2-slot
   window), which saves its final model as an HF checkpoint and the logits of batch 0 row 0.
4. Checks: per-step loss within 2%; transformers reloads sfd's checkpoint and its fp32 logits
   match sfd's bf16 logits (relative error and top-1 agreement).
Writes parity.json and prints a summary table. Usage: parity_1b.py SFD_BENCH WORKDIR OUT_DIR
"""
import json, math, os, subprocess, sys, time
import torch
from safetensors.torch import save_file, load_file
from transformers import LlamaConfig, LlamaForCausalLM

STEPS, ROWS, SEQ = 20, 4, 1024
HP = dict(lr=3e-4, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.01, max_grad_norm=1.0)

def batches(vocab):
    g = torch.Generator().manual_seed(7)
    ids = torch.empty(STEPS, 1, ROWS, SEQ, dtype=torch.int64)
    v = 32000
    for s in range(STEPS):
        for r in range(ROWS):
            x = int(torch.randint(0, v, (1,), generator=g)); mul = 1 + 2 * int(torch.randint(0, 7, (1,), generator=g)); add = int(torch.randint(0, 101, (1,), generator=g))
            for t in range(SEQ):
                ids[s, 0, r, t] = x; x = (x * mul + add) % v
    return ids

def main(bench, work, out):
    os.makedirs(work, exist_ok=True); os.makedirs(out, exist_ok=True)
    cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                      num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True,
                      max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).float()
    mdir = os.path.join(work, "model"); model.save_pretrained(mdir, safe_serialization=True)
    ids = batches(cfg.vocab_size)
    save_file({"input_ids": ids, "labels": ids.clone()}, os.path.join(work, "batches.safetensors"))
    model = model.cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]), eps=HP["eps"],
                            weight_decay=HP["weight_decay"], fused=True)
    hf_losses = []; t0 = time.time()
    for s in range(STEPS):
        x = ids[s, 0].cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, cfg.vocab_size), x[:, 1:].reshape(-1))
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), HP["max_grad_norm"])
        opt.step(); opt.zero_grad(set_to_none=True); hf_losses.append(loss.item())
    hf_s = time.time() - t0
    del model, opt; torch.cuda.empty_cache()
    sdir = os.path.join(work, "sfd_out"); lpath = os.path.join(work, "sfd_logits.safetensors")
    cmd = [bench, "--model", mdir, "--batches", os.path.join(work, "batches.safetensors"), "--device", "cuda",
           "--dtype", "bf16", "--slots", "2", "--lr", str(HP["lr"]), "--beta2", str(HP["beta2"]),
           "--weight-decay", str(HP["weight_decay"]), "--max-grad-norm", str(HP["max_grad_norm"]),
           "--save", sdir, "--logits-out", lpath, "--label", "llama-1b-parity"]
    t0 = time.time(); r = subprocess.run(cmd, capture_output=True, text=True); sfd_s = time.time() - t0
    print(r.stdout[-4000:], r.stderr[-4000:])
    sfd_losses = [float(l.split(",")[2]) for l in r.stdout.splitlines() if l.startswith("STEP,") and not l.startswith("STEP,step")]
    rel = [abs(a - b) / b for a, b in zip(sfd_losses, hf_losses)]
    res = dict(hf_losses=hf_losses, sfd_losses=sfd_losses, max_rel_loss_diff=max(rel) if rel else None,
               loss_parity_ok=bool(rel) and len(rel) == STEPS and max(rel) < 0.02, hf_seconds=hf_s, sfd_seconds=sfd_s)
    # Reload sfd's checkpoint in transformers; compare logits with sfd's own.
    if os.path.exists(lpath):
        m2 = LlamaForCausalLM.from_pretrained(sdir, dtype=torch.float32).cuda().eval()
        ref = load_file(lpath); x = ref["input_ids"].cuda().unsqueeze(0)
        with torch.no_grad():
            hl = m2(input_ids=x).logits[0].float().cpu()
        sl = ref["logits"]
        res["reload_logits_rel_err"] = float((hl - sl).norm() / hl.norm())
        res["reload_top1_agreement"] = float((hl.argmax(-1) == sl.argmax(-1)).float().mean())
        res["reload_ok"] = res["reload_logits_rel_err"] < 3e-2
    json.dump(res, open(os.path.join(out, "parity.json"), "w"), indent=1)
    print("PARITY", json.dumps({k: v for k, v in res.items() if not k.endswith("losses")}))
    for s, (a, b) in enumerate(zip(hf_losses, sfd_losses)):
        print(f"PARITY_STEP,{s+1},{a:.5f},{b:.5f},{abs(a-b)/b*100:.3f}%")

if __name__ == "__main__":
    main(*sys.argv[1:4])
