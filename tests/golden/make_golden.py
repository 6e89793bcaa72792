"""Golden data for sfd's engine, made by the outside oracle (HF transformers + torch.optim.AdamW).

Run on a machine with torch + transformers (the GPU machine): for each tiny model family it
builds a random model, saves it with save_pretrained (fp32 safetensors), then trains 10 AdamW
steps in fp32 on fixed token batches with gradient accumulation (token-weighted loss over the
whole step), exact global-norm clipping and a warmup+cosine schedule, and writes:
  <out>/<name>/model/            config.json + model.safetensors (initial weights)
  <out>/<name>/batches.safetensors  input_ids, labels  int64 [steps, accum, rows, seq]
                                    (labels unshifted, HF convention, -100 = ignored)
  <out>/<name>/logits.safetensors   logits fp32 [rows, seq, vocab] of step 0 / micro-batch 0
  <out>/<name>/final.safetensors    every parameter after the last step (fp32)
  <out>/<name>/expected.json        hyper-parameters, per-step loss / grad norm (pre-clip) / lr
Usage: python3 make_golden.py OUT_DIR
"""
import json, math, os, sys
import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM,
                          get_cosine_schedule_with_warmup)

STEPS, ACCUM, ROWS, SEQ = 10, 2, 2, 16
HYPER = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, max_grad_norm=0.5,
             warmup_steps=3, total_steps=STEPS, schedule="cosine")
COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-5, initializer_range=0.1, bos_token_id=1, eos_token_id=2)

FAMILIES = {
    "llama31": (LlamaConfig, LlamaForCausalLM, dict(
        rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=32))),
    "llama_tied_bias": (LlamaConfig, LlamaForCausalLM, dict(
        rope_theta=10000.0, tie_word_embeddings=True, attention_bias=True, mlp_bias=True)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(rope_theta=1000000.0, tie_word_embeddings=True)),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(rope_theta=1000000.0, head_dim=24,
                                                  tie_word_embeddings=False)),
    "mistral": (MistralConfig, MistralForCausalLM, dict(rope_theta=10000.0, sliding_window=None,
                                                        tie_word_embeddings=False)),
}


def make_batches(gen, vocab):
    ids = torch.randint(3, vocab, (STEPS, ACCUM, ROWS, SEQ), generator=gen)
    labels = ids.clone()
    # Mask a prompt-like prefix of varying length on row 0, and a middle span on row 1.
    for s in range(STEPS):
        for a in range(ACCUM):
            k = int(torch.randint(0, SEQ // 2, (1,), generator=gen))
            labels[s, a, 0, :k] = -100
            j = int(torch.randint(2, SEQ - 4, (1,), generator=gen))
            labels[s, a, 1, j:j + 3] = -100
    return ids, labels


def perturb(model, gen):
    """Random norms and biases, so that every parameter's use is tested."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))


def run(name, out_root):
    cfg_cls, model_cls, extra = FAMILIES[name]
    cfg = cfg_cls(**COMMON, **extra)
    cfg._attn_implementation = "eager"
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(1234)
    model = model_cls(cfg).float()
    perturb(model, gen)
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    ids, labels = make_batches(gen, cfg.vocab_size)
    save_file({"input_ids": ids.contiguous(), "labels": labels.contiguous()},
              os.path.join(out, "batches.safetensors"))

    opt = torch.optim.AdamW(model.parameters(), lr=HYPER["lr"],
                            betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"],
                            weight_decay=HYPER["weight_decay"], foreach=False)
    sched = get_cosine_schedule_with_warmup(opt, HYPER["warmup_steps"], HYPER["total_steps"])
    losses, norms, lrs = [], [], []
    for s in range(STEPS):
        n_total = int((labels[s][:, :, 1:] != -100).sum())
        loss_sum = 0.0
        lrs.append(opt.param_groups[0]["lr"])
        for a in range(ACCUM):
            logits = model(input_ids=ids[s, a]).logits.float()
            if s == 0 and a == 0:
                save_file({"logits": logits.detach().contiguous()},
                          os.path.join(out, "logits.safetensors"))
            ce = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, cfg.vocab_size), labels[s, a, :, 1:].reshape(-1),
                ignore_index=-100, reduction="sum")
            (ce / n_total).backward()
            loss_sum += ce.item()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), HYPER["max_grad_norm"])
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        losses.append(loss_sum / n_total); norms.append(float(norm))
    final = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        final.pop("lm_head.weight", None)
    save_file(final, os.path.join(out, "final.safetensors"))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(dict(family=name, steps=STEPS, accum=ACCUM, rows=ROWS, seq=SEQ, hyper=HYPER,
                       losses=losses, grad_norms=norms, lrs=lrs,
                       transformers=transformers.__version__, torch=torch.__version__), f, indent=1)
    print(f"{name}: losses {[round(x, 4) for x in losses]} norms {[round(x, 3) for x in norms]}")


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    for fam in FAMILIES:
        run(fam, sys.argv[1])
