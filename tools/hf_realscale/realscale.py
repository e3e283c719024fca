#!/usr/bin/env python3
"""Real-scale numerical check: ringscan against HF transformers on a random nano-4b (gpu-check's row).

  prepare  build a random NemotronH at a preset's shape with transformers' own classes, on --device;
           save it with save_pretrained in bf16 (model/), draw --tokens random ids (ids.txt; the model
           has no tokenizer), and compute HF's logits for them: in fp32 from the bf16 weights widened
           (exact), the reference (ref_logits.npy), and HF's own bf16 inference, whose distance from
           the reference is the bar (hf.json).
  check    run `ringscan forward --logits-out` on 1 rank and on 2 ranks (mpirun, --sp 2), and require
           of each: max|logit - ref| / std(ref) <= 1.5 x HF bf16's, and top-1 agreement with the
           reference over all positions >= HF bf16's. Prints one table row; exit 1 on failure.

Two steps so that gpu-check prepares during its build. On a CPU, a small preset tests the logic:
  tools/.venv-hf/bin/python tools/hf_realscale/realscale.py prepare --preset tiny --device cpu --out /tmp/rs
  tools/.venv-hf/bin/python tools/hf_realscale/realscale.py check --dir /tmp/rs --ringscan build/ringscan --device cpu
"""

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import NemotronHForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hf_fixtures"))
from make_fixtures import DT_MARGIN, DtProbe, build_config, randomize  # noqa: E402

# The shapes of src/model/presets.cpp (nano-4b: DESIGN.md section 1), in make_fixtures' spec keys.
_COMMON = dict(conv_kernel=4, conv_bias=True)
PRESETS = {
    "tiny": dict(vocab=512, hidden=64, pattern="M*-M-", attn_heads=4, kv_heads=2, head_dim=16, intermediate=128,
                 mamba_heads=8, mamba_head_dim=16, state=16, n_groups=2, chunk=16, **_COMMON),
    "demo": dict(vocab=4096, hidden=256, pattern="M-M*-M-M*-M-", attn_heads=8, kv_heads=2, head_dim=32,
                 intermediate=1024, mamba_heads=16, mamba_head_dim=32, state=64, n_groups=2, chunk=64, **_COMMON),
    "nano-4b": dict(vocab=131072, hidden=3136, pattern="M-M-M-MM-M-M*-M-M*-M-M-M*-M-M-MM*-MMM-M-M-", attn_heads=40,
                    kv_heads=8, head_dim=128, intermediate=12544, mamba_heads=96, mamba_head_dim=80, state=128,
                    n_groups=8, chunk=256, **_COMMON),
}
SEED = 4242
ERR_FACTOR = 1.5  # ringscan may be this much further from the fp32 reference than HF's own bf16


def err_and_top1(logits, ref, ref_std, ref_top1):
    """max|logits - ref| / std(ref), and the positions whose argmax is the reference's."""
    return float((logits - ref).abs().max()) / ref_std, int((logits.argmax(-1) == ref_top1).sum())


@torch.no_grad()
def prepare(a):
    t0 = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(a.device)
    # The reference must be fp32 throughout: no TF32 in the GEMMs, nor in cuDNN's conv1d.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    spec = PRESETS[a.preset]
    config = build_config(spec)
    # Weights (make_fixtures.randomize, drawn on the device: a 4B model in seconds): embeddings N(0,1);
    # every Linear N(0, 1/fan_in), so each block adds about unit variance to a stream of variance
    # ~(1 + depth): a block still moves the stream by a sizeable fraction of its norm at the 42nd
    # layer (printed below; 0.07 .. 1.0 for the nano-4b pattern at hidden 256), so the logits carry
    # every layer's work, errors included, rather than noise. lm_head N(0, 4/hidden): logits std ~2,
    # far from uniform. Mamba as initialised for training (A = -U(1, 16), softplus(dt_bias)
    # log-uniform in [0.01, 0.1], D ~ 1), with the dt rows of in_proj scaled down so dt stays clear
    # of HF's clamp at time_step_min (checked). Made in bf16, as the checkpoint will be.
    with device:
        model = NemotronHForCausalLM._from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    randomize(model, SEED, device=device)
    model.save_pretrained(out / "model")
    g = torch.Generator(device=device).manual_seed(SEED + 1)
    ids = torch.randint(0, spec["vocab"], (a.tokens,), generator=g, device=device)
    (out / "ids.txt").write_text(" ".join(map(str, ids.tolist())) + "\n")
    t_made = time.time()

    def forward():
        probe = DtProbe(model)
        contrib = []  # per block: |block output - block input| / |block input|

        def block_hook(module, args, kwargs, o):
            x = args[0] if args else kwargs["hidden_states"]
            contrib.append(float(((o[0] if isinstance(o, tuple) else o) - x).norm() / x.norm()))
        hooks = [layer.register_forward_hook(block_hook, with_kwargs=True) for layer in model.model.layers]
        logits = model(input_ids=ids[None], use_cache=False).logits[0].float()
        for h in hooks + probe.handles:
            h.remove()
        if probe.lo < DT_MARGIN * config.time_step_min:
            sys.exit(f"realscale: softplus(dt + dt_bias) reached {probe.lo:.3g}, too close to time_step_min "
                     f"{config.time_step_min}: HF would clamp it, ringscan not")
        return logits, contrib, (probe.lo, probe.hi)

    # HF's own bf16 inference (sdpa, as transformers picks by default), then the fp32 reference:
    # the same weights widened, eager attention (explicit fp32 softmax, as the committed fixtures).
    # Widened in memory rather than reloaded: these are the bytes save_pretrained wrote and ringscan
    # reads, and reloading 8 GB would only test transformers' loader.
    bf16, _, _ = forward()
    model.float()
    model.set_attn_implementation("eager")
    ref, contrib, dt_range = forward()
    ref_std = float(ref.std())
    hf_err, hf_top1 = err_and_top1(bf16, ref, ref_std, ref.argmax(-1))
    np.save(out / "ref_logits.npy", ref.cpu().numpy())
    hf = {
        "preset": a.preset, "tokens": a.tokens, "transformers": transformers.__version__, "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        # transformers takes mamba_ssm's kernels when importable, else its own torch path
        "mamba_path": "mamba_ssm" if importlib.util.find_spec("mamba_ssm") else "torch",
        "ref_std": ref_std, "hf_bf16_err": hf_err, "hf_bf16_top1": hf_top1,
        "layer_contribution_range": [min(contrib), max(contrib)], "dt_range": list(dt_range),
        "seconds": {"make_and_save": t_made - t0, "total": time.time() - t0},
    }
    (out / "hf.json").write_text(json.dumps(hf, indent=1) + "\n")
    print(f"realscale prepare: {a.preset}, {a.tokens} tokens, on {hf['device']} (transformers "
          f"{transformers.__version__}, Mamba path {hf['mamba_path']}): logits std {ref_std:.3g}, "
          f"block |dh|/|h| in [{min(contrib):.3g}, {max(contrib):.3g}], dt in [{dt_range[0]:.3g}, {dt_range[1]:.3g}]; "
          f"HF bf16 vs fp32: max err {hf_err:.3g} std, top-1 {hf_top1}/{a.tokens}; "
          f"{t_made - t0:.0f} s to make and save, {time.time() - t0:.0f} s in all")


