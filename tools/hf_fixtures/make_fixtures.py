#!/usr/bin/env python3
"""Writes tests/fixtures/hf/<name>/: tiny random NemotronH checkpoints built with transformers' own
NemotronH classes, and what transformers computes with them (logits, hidden states, greedy
generations). See README.md beside this file for the format and the reasons behind each choice.

Run with the venv from setup_venv.sh:  tools/.venv-hf/bin/python tools/hf_fixtures/make_fixtures.py
Deterministic: same versions -> same bytes (seeded generators, single-threaded torch).
"""

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import GenerationConfig, NemotronHConfig, NemotronHForCausalLM
from transformers.models.nemotron_h import modeling_nemotron_h as mnh

import nemotron_variants

REPO = Path(__file__).resolve().parents[2]
OUT_ROOT = REPO / "tests" / "fixtures" / "hf"

# dt margin: HF's torch path clamps softplus(dt + dt_bias) below at time_step_min, the CUDA kernels /
# vLLM / ringscan at time_step_limit[0] = 0. Every dt must stay this many times above
# time_step_min so the clamp never acts and both readings of the config agree.
DT_MARGIN = 1.5
# Greedy generations must not hinge on near-ties: top-1 minus top-2 logit at every step at least this.
# Far above fp32 reordering error of a reimplementation (~1e-5 on these logits).
MIN_GREEDY_MARGIN = 3e-2
MAX_NEW_TOKENS = 12
# bf16 fixtures, tests/fixtures/hf/<name>_bf16/: fixture <name>'s weights rounded to bf16 and saved
# by save_pretrained in bf16 (as real checkpoints ship), with HF's logits for its last two cases
# (chunk+1, 3*chunk+5): in fp32 from the bf16 checkpoint loaded upcast (the reference: the upcast is
# exact, so an fp32 engine must match it as closely as an fp32 fixture) and HF's own bf16 inference
# (for scale). Marker file cases_bf16.json, not cases.json: what reads the fp32 fixtures (GPU
# engine tests, check_fixtures' mutants and generations) is unchanged.
BF16_FROM = ["groups_gqa", "mlp_first_g4"]
BF16_CASES = 2

# Each spec varies something the engine could get wrong; "why" goes into cases.json.
SPECS = [
    dict(
        name="groups_gqa",
        why="pattern starts with Mamba; 8 Mamba heads in 2 groups (4 heads/group, repeat-interleave); "
        "GQA 6 q heads / 2 kv heads; chunk 8 does not divide 7, 9, 29",
        pattern="M-*M-", hidden=48, vocab=256, intermediate=96,
        mamba_heads=8, mamba_head_dim=8, n_groups=2, state=16, chunk=8, conv_kernel=4, conv_bias=True,
        attn_heads=6, kv_heads=2, head_dim=8, seed=1001,
    ),
    dict(
        name="attn_first_g1",
        why="pattern starts with attention; n_groups=1 (all heads share B/C); MQA 4 q heads / 1 kv head; "
        "chunk 16, Mamba head_dim 16",
        pattern="*M-M", hidden=32, vocab=256, intermediate=64,
        mamba_heads=4, mamba_head_dim=16, n_groups=1, state=8, chunk=16, conv_kernel=4, conv_bias=True,
        attn_heads=4, kv_heads=1, head_dim=8, seed=1002,
    ),
    dict(
        name="mlp_first_g4",
        why="pattern starts with MLP; 4 groups x 2 heads; conv kernel 3 without conv bias "
        "(use_conv_bias=false); plain MHA (kv heads = q heads)",
        pattern="-M*M", hidden=32, vocab=256, intermediate=64,
        mamba_heads=8, mamba_head_dim=8, n_groups=4, state=8, chunk=8, conv_kernel=3, conv_bias=False,
        attn_heads=4, kv_heads=4, head_dim=8, seed=1003,
    ),
    dict(
        name="swiglu",
        why="VARIANT (patched transformers): SwiGLU MLP, mlp_hidden_act=silu with gate_proj/up_proj/down_proj; "
        "2 groups x 4 heads",
        pattern="M-*-M", hidden=32, vocab=256, intermediate=48, mlp_act="silu",
        mamba_heads=8, mamba_head_dim=8, n_groups=2, state=8, chunk=8, conv_kernel=4, conv_bias=True,
        attn_heads=4, kv_heads=2, head_dim=8, seed=1004,
    ),
    dict(
        name="rope",
        why="VARIANT (patched transformers): partial rotary embedding in attention "
        "(rope_theta 10000, partial_rotary_factor 0.5 -> first 8 of head_dim 16, GPT-NeoX rotate_half); "
        "two attention layers; attention width 64 != hidden 32; n_groups = mamba heads (1 head per group)",
        pattern="M*-M*", hidden=32, vocab=256, intermediate=64,
        mamba_heads=4, mamba_head_dim=16, n_groups=4, state=8, chunk=8, conv_kernel=4, conv_bias=True,
        attn_heads=4, kv_heads=2, head_dim=16, seed=1005,
        rope=dict(rope_theta=10000.0, partial_rotary_factor=0.5),
    ),
    dict(
        name="legacy_sharded",
        why="hub-style config.json (hybrid_override_pattern instead of layers_block_type, legacy mamba_* "
        "key names, bare Infinity) and a sharded checkpoint (model-0000N-of-0000M.safetensors + index); "
        "4 groups x 2 heads; conv kernel 2; GQA 8/2",
        pattern="M*M-", hidden=32, vocab=256, intermediate=64,
        mamba_heads=8, mamba_head_dim=8, n_groups=4, state=8, chunk=16, conv_kernel=2, conv_bias=True,
        attn_heads=8, kv_heads=2, head_dim=8, seed=1006,
        legacy_config=True, max_shard_size="80KB",
    ),
]


