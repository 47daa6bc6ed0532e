// `paris-bench expert`: the Swift side of bench/run.sh expert. One flow-matching training step as the expert
// trainer (Sources/ParisTraining/Expert/DiffusionTrainer.swift) does it: Objective.loss (t ~ U[0, 1), x_t, v
// target, MSE), backward, gradient clipping at 1, fused AdamW, EMA update, the loss read back. Prints one JSON
// line like bench/expert_train.py.
import Foundation
import ParisDiffusion
import ParisModels
import Torch

struct ExpertOptions {
    var model = "paris-T/4", batch = 32, steps = 10, warmup = 3
    var device = Device.cpu
    var bf16 = false

    init(_ args: [String]) throws {
        var r = ArgumentReader(args)
        while let flag = r.next() {
            switch flag {
            case "--model": model = try r.value()
            case "--batch": batch = try r.int()
            case "--steps": steps = try r.int()
            case "--warmup": warmup = try r.int()
            case "--device": device = try Device(parsing: try r.value())
            case "--bf16": bf16 = true
            default: throw TorchError("unknown option \(flag)")
            }
        }
    }
}

/// Multiply-adds per image of the DiT reference models (DiT's paper's "Gflops"), for the MFU.
let ditGMACs: [String: Double] = ["DiT-B/2": 23.0, "DiT-XL/2": 118.6]
let h100BF16FLOPs = 989e12

func expertBenchmark(_ args: [String]) throws {
    let o = try ExpertOptions(args)
    Runtime.manualSeed(0)
    let module: any Module
    let denoise: DenoiserFunction
    let x0: Tensor
    let counted: [Tensor]
    if o.model.hasPrefix("paris-") {
        let config = try ParisExpertConfig.preset(named: o.model)
        let model = try ParisExpert(config, device: o.device)
        let text = try Tensor.randn([o.batch, config.textLength, config.textDim], device: o.device)  // [B, T, D]
        let mask = try Tensor.arange(0, Double(config.textLength), device: o.device).unsqueeze(0)
            .expand([o.batch, config.textLength]).lt(8)                                          // [B, T] bool
        denoise = { x, t, _ in try model(x: x, t: t, text: text, textMask: mask) }
        x0 = try Tensor.rand([o.batch, config.inChannels, config.inputSize, config.inputSize], device: o.device) * 2 - 1
        module = model
        // The reference has no learned null text (no caption dropout in this benchmark): leave it out of the count.
        counted = model.namedParameters().filter { $0.0 != "null_text_embedding" }.map { $0.1 }
    } else {
        var config = try DiTConfig.preset(named: o.model)
        config.learnSigma = false
        let model = try DiT(config, device: o.device)
        let labels = try Tensor.randint(0, config.numClasses, [o.batch], device: o.device)
        denoise = { x, t, _ in try model(x: x, t: t, y: labels) }
        x0 = try Tensor.rand([o.batch, config.inChannels, config.inputSize, config.inputSize], device: o.device) * 2 - 1
        module = model
        counted = model.parameters()
    }
    module.train(true)
    let parameters = module.parameters()
    let optimizer = try AdamW(parameters, lr: 1e-4, weightDecay: 0)
    let ema = try EMA(module, decay: 0.999)
    let objective = Objective.flowMatchingUniform

    func step() throws -> Double {
        let out = try withAutocast(device: o.device, enabled: o.bf16) {
            try objective.loss(model: denoise, x0: x0)
        }
        try optimizer.zeroGrad()
        try out.loss.backward()
        try clipGradNorm(parameters, maxNorm: 1)
        try optimizer.step()
        try ema.update(from: module)
        return try out.loss.item()
    }

    let (times, _) = try StepTimes.measure(warmup: o.warmup, steps: o.steps, step)
    let median = times.median
    let rate = Double(o.batch) / (median / 1000)
    var extra = ""
    if let g = ditGMACs[o.model], o.device.isCUDA {
        extra += ", \"mfu\": \(2 * 3 * g * 1e9 * rate / h100BF16FLOPs)"
    }
    if case .cuda(let n) = o.device, let info = Runtime.cudaMemoryInfo(n) {
        extra += ", \"cuda_used_gib\": \(Double(info.total - info.free) / 1_073_741_824)"
    }
    print("""
        {"impl": "swift", "torch": "\(Runtime.version)", "model": "\(o.model)", "device": "\(o.device)", \
        "bf16": \(o.bf16), "threads": \(Runtime.threads), "params": \(counted.reduce(0) { $0 + $1.count }), \
        "batch": \(o.batch), "median_ms": \(median), "min_ms": \(times.min), "images_per_s": \(rate)\(extra)}
        """)
}
