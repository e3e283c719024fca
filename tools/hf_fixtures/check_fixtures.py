#!/usr/bin/env python3
"""Reloads every fixture in tests/fixtures/hf with transformers and checks that it reproduces the
stored logits, hidden states and greedy generations. Then shows that the fixtures can fail: it
runs deliberately wrong forwards ("mutants": mistakes an engine could make) and demands that each
moves the logits far beyond any test tolerance.

Run with the venv from setup_venv.sh:  tools/.venv-hf/bin/python tools/hf_fixtures/check_fixtures.py
Exit status 0 only if every check passes.
"""

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import NemotronHForCausalLM
from transformers.models.nemotron_h import modeling_nemotron_h as mnh

import nemotron_variants
from make_fixtures import greedy_generate, load_saved

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "hf"
# Same versions and one thread reproduce the logits bit for bit; another torch build or CPU may
# reorder fp32 sums. 1e-5 absolute on logits of std ~2 is a few hundred ulps: reordering only.
REPRO_TOL = 1e-5
# A mutant must move some logit by at least this, or the fixture could not tell it from right.
# 100x the tolerance a C++ fp32 engine test would reasonably use (1e-4 .. 1e-3).
MUTANT_MIN_EFFECT = 1e-2


@contextlib.contextmanager
def patched(obj, attr, value):
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        setattr(obj, attr, old)


def mutants(model):
    """Yield (name, context manager) for each mistake applicable to this model's config."""
    cfg = model.config
    H, G = cfg.mamba_num_heads, cfg.n_groups
    has_mamba = "linear_attention" in cfg.layers_block_type
    has_attn = "full_attention" in cfg.layers_block_type
    scan = mnh.mamba2_chunk_scan

    if has_mamba and 1 < G < H:
        def bc_tiled(hidden_states, dt, A, B, C, chunk_size, **kw):
            heads = torch.arange(H) % G  # wrong: head h -> group h % G instead of h // (H / G)
            return scan(hidden_states, dt, A, B[:, :, heads], C[:, :, heads], chunk_size, **kw)
        yield "B/C groups tiled instead of repeat-interleaved", patched(mnh, "mamba2_chunk_scan", bc_tiled)

    if has_mamba:
        def no_carry(hidden_states, dt, A, B, C, chunk_size, **kw):
            L = hidden_states.shape[1]
            parts = [scan(hidden_states[:, s:s + chunk_size], dt[:, s:s + chunk_size], A,
                          B[:, s:s + chunk_size], C[:, s:s + chunk_size], chunk_size, **kw)
                     for s in range(0, L, chunk_size)]
            return torch.cat(parts, dim=1)
        yield "SSM state not carried across chunks", patched(mnh, "mamba2_chunk_scan", no_carry)

        def no_d(hidden_states, dt, A, B, C, chunk_size, **kw):
            kw["D"] = None
            return scan(hidden_states, dt, A, B, C, chunk_size, **kw)
        yield "D skip connection dropped", patched(mnh, "mamba2_chunk_scan", no_d)

        def dt_no_bias(hidden_states, dt, A, B, C, chunk_size, **kw):
            kw["dt_bias"] = None
            return scan(hidden_states, dt, A, B, C, chunk_size, **kw)
        yield "dt_bias not added", patched(mnh, "mamba2_chunk_scan", dt_no_bias)

        stock_norm = mnh.NemotronHRMSNormGated.forward

        def norm_then_gate(self, hidden_states, gate=None):
            return stock_norm(self, hidden_states) * torch.nn.functional.silu(gate.float())
        yield "gated norm: normalise then gate", patched(mnh.NemotronHRMSNormGated, "forward", norm_then_gate)

        if G > 1:
            def ungrouped(self, hidden_states, gate=None):
                saved = self.group_size
                self.group_size = hidden_states.shape[-1]
                try:
                    return stock_norm(self, hidden_states, gate)
                finally:
                    self.group_size = saved
            yield "gated norm over all of d_inner, not per group", patched(mnh.NemotronHRMSNormGated, "forward", ungrouped)

        stock_conv = mnh.causal_conv1d_fn

        def conv_no_act(hidden_states, weight, bias=None, activation=None, **kw):
            return stock_conv(hidden_states, weight, bias, activation=None, **kw)
        yield "no SiLU after the conv", patched(mnh, "causal_conv1d_fn", conv_no_act)

    if has_attn and 1 < cfg.num_key_value_heads < cfg.num_attention_heads:
        def kv_tiled(hidden_states, n_rep):
            return hidden_states.repeat(1, n_rep, 1, 1)  # wrong: q head h -> kv head h % n_kv
        yield "GQA kv heads tiled instead of repeat-interleaved", patched(mnh, "repeat_kv", kv_tiled)

    if has_attn:
        stock_eager = mnh.eager_attention_forward

        def not_causal(module, query, key, value, attention_mask, scaling, **kw):
            return stock_eager(module, query, key, value, None, scaling, **kw)
        yield "attention not causal", patched(mnh, "eager_attention_forward", not_causal)

    if getattr(cfg, "position_embedding_type", "none") == "rope":
        yield "rope missing", patched(cfg, "position_embedding_type", "none")
        yield "rope over the whole head_dim", patched(cfg, "partial_rotary_factor", 1.0)

    if cfg.mlp_hidden_act == "silu":
        def swapped(self, x):
            return self.down_proj(torch.nn.functional.silu(self.up_proj(x)) * self.gate_proj(x))
        yield "SwiGLU gate/up swapped", patched(nemotron_variants.NemotronHSwiGLUMLP, "forward", swapped)
    elif "mlp" in cfg.layers_block_type:
        def plain_relu(self, x):
            return self.down_proj(torch.relu(self.up_proj(x)))
        yield "MLP relu instead of relu^2", patched(mnh.NemotronHMLP, "forward", plain_relu)