def build_config(spec):
    kwargs = dict(
        vocab_size=spec["vocab"],
        hidden_size=spec["hidden"],
        hybrid_override_pattern=spec["pattern"],
        num_attention_heads=spec["attn_heads"],
        num_key_value_heads=spec["kv_heads"],
        head_dim=spec["head_dim"],
        intermediate_size=spec["intermediate"],
        mlp_hidden_act=spec.get("mlp_act", "relu2"),
        mamba_num_heads=spec["mamba_heads"],
        mamba_head_dim=spec["mamba_head_dim"],
        n_groups=spec["n_groups"],
        ssm_state_size=spec["state"],
        chunk_size=spec["chunk"],
        conv_kernel=spec["conv_kernel"],
        use_conv_bias=spec["conv_bias"],
        layer_norm_epsilon=1e-5,
        dtype="float32",
    )
    if "rope" in spec:
        kwargs.update(position_embedding_type="rope", **spec["rope"])
    return NemotronHConfig(**kwargs)


@torch.no_grad()
def randomize(model, seed, device="cpu"):
    """Overwrite every parameter from one seeded generator. Transformers' default init makes D=1,
    norms=1, A_log=log(1..H) and small projections, which would let a wrong engine pass; these
    scales keep every layer's contribution comparable to the residual stream. The generator lives
    on `device` (the model's), so a 4B model is drawn on its GPU (the bytes then differ from a CPU
    draw; the committed fixtures are drawn on the CPU)."""
    g = torch.Generator(device=device).manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g, device=device) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g, device=device)

    cfg = model.config
    for name, p in model.named_parameters():
        leaf = name.split(".")[-2] + "." + name.split(".")[-1] if "." in name else name
        shape = p.shape
        if name.endswith("embeddings.weight"):
            v = normal(shape, 1.0)
        elif name == "lm_head.weight":
            v = normal(shape, 2.0 / math.sqrt(shape[1]))  # logits std ~2: far from uniform
        elif name.endswith("norm.weight") or name.endswith("norm_f.weight"):
            v = uniform(shape, 0.7, 1.3)
        elif leaf == "mixer.A_log":
            v = torch.log(uniform(shape, 1.0, 16.0))
        elif leaf == "mixer.D":
            v = uniform(shape, 0.5, 1.5)
        elif leaf == "mixer.dt_bias":
            # softplus(dt_bias) log-uniform in [0.01, 0.1]; inverse softplus.
            dt = torch.exp(uniform(shape, math.log(0.01), math.log(0.1)))
            v = dt + torch.log(-torch.expm1(-dt))
        elif leaf == "conv1d.weight":
            v = normal(shape, 1.0 / math.sqrt(shape[-1]))
        elif leaf == "conv1d.bias":
            v = normal(shape, 0.2)
        elif leaf == "in_proj.weight":
            v = normal(shape, 1.0 / math.sqrt(shape[1]))
            # The dt rows (last mamba_num_heads outputs) get a small scale so softplus(dt + dt_bias)
            # stays in ~[0.003, 0.3]: well above time_step_min, see DT_MARGIN.
            n_heads = cfg.mamba_num_heads
            v[-n_heads:] *= 0.25
        elif p.dim() == 2:  # every other Linear: unit-variance outputs for unit-variance inputs
            v = normal(shape, 1.0 / math.sqrt(shape[1]))
        else:
            raise RuntimeError(f"randomize: no rule for parameter {name} {tuple(shape)}")
        p.copy_(v.to(p.dtype))


