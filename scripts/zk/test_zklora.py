"""End-to-end check of zklora.py (the owner and the contributor as subprocesses, files between them): an honest
answer verifies; a proof made with other weights, a changed delta, a proof for another query and a changed proof
byte are all refused. Usage: python test_zklora.py [--d 64] [--rank 4] [--keep DIR]; exit 0 when every case
behaves. It writes a LoRA file the way `paris train lora` does (PEFT names, safetensors)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zklora  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LAYER = "layers.0.mlp.0"


def write_lora(path, a, b):
    zklora.write_safetensors(path, {f"base_model.model.{LAYER}.lora_A.weight": a,
                                    f"base_model.model.{LAYER}.lora_B.weight": b})


def run(*args, expect=0):
    t0 = time.time()
    p = subprocess.run([sys.executable, os.path.join(HERE, "zklora.py"), *args], capture_output=True, text=True)
    last = (p.stdout.strip().splitlines() or [""])[-1]
    ok = p.returncode == expect
    print(f"  {'ok  ' if ok else 'FAIL'} {args[0]:<7} exit {p.returncode} (expected {expect}) {time.time() - t0:6.1f} s  {last[:160]}")
    if not ok:
        print(p.stderr[-2000:])
    return ok, last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--keep")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="zklora-")
    os.makedirs(work, exist_ok=True)
    j = lambda *p: os.path.join(work, *p)
    rng = np.random.default_rng(0)
    d, r = args.d, args.rank
    a, b = rng.normal(0, 0.1, (r, d)), rng.normal(0, 0.1, (d, r))
    write_lora(j("honest.safetensors"), a, b)
    write_lora(j("other.safetensors"), a * 0.5, b)
    x = rng.normal(0, 1, (1, d)).astype(np.float32)
    zklora.write_safetensors(j("x.safetensors"), {"x": x})
    zklora.write_safetensors(j("x2.safetensors"), {"x": x[:, ::-1].copy()})
    results = []
    print(f"zklora: d = {d}, r = {r}, in {work}")
    results.append(run("setup", "--d-in", str(d), "--d-out", str(d), "--rank", str(r), "--out", j("owner"))[0])
    results.append(run("commit", "--weights", j("honest.safetensors"), "--layer", LAYER, "--owner", j("owner"),
                       "--out", j("honest"))[0])
    results.append(run("commit", "--weights", j("other.safetensors"), "--layer", LAYER, "--owner", j("owner"),
                       "--out", j("other"))[0])
    for who in ["honest", "other"]:
        results.append(run("prove", "--contrib", j(who), "--owner", j("owner"), "--x", j("x.safetensors"),
                           "--out", j(f"{who}-answer"))[0])
    published = j("honest", "commitment.json")
    answer = lambda who, f: j(f"{who}-answer", f)
    # The delta is B·A·x.
    delta = zklora.read_tensor(answer("honest", "delta.safetensors"), "delta")
    err = float(np.abs(delta - x @ a.T @ b.T).max())
    print(f"  {'ok  ' if err < 1e-2 else 'FAIL'} delta vs float32: max |error| {err:.2e}")
    results.append(err < 1e-2)
    verify = lambda proof, d_file, x_file, expect: run(
        "verify", "--owner", j("owner"), "--commitment", published, "--x", x_file, "--delta", d_file,
        "--proof", proof, expect=expect)[0]
    results.append(verify(answer("honest", "proof.json"), answer("honest", "delta.safetensors"), j("x.safetensors"), 0))
    # Proved with other weights than the published commitments: refused (this is what the swap binds).
    results.append(verify(answer("other", "proof.json"), answer("other", "delta.safetensors"), j("x.safetensors"), 1))
    # An honest proof with a changed delta, or checked against another query: refused.
    bad = delta.copy()
    bad[0, 0] += 0.05
    zklora.write_safetensors(j("bad-delta.safetensors"), {"delta": bad})
    results.append(verify(answer("honest", "proof.json"), j("bad-delta.safetensors"), j("x.safetensors"), 1))
    results.append(verify(answer("honest", "proof.json"), answer("honest", "delta.safetensors"), j("x2.safetensors"), 1))
    # A changed byte in the second half of the proof (the first bytes hold the commitments the swap replaces):
    # refused.
    proof = json.load(open(answer("honest", "proof.json")))
    i = len(proof["proof"]) * 3 // 4
    proof["proof"][i] ^= 1
    proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
    json.dump(proof, open(j("tampered-proof.json"), "w"))
    results.append(verify(j("tampered-proof.json"), answer("honest", "delta.safetensors"), j("x.safetensors"), 1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"zklora: {sum(results)} of {len(results)} checks behaved")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