def drop_rope_cache(model):
    for m in model.modules():
        if hasattr(m, "_ringscan_rope"):
            del m._ringscan_rope


@torch.no_grad()
def check_fixture(d):
    meta = json.loads((d / "cases.json").read_text())
    gen = json.loads((d / "generate.json").read_text())
    model = NemotronHForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    failures = []

    def logits(ids):
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()

    worst = 0.0
    for case in meta["cases"]:
        want = np.load(d / case["logits"])
        if want.dtype != np.float32 or want.shape != (case["length"], model.config.vocab_size):
            failures.append(f"{case['logits']}: dtype {want.dtype} shape {want.shape}")
            continue
        worst = max(worst, float(np.abs(logits(case["input_ids"]) - want).max()))
    if worst > REPRO_TOL:
        failures.append(f"logits differ from the stored ones by up to {worst:.3g}")

    h = meta["hidden"]
    ids = next(c["input_ids"] for c in meta["cases"] if c["name"] == h["case"])
    captured = {}
    hook = model.model.layers[-1].register_forward_hook(lambda m, a, o: captured.__setitem__("x", o))
    out = model(input_ids=torch.tensor([ids]), use_cache=False, output_hidden_states=True)
    hook.remove()
    got_hidden = torch.stack([x[0] for x in out.hidden_states]).numpy()
    want_hidden = np.load(d / h["file"])
    if want_hidden.shape != tuple(h["shape"]) or np.abs(got_hidden - want_hidden).max() > REPRO_TOL:
        failures.append("hidden states differ")
    want_last = np.load(d / h["last_block_file"])
    if np.abs(captured["x"][0].numpy() - want_last).max() > REPRO_TOL:
        failures.append("last block output differs")

    for g in gen["generations"]:
        new, _ = greedy_generate(model, g["prompt_ids"], model.config)
        if new != g["new_ids"]:
            failures.append(f"greedy generation from a {len(g['prompt_ids'])}-token prompt differs")

    # HF's torch path clamps dt below at time_step_min; kernels and ringscan use time_step_limit
    # (0, inf). The fixtures keep dt away from that edge, so both readings give identical logits.
    longest = max(meta["cases"], key=lambda c: c["length"])
    want = np.load(d / longest["logits"])
    mixers = [m for m in model.modules() if isinstance(m, mnh.NemotronHMamba2Mixer)]
    for m in mixers:
        m.time_step_limit = (0.0, float("inf"))
    if not np.array_equal(logits(longest["input_ids"]), want):
        failures.append("logits depend on the time_step_min clamp")
    for m in mixers:
        m.time_step_limit = (model.config.time_step_min, float("inf"))

    # Mutants, on the longest case.
    effects = []
    for name, ctx in mutants(model):
        drop_rope_cache(model)
        with ctx:
            effect = float(np.abs(logits(longest["input_ids"]) - want).max())
        drop_rope_cache(model)
        effects.append((name, effect))
        if effect < MUTANT_MIN_EFFECT:
            failures.append(f"mutant '{name}' moves logits only {effect:.3g}: the fixture cannot catch it")
    # The model must be intact after the mutants.
    if float(np.abs(logits(longest["input_ids"]) - want).max()) > REPRO_TOL:
        failures.append("model changed after running the mutants")
    return worst, effects, failures


@torch.no_grad()
def check_bf16_fixture(d):
    """A bf16 fixture (cases_bf16.json): its fp32 reference reproduces like an fp32 fixture's
    logits; HF's bf16 logits, rounded at every layer, only to a quarter of their own distance from
    the reference (another CPU may round some bf16 intermediate the other way)."""
    meta = json.loads((d / "cases_bf16.json").read_text())
    worst, failures = 0.0, []
    for dtype, key in ((torch.float32, "logits"), (torch.bfloat16, "hf_bf16_logits")):
        model = load_saved(d, dtype)
        for case in meta["cases"]:
            got = model(input_ids=torch.tensor([case["input_ids"]]), use_cache=False).logits[0].float().numpy()
            diff = float(np.abs(got - np.load(d / case[key])).max())
            tol = REPRO_TOL if key == "logits" else 0.25 * case["hf_bf16_max_abs_diff"]
            worst = max(worst, diff) if key == "logits" else worst
            if diff > tol:
                failures.append(f"{case[key]}: reproduced to {diff:.3g}, not within {tol:.3g}")
    return worst, [], failures


def main():
    nemotron_variants.assert_torch_paths()
    nemotron_variants.install()
    torch.set_num_threads(1)
    dirs = sorted(p for p in FIXTURES.iterdir() if (p / "cases.json").exists() or (p / "cases_bf16.json").exists())
    if not dirs:
        print(f"no fixtures under {FIXTURES}")
        return 1
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    n_fail = 0
    for d in dirs:
        worst, effects, failures = (check_fixture if (d / "cases.json").exists() else check_bf16_fixture)(d)
        status = "FAIL" if failures else "ok"
        print(f"{d.name:16s} {status}  reproduced logits max|diff| {worst:.3g}")
        for name, effect in effects:
            print(f"    mutant {name:48s} max|dlogit| {effect:8.3f}")
        for f in failures:
            print(f"    FAILURE: {f}")
        n_fail += bool(failures)
    print(f"{len(dirs) - n_fail} passed, {n_fail} failed")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