class DtProbe:
    """Forward pre-hooks on every Mamba mixer recomputing softplus(dt + dt_bias) from the mixer's input
    exactly as the mixer does, to prove HF's time_step_min clamp never acts."""

    def __init__(self, model):
        self.lo, self.hi = math.inf, -math.inf
        self.handles = []
        for module in model.modules():
            if isinstance(module, mnh.NemotronHMamba2Mixer):
                self.handles.append(module.register_forward_pre_hook(self._hook, with_kwargs=True))

    def _hook(self, module, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        dt = module.in_proj(x)[..., -module.num_heads:]
        dt = torch.nn.functional.softplus(dt + module.dt_bias)
        self.lo = min(self.lo, dt.min().item())
        self.hi = max(self.hi, dt.max().item())

    def remove(self):
        for h in self.handles:
            h.remove()


def case_lengths(chunk):
    return [1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5]


def make_ids(g, length, vocab):
    return torch.randint(0, vocab, (length,), generator=g).tolist()


@torch.no_grad()
def logits_of(model, ids):
    out = model(input_ids=torch.tensor([ids]), use_cache=False)
    return out.logits[0].float()


@torch.no_grad()
def greedy_generate(model, prompt, config):
    # The checkpoint's eos (2) must not stop generation early. Passing eos_token_id=None is not
    # enough: generate() fills unset fields from model.generation_config, so clear it there too.
    # The length of the result is checked below, so a silent early stop is impossible.
    model.generation_config.eos_token_id = None
    gen = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=MAX_NEW_TOKENS,
                           min_new_tokens=0, eos_token_id=None, pad_token_id=config.pad_token_id,
                           bos_token_id=config.bos_token_id)
    out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         generation_config=gen)
    new = out[0, len(prompt):].tolist()
    if len(new) != MAX_NEW_TOKENS:
        raise RuntimeError(f"generate returned {len(new)} new tokens, expected {MAX_NEW_TOKENS}")
    # Independent check: each generated token is the argmax of a cache-free full forward, with a margin.
    seq = list(prompt)
    min_margin = math.inf
    for tok in new:
        last = logits_of(model, seq)[-1]
        top2 = torch.topk(last, 2)
        if top2.indices[0].item() != tok:
            raise RuntimeError(f"cached generate picked {tok}, cache-free argmax is {top2.indices[0].item()}")
        min_margin = min(min_margin, (top2.values[0] - top2.values[1]).item())
        seq.append(tok)
    return new, min_margin


def hub_style_config(saved):
    """Rewrite a config.json as save_pretrained wrote it into the older, hub-style spelling."""
    cfg = dict(saved)
    kinds = {"linear_attention": "M", "full_attention": "*", "mlp": "-", "moe": "E"}
    cfg["hybrid_override_pattern"] = "".join(kinds[t] for t in cfg.pop("layers_block_type"))
    cfg["num_hidden_layers"] = len(cfg["hybrid_override_pattern"])
    cfg.pop("mtp_layers_block_type", None)
    for modern, legacy in [("n_groups", "mamba_n_groups"), ("conv_kernel", "mamba_d_conv"),
                           ("chunk_size", "mamba_chunk_size"), ("time_step_limit", "mamba_dt_limit")]:
        cfg[legacy] = cfg.pop(modern)
    lo, hi = cfg["mamba_dt_limit"]
    assert hi == {"__float__": "Infinity"}, hi
    cfg["mamba_dt_limit"] = [lo, math.inf]  # written by json.dumps as the bare token Infinity
    return cfg


def load_saved(out_dir, dtype=torch.float32):
    return NemotronHForCausalLM.from_pretrained(out_dir, dtype=dtype, attn_implementation="eager").eval()


def fresh_dir(out_dir):
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)