@torch.no_grad()
def check(a):
    t0 = time.time()
    d = Path(a.dir)
    hf = json.loads((d / "hf.json").read_text())
    cmp_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ref = torch.from_numpy(np.load(d / "ref_logits.npy")).to(cmp_device)
    ref_top1 = ref.argmax(-1)
    # gpu-check runs this with the host's libraries (torch) and ringscan with .gpu-deps' ones.
    env = dict(os.environ)
    if "RINGSCAN_LD_LIBRARY_PATH" in env:
        env["LD_LIBRARY_PATH"] = env.pop("RINGSCAN_LD_LIBRARY_PATH")
    forward = shlex.split(a.ringscan) + ["forward", "--model", str(d / "model"), "--ids-file", str(d / "ids.txt"),
                                         "--device", a.device, "--top-k", "0"]
    runs = {"1 rank": forward, "2 ranks": shlex.split(a.mpirun) + forward + ["--sp", "2"]}
    results, failures = {}, []
    for name, cmd in runs.items():
        npy = d / f"ringscan_{name.replace(' ', '_')}.npy"
        p = subprocess.run(cmd + ["--logits-out", str(npy)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0 or f"device {a.device}" not in p.stderr:
            lines = p.stderr.strip().splitlines() or ["(no message)"]
            why = next((x for x in lines if "error" in x.lower()), lines[-1])
            failures.append(f"{name}: ringscan exit {p.returncode} ({why.strip()})")
            continue
        results[name] = err_and_top1(torch.from_numpy(np.load(npy)).to(cmp_device), ref, hf["ref_std"], ref_top1)
        npy.unlink()  # 1 GiB at nano-4b
    bound = ERR_FACTOR * hf["hf_bf16_err"]
    for name, (err, top1) in results.items():
        if err > bound or top1 < hf["hf_bf16_top1"]:
            failures.append(name)
    errs = ", ".join(f"{n} {e:.3g}" for n, (e, _) in results.items())
    tops = ", ".join(f"{n} {t}" for n, (_, t) in results.items())
    note = (f"L={hf['tokens']}, vs HF fp32: max|dlogit|/std HF bf16 {hf['hf_bf16_err']:.3g}, ringscan {errs} "
            f"(bound {bound:.3g}); top-1 HF bf16 {hf['hf_bf16_top1']}, ringscan {tops} of {hf['tokens']}")
    if failures:
        note += "; FAILED: " + "; ".join(failures)
    secs = hf["seconds"]["total"] + time.time() - t0
    print(f"{'realscale ' + hf['preset']:<22} {'FAIL' if failures else 'pass':<7} {secs:8.0f}  {note}")
    return 1 if failures else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="step", required=True)
    pp = sub.add_parser("prepare", help="make the model, the ids and HF's logits")
    pp.add_argument("--out", required=True, help="folder for model/, ids.txt, ref_logits.npy, hf.json")
    pp.add_argument("--preset", default="nano-4b", choices=sorted(PRESETS))
    pp.add_argument("--device", default="cuda", help="torch device to build and run the HF model on")
    pp.add_argument("--tokens", type=int, default=2048)
    pc = sub.add_parser("check", help="run ringscan on 1 and 2 ranks and compare")
    pc.add_argument("--dir", required=True, help="the folder prepare wrote")
    pc.add_argument("--ringscan", default="build/ringscan", help="the ringscan binary (a command line)")
    pc.add_argument("--mpirun", default="mpirun -np 2 --oversubscribe", help="launcher of the 2-rank run")
    pc.add_argument("--device", default="cuda", help="ringscan's --device")
    a = p.parse_args()
    return prepare(a) if a.step == "prepare" else check(a)


if __name__ == "__main__":
    sys.exit(main())
