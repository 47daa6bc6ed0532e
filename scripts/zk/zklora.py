"""Zero-knowledge proofs that a LoRA delta was computed with committed weights (ZKLoRA's protocol, arXiv 2501.13965),
with ezkl (Halo2 + KZG) and `polycommit` parameter visibility. Files in, files out; no torch (ezkl, onnx, numpy).

One adapted layer is the graph delta = (x · Aᵀ) · Bᵀ, x: [n, d_in], A: [r, d_in], B: [d_out, r] (PEFT's lora_A and
lora_B; the α/r scaling is applied by the caller, outside the proof). Roles and steps:

  owner  setup   --d-in D --d-out D --rank R --rows N --out OWNER
         Builds the graph with dummy weights of the right shapes, settings (input and output public, parameters
         polycommit), calibrates on seeded random inputs, compiles, draws a fresh SRS (the owner must generate it:
         whoever knows its secret can forge proofs) and makes the keys. The keys do not depend on the weights.
  contr. commit  --weights adapter_model.safetensors --layer PATH --owner OWNER --out CONTRIB
         Builds the graph with the real A and B of layer PATH and writes commitment.json: the KZG commitments of the
         weights, published (signed) before the first query.
  contr. prove   --contrib CONTRIB --owner OWNER --x x.safetensors --out ANSWER
         delta.safetensors and proof.json for the query x.
  owner  verify  --owner OWNER --commitment commitment.json --x x.safetensors --delta delta.safetensors --proof proof.json
         Swaps the published commitments into the proof (without this, a proof made with other weights verifies:
         the binding is the swap), verifies it, and checks that the proof's public input is x and its public output
         is the returned delta (within the quantisation step). Prints a JSON verdict; exit status 0 = valid.

x (tensor "x", [rows, d_in]) and delta (tensor "delta", [rows, d_out]) are float32 safetensors files, the format of
the LoRA wire (`paris serve lora`).

What a valid proof establishes: for this query x, delta = B·A·x (quantised to the settings' scale) for the A and B
whose commitments were published. Not: anything about the base model's activations (the owner computes those), or
how A and B were trained.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import time

import ezkl
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (F32/F16/F64; BF16 widened), without torch."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def write_safetensors(path, tensors):
    """name → array as a float32 safetensors file (x and delta travel this way, as on the wire)."""
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        raw = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(t)), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path + ".partial", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".partial", path)


def read_tensor(path, name):
    tensors = read_safetensors(path)
    if name not in tensors or tensors[name].ndim != 2:
        sys.exit(f"{path} must hold a 2-D tensor '{name}' (it has {', '.join(tensors) or 'nothing'})")
    return tensors[name]


def write_graph(a, b, rows, path):
    """delta = (x · Aᵀ) · Bᵀ as a two-MatMul ONNX graph with A and B as initialisers."""
    r, d_in = a.shape
    d_out = b.shape[0]
    at = numpy_helper.from_array(np.ascontiguousarray(a.T, dtype=np.float32), "lora_A_T")
    bt = numpy_helper.from_array(np.ascontiguousarray(b.T, dtype=np.float32), "lora_B_T")
    nodes = [helper.make_node("MatMul", ["x", "lora_A_T"], ["h"]), helper.make_node("MatMul", ["h", "lora_B_T"], ["delta"])]
    graph = helper.make_graph(nodes, "lora_delta", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, d_in])],
                              [helper.make_tensor_value_info("delta", TensorProto.FLOAT, [rows, d_out])],
                              initializer=[at, bt])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def input_json(x, path):
    json.dump({"input_data": [np.asarray(x, dtype=np.float64).flatten().tolist()]}, open(path, "w"))


def setup(args):
    os.makedirs(args.out, exist_ok=True)
    p = lambda name: os.path.join(args.out, name)
    rng = np.random.default_rng(args.seed)
    write_graph(np.full((args.rank, args.d_in), 0.01), np.full((args.d_out, args.rank), 0.01), args.rows, p("model.onnx"))
    run = ezkl.PyRunArgs()
    run.input_visibility, run.output_visibility, run.param_visibility = "public", "public", "polycommit"
    # Calibration sees dummy weights, so the range checks get headroom for real ones: a third decomposition leg
    # (range 16384³) keeps x·Aᵀ's accumulators in range at d = 1152 (two legs overflow there).
    run.decomp_legs = args.decomp_legs
    t0 = time.time()
    ezkl.gen_settings(p("model.onnx"), p("settings.json"), py_run_args=run)
    input_json(rng.normal(0, 1, (args.rows, args.d_in)), p("calibration.json"))
    ezkl.calibrate_settings(p("calibration.json"), p("model.onnx"), p("settings.json"), "resources")
    ezkl.compile_circuit(p("model.onnx"), p("model.compiled"), p("settings.json"))
    settings = json.load(open(p("settings.json")))
    ezkl.gen_srs(p("kzg.srs"), settings["run_args"]["logrows"])
    ezkl.setup(p("model.compiled"), p("vk.key"), p("pk.key"), p("kzg.srs"))
    json.dump({"d_in": args.d_in, "d_out": args.d_out, "rank": args.rank, "rows": args.rows,
               "logrows": settings["run_args"]["logrows"], "setup_s": time.time() - t0}, open(p("shape.json"), "w"))
    print(json.dumps(json.load(open(p("shape.json")))))


def layer_weights(weights, layer):
    tensors = read_safetensors(weights)
    key = f"base_model.model.{layer}"
    try:
        return tensors[key + ".lora_A.weight"], tensors[key + ".lora_B.weight"]
    except KeyError:
        layers = sorted({k[len("base_model.model."):].rsplit(".lora_", 1)[0] for k in tensors})
        sys.exit(f"{weights} has no LoRA layer {layer}; it has {', '.join(layers)}")


def commit(args):
    shape = json.load(open(os.path.join(args.owner, "shape.json")))
    a, b = layer_weights(args.weights, args.layer)
    if (a.shape, b.shape) != ((shape["rank"], shape["d_in"]), (shape["d_out"], shape["rank"])):
        sys.exit(f"layer {args.layer}: A {a.shape}, B {b.shape} do not fit the owner's circuit "
                 f"(r {shape['rank']}, {shape['d_in']} → {shape['d_out']})")
    os.makedirs(args.out, exist_ok=True)
    p = lambda name: os.path.join(args.out, name)
    o = lambda name: os.path.join(args.owner, name)
    write_graph(a, b, shape["rows"], p("model.onnx"))
    ezkl.compile_circuit(p("model.onnx"), p("model.compiled"), o("settings.json"))
    input_json(np.zeros((shape["rows"], shape["d_in"])), p("zero.json"))
    ezkl.gen_witness(p("zero.json"), p("model.compiled"), p("zero.witness.json"), o("vk.key"), o("kzg.srs"))
    commitments = json.load(open(p("zero.witness.json")))["processed_params"]["polycommit"]
    json.dump({"layer": args.layer, "polycommit": commitments}, open(p("commitment.json"), "w"))
    print(p("commitment.json"))


def prove(args):
    o = lambda name: os.path.join(args.owner, name)
    c = lambda name: os.path.join(args.contrib, name)
    os.makedirs(args.out, exist_ok=True)
    p = lambda name: os.path.join(args.out, name)
    x = read_tensor(args.x, "x")
    input_json(x, p("input.json"))
    t0 = time.time()
    ezkl.gen_witness(p("input.json"), c("model.compiled"), p("witness.json"), o("vk.key"), o("kzg.srs"))
    ezkl.prove(p("witness.json"), c("model.compiled"), o("pk.key"), p("proof.json"), o("kzg.srs"))
    witness = json.load(open(p("witness.json")))
    delta = np.array([float(v) for v in witness["pretty_elements"]["rescaled_outputs"][0]], dtype=np.float32)
    write_safetensors(p("delta.safetensors"), {"delta": delta.reshape(x.shape[0], -1)})
    os.remove(p("witness.json"))  # the witness holds the weights: it never leaves the contributor
    print(json.dumps({"prove_s": time.time() - t0, "proof_bytes": os.path.getsize(p("proof.json"))}))


def verify(args):
    o = lambda name: os.path.join(args.owner, name)
    work = args.proof + ".verify"
    os.makedirs(work, exist_ok=True)
    w = lambda name: os.path.join(work, name)
    x, delta = read_tensor(args.x, "x"), read_tensor(args.delta, "delta")
    verdict = {"valid": False}
    t0 = time.time()
    try:
        # The owner's swap witness: its own dummy-weight witness for this x, with the published commitments.
        input_json(x, w("input.json"))
        ezkl.gen_witness(w("input.json"), o("model.compiled"), w("owner.witness.json"), o("vk.key"), o("kzg.srs"))
        mine = json.load(open(w("owner.witness.json")))
        mine["processed_params"]["polycommit"] = json.load(open(args.commitment))["polycommit"]
        json.dump(mine, open(w("swap.json"), "w"))
        shutil.copy(args.proof, w("proof.json"))
        ezkl.swap_proof_commitments(w("proof.json"), w("swap.json"))
        ok = ezkl.verify(w("proof.json"), o("settings.json"), o("vk.key"), o("kzg.srs"))
        # The proof's instances (what the proof binds; its "pretty" fields are not): inputs, then outputs.
        settings = json.load(open(o("settings.json")))
        s_in, s_out = settings["model_input_scales"][0], settings["model_output_scales"][0]
        instances = json.load(open(w("proof.json")))["instances"][0]
        if len(instances) != x.size + delta.size:
            raise ValueError(f"the proof has {len(instances)} public values, expected {x.size} + {delta.size}")
        proved_x = np.array([ezkl.felt_to_float(f, s_in) for f in instances[:x.size]])
        proved_delta = np.array([ezkl.felt_to_float(f, s_out) for f in instances[x.size:]])
        step = 2.0 ** -min(s_in, s_out)
        x_ok = np.abs(proved_x - x.flatten()).max() <= step
        tol = float(max(1e-3, 4 * step * (1 + float(np.abs(delta).max()))))
        delta_err = float(np.abs(proved_delta - delta.flatten()).max())
        verdict = {"valid": bool(ok and x_ok and delta_err <= tol), "proof_verifies": bool(ok), "input_matches": bool(x_ok),
                   "delta_max_error": delta_err, "delta_tolerance": tol}
    except Exception as e:  # ezkl raises on a proof that does not verify
        verdict = {"valid": False, "error": (str(e).splitlines() or [type(e).__name__])[0][:300]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdict["verify_s"] = time.time() - t0
    print(json.dumps(verdict))
    sys.exit(0 if verdict["valid"] else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--d-in", type=int, required=True)
    s.add_argument("--d-out", type=int, required=True)
    s.add_argument("--rank", type=int, required=True)
    s.add_argument("--rows", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--decomp-legs", type=int, default=3)
    s.add_argument("--out", required=True)
    c = sub.add_parser("commit")
    c.add_argument("--weights", required=True)
    c.add_argument("--layer", required=True)
    c.add_argument("--owner", required=True)
    c.add_argument("--out", required=True)
    p = sub.add_parser("prove")
    p.add_argument("--contrib", required=True)
    p.add_argument("--owner", required=True)
    p.add_argument("--x", required=True)
    p.add_argument("--out", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--owner", required=True)
    v.add_argument("--commitment", required=True)
    v.add_argument("--x", required=True)
    v.add_argument("--delta", required=True)
    v.add_argument("--proof", required=True)
    args = ap.parse_args()
    {"setup": setup, "commit": commit, "prove": prove, "verify": verify}[args.command](args)


if __name__ == "__main__":
    main()