def build_model_and_cases(spec):
    """The fixture's model (fp32, eager attention, randomized) and its cases' ids; also returns the
    ids generator, which goes on to draw the greedy prompts."""
    config = build_config(spec)
    torch.manual_seed(spec["seed"])
    model = NemotronHForCausalLM._from_config(config, attn_implementation="eager").eval()
    randomize(model, spec["seed"])
    # Inputs: one generator per model, independent of the weights' generator.
    g = torch.Generator().manual_seed(spec["seed"] + 500000)
    cases = [{"name": f"len{L}", "input_ids": make_ids(g, L, spec["vocab"])} for L in case_lengths(spec["chunk"])]
    return config, model, cases, g


def build_fixture(spec):
    name = spec["name"]
    out_dir = OUT_ROOT / name
    fresh_dir(out_dir)

    config, model, cases, g = build_model_and_cases(spec)
    chunk = spec["chunk"]
    prompt_lengths = [3, chunk - 2, 2 * chunk + 3]

    probe = DtProbe(model)
    ref_logits = {}
    for case in cases:
        ref_logits[case["name"]] = logits_of(model, case["input_ids"])

    # Hidden states of the longest case, and what each index holds.
    hcase = cases[-1]
    last_block_out = {}
    hook = model.model.layers[-1].register_forward_hook(lambda m, a, o: last_block_out.__setitem__("x", o))
    with torch.no_grad():
        out = model(input_ids=torch.tensor([hcase["input_ids"]]), use_cache=False, output_hidden_states=True)
    hook.remove()
    hidden = torch.stack([h[0] for h in out.hidden_states]).float()
    n_layers = len(spec["pattern"])
    if hidden.shape[0] != n_layers + 1:
        raise RuntimeError(f"{name}: {hidden.shape[0]} hidden states, expected n_layers+1={n_layers + 1}")
    with torch.no_grad():
        normed = model.model.norm_f(last_block_out["x"])
        embeds = model.model.embeddings(torch.tensor([hcase["input_ids"]]))
    if not torch.equal(hidden[-1], normed[0]):
        raise RuntimeError(f"{name}: hidden_states[-1] is not norm_f(last block output)")
    if not torch.equal(hidden[0], embeds[0]):
        raise RuntimeError(f"{name}: hidden_states[0] is not the embedding output")
    if not torch.equal(out.logits[0], ref_logits[hcase["name"]]):
        raise RuntimeError(f"{name}: logits with output_hidden_states differ from plain forward")

    generations = []
    for i, plen in enumerate(prompt_lengths):
        for attempt in range(20):
            prompt = make_ids(g, plen, spec["vocab"])
            new, margin = greedy_generate(model, prompt, config)
            if margin >= MIN_GREEDY_MARGIN:
                break
        else:
            raise RuntimeError(f"{name}: no prompt of length {plen} without a near-tie in 20 tries")
        generations.append({"prompt_ids": prompt, "new_ids": new, "min_top1_top2_margin": round(margin, 6)})
    probe.remove()

    if probe.lo < DT_MARGIN * config.time_step_min:
        raise RuntimeError(f"{name}: softplus(dt + dt_bias) reached {probe.lo:.3g}, too close to "
                           f"time_step_min {config.time_step_min}: the torch path's clamp would act")

    # Save exactly as transformers writes a checkpoint.
    save_kwargs = {}
    if "max_shard_size" in spec:
        save_kwargs["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(out_dir, safe_serialization=True, **save_kwargs)
    if spec.get("legacy_config"):
        saved = json.loads((out_dir / "config.json").read_text())
        (out_dir / "config.json").write_text(json.dumps(hub_style_config(saved), indent=2, sort_keys=True) + "\n")
    if spec.get("max_shard_size") and not (out_dir / "model.safetensors.index.json").exists():
        raise RuntimeError(f"{name}: expected a sharded checkpoint")

    # Pitfall (a): reload and demand identical parameters and bit-identical logits.
    reloaded = load_saved(out_dir)
    rc = reloaded.config
    got = (rc.hybrid_override_pattern, rc.n_groups, rc.conv_kernel, rc.chunk_size, rc.mamba_num_heads,
           rc.mamba_head_dim, rc.ssm_state_size, rc.num_key_value_heads, rc.mlp_hidden_act,
           getattr(rc, "position_embedding_type", "none"))
    want = (spec["pattern"], spec["n_groups"], spec["conv_kernel"], spec["chunk"], spec["mamba_heads"],
            spec["mamba_head_dim"], spec["state"], spec["kv_heads"], spec.get("mlp_act", "relu2"),
            "rope" if "rope" in spec else "none")
    if got != want:
        raise RuntimeError(f"{name}: transformers reads the saved config.json as {got}, expected {want}")
    ref_state = model.state_dict()
    for k, v in reloaded.state_dict().items():
        if not torch.equal(v, ref_state[k]):
            raise RuntimeError(f"{name}: reloaded parameter {k} differs from the saved one (re-initialised?)")
    if set(reloaded.state_dict()) != set(ref_state):
        raise RuntimeError(f"{name}: reloaded model has different parameter names")
    for case in cases:
        got = logits_of(reloaded, case["input_ids"])
        if not torch.equal(got, ref_logits[case["name"]]):
            d = (got - ref_logits[case["name"]]).abs().max().item()
            raise RuntimeError(f"{name}/{case['name']}: reloaded checkpoint's logits differ (max {d:.3g})")
    for gen in generations:
        new, _ = greedy_generate(reloaded, gen["prompt_ids"], reloaded.config)
        if new != gen["new_ids"]:
            raise RuntimeError(f"{name}: reloaded checkpoint generates differently")

    # Outputs.
    case_entries = []
    for case in cases:
        lg = ref_logits[case["name"]].numpy().astype(np.float32)
        fname = f"logits_{case['name']}.npy"
        np.save(out_dir / fname, lg)
        case_entries.append({
            "name": case["name"], "length": len(case["input_ids"]), "input_ids": case["input_ids"],
            "logits": fname, "logits_std": round(float(lg.std()), 4),
            "max_softmax_prob_mean": round(float(torch.softmax(torch.from_numpy(lg), -1).max(-1).values.mean()), 4),
        })
    hname = f"hidden_{hcase['name']}.npy"
    np.save(out_dir / hname, hidden.numpy().astype(np.float32))
    lbname = f"last_block_{hcase['name']}.npy"
    np.save(out_dir / lbname, last_block_out["x"][0].float().numpy().astype(np.float32))

    cases_json = {
        "model": name,
        "varies": spec["why"],
        "pattern": spec["pattern"],
        "dtype": "float32",
        "produced_by": {
            "transformers": transformers.__version__, "torch": torch.__version__,
            "mamba_path": nemotron_variants.assert_torch_paths() + " (mamba2_chunk_scan / causal_conv1d_fn torch fallbacks)",
            "attn_implementation": "eager",
            "patched": ("swiglu mlp" if spec.get("mlp_act") == "silu" else
                        "rope attention" if "rope" in spec else None),
        },
        "cases": case_entries,
        "hidden": {
            "case": hcase["name"],
            "file": hname,
            "shape": list(hidden.shape),
            "index": "0 = embedding output (input of layer 0); i in 1..n_layers-1 = output of layer i-1 "
                     "(residual stream after that block); n_layers = norm_f(output of the last layer), "
                     "i.e. HF replaces the last block's raw output by the final-norm output",
            "last_block_file": lbname,
            "last_block_shape": list(last_block_out["x"][0].shape),
            "last_block": "raw output of the last layer (before norm_f), which hidden_states does not contain",
        },
        "dt_softplus_range": [round(probe.lo, 6), round(probe.hi, 6)],
        "time_step_min": config.time_step_min,
    }
    (out_dir / "cases.json").write_text(json.dumps(cases_json, indent=1) + "\n")
    gen_json = {
        "max_new_tokens": MAX_NEW_TOKENS,
        "how": "model.generate(do_sample=False, num_beams=1, max_new_tokens) on a batch of one, with "
               "eos_token_id=None both passed and set in model.generation_config (else the checkpoint's eos 2 "
               "stops it early); checked: exactly max_new_tokens new ids. Each new id was also checked to be "
               "the argmax of a cache-free forward over prompt + previous new ids, by min_top1_top2_margin.",
        "generations": generations,
    }
    (out_dir / "generate.json").write_text(json.dumps(gen_json, indent=1) + "\n")

    size = sum(f.stat().st_size for f in out_dir.iterdir())
    stds = ", ".join(f"{c['logits_std']:.2f}" for c in case_entries)
    print(f"{name:16s} {size / 1024:7.1f} KiB  logits std [{stds}]  dt [{probe.lo:.4f}, {probe.hi:.4f}]  "
          f"greedy margin >= {min(x['min_top1_top2_margin'] for x in generations):.3f}")
    return size


def build_bf16_fixture(spec):
    name = spec["name"] + "_bf16"
    out_dir = OUT_ROOT / name
    fresh_dir(out_dir)
    config, model, cases, _ = build_model_and_cases(spec)
    cases = cases[-BF16_CASES:]
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    with open(out_dir / "model.safetensors", "rb") as f:  # header: u64 length, then JSON
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    if {v["dtype"] for k, v in header.items() if k != "__metadata__"} != {"BF16"}:
        raise RuntimeError(f"{name}: save_pretrained did not write every tensor as BF16")

    ref_model, bf16_model = load_saved(out_dir, torch.float32), load_saved(out_dir, torch.bfloat16)
    for k, v in bf16_model.state_dict().items():  # pitfall (a): nothing re-initialised on load
        if not torch.equal(v.float(), ref_model.state_dict()[k]) or not torch.equal(v, model.state_dict()[k]):
            raise RuntimeError(f"{name}: reloaded parameter {k} differs from the saved bf16 one")
    probe = DtProbe(bf16_model)  # bf16 inference computes dt in bf16: it must clear the clamp too
    hf_bf16 = {c["name"]: logits_of(bf16_model, c["input_ids"]) for c in cases}
    probe.remove()
    probe_ref = DtProbe(ref_model)
    ref = {c["name"]: logits_of(ref_model, c["input_ids"]) for c in cases}
    probe_ref.remove()
    lo = min(probe.lo, probe_ref.lo)
    if lo < DT_MARGIN * config.time_step_min:
        raise RuntimeError(f"{name}: softplus(dt + dt_bias) reached {lo:.3g}, too close to time_step_min")

    entries = []
    for c in cases:
        lg, hb = ref[c["name"]].numpy(), hf_bf16[c["name"]].numpy()
        np.save(out_dir / f"logits_{c['name']}.npy", lg.astype(np.float32))
        np.save(out_dir / f"hf_bf16_logits_{c['name']}.npy", hb.astype(np.float32))
        entries.append({
            "name": c["name"], "length": len(c["input_ids"]), "input_ids": c["input_ids"],
            "logits": f"logits_{c['name']}.npy", "logits_std": round(float(lg.std()), 4),
            "hf_bf16_logits": f"hf_bf16_logits_{c['name']}.npy",
            "hf_bf16_max_abs_diff": round(float(np.abs(hb - lg).max()), 6),
        })
    meta = {
        "model": name,
        "varies": f"the weights of fixture {spec['name']} rounded to bf16, saved as BF16 by save_pretrained",
        "pattern": spec["pattern"],
        "dtype": "bfloat16",
        "produced_by": {"transformers": transformers.__version__, "torch": torch.__version__,
                        "mamba_path": nemotron_variants.assert_torch_paths(), "attn_implementation": "eager"},
        "logits": "HF's fp32 forward of the bf16 checkpoint loaded with dtype=float32 (exact upcast)",
        "hf_bf16_logits": "HF's own bf16 forward of the same checkpoint (dtype=bfloat16), for scale",
        "cases": entries,
        "dt_softplus_range": [round(lo, 6), round(max(probe.hi, probe_ref.hi), 6)],
        "time_step_min": config.time_step_min,
    }
    (out_dir / "cases_bf16.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(f.stat().st_size for f in out_dir.iterdir())
    errs = ", ".join(f"{e['hf_bf16_max_abs_diff']:.3g}" for e in entries)
    print(f"{name:16s} {size / 1024:7.1f} KiB  HF bf16 vs fp32 max|diff| [{errs}]  dt min {lo:.4f}")
    return size


def main():
    global OUT_ROOT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of fixtures to regenerate (default: all)")
    parser.add_argument("--out", type=Path, default=OUT_ROOT, help=f"output folder (default: {OUT_ROOT})")
    args = parser.parse_args()
    OUT_ROOT = args.out
    torch.set_num_threads(1)  # fixed reduction order -> reproducible bytes
    torch.use_deterministic_algorithms(True)
    nemotron_variants.assert_torch_paths()
    nemotron_variants.install()
    OUT_ROOT.mkdir(parents=True, exist_ok=True)
    total = 0
    for spec in SPECS:
        if not args.only or spec["name"] in args.only:
            total += build_fixture(spec)
        if spec["name"] in BF16_FROM and (not args.only or spec["name"] + "_bf16" in args.only):
            total += build_bf16_fixture(spec)
    print(f"total {total / 1024:.1f} KiB in {OUT_ROOT}")


if __name__ == "__main__":
    main()
