// The Swift side of bench/run.sh: one training step (forward, backward, AdamW) of a stack of DiT blocks, timed
// over --steps steps after --warmup steps. Prints one JSON line, like bench/block_stack.py.
// `paris-bench expert ...` runs the expert training-step benchmark instead (ExpertTrain.swift).
import Foundation
import Torch

/// Walks `--flag [value]` arguments for the benchmark options (both benchmarks parse the same way).
struct ArgumentReader {
    let args: [String]
    private(set) var i = 0
    init(_ args: [String]) { self.args = args }

    /// The next flag, or nil at the end.
    mutating func next() -> String? {
        defer { i += 1 }
        return i < args.count ? args[i] : nil
    }

    /// The value after the flag just read.
    mutating func value() throws -> String {
        guard i < args.count else { throw TorchError("\(args[i - 1]) needs a value") }
        defer { i += 1 }
        return args[i]
    }

    /// A positive integer value after the flag just read.
    mutating func int() throws -> Int {
        let v = try value()
        guard let n = Int(v), n > 0 else { throw TorchError("\(args[i - 2]) needs a positive integer, got \(v)") }
        return n
    }
}

struct Options {
    var hidden = 256, heads = 4, depth = 4, tokens = 64, batch = 16, steps = 20, warmup = 3
    var device = Device.cpu
    var bf16 = false

    init(_ args: [String]) throws {
        var r = ArgumentReader(args)
        while let flag = r.next() {
            switch flag {
            case "--hidden": hidden = try r.int()
            case "--heads": heads = try r.int()
            case "--depth": depth = try r.int()
            case "--tokens": tokens = try r.int()
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

func main() throws {
    let args = Array(CommandLine.arguments.dropFirst())
    if args.first == "expert" {
        try expertBenchmark(Array(args.dropFirst()))
        return
    }
    let o = try Options(args)
    Runtime.manualSeed(0)
    let blocks = try (0..<o.depth).map { _ in try Block(hidden: o.hidden, heads: o.heads) }
    for b in blocks { try b.to(device: o.device) }
    let params = blocks.flatMap { $0.parameters() }
    let opt = try AdamW(params, lr: 1e-4, weightDecay: 0)
    let x = try Tensor.randn([o.batch, o.tokens, o.hidden], device: o.device)
    let c = try Tensor.randn([o.batch, o.hidden], device: o.device)
    let target = try Tensor.randn([o.batch, o.tokens, o.hidden], device: o.device)

    func step() throws -> Tensor {
        let loss = try withAutocast(device: o.device, enabled: o.bf16) {
            var h = x
            for b in blocks { h = try b(h, c) }
            return try mseLoss(h.to(dtype: .float32), target)
        }
        try loss.backward()
        try opt.step()
        try opt.zeroGrad()
        return loss
    }

    let (times, loss) = try StepTimes.measure(warmup: o.warmup, steps: o.steps, step)
    let count = params.reduce(0) { $0 + $1.count }
    print("""
        {"impl": "swift", "torch": "\(Runtime.version)", "device": "\(o.device)", "threads": \(Runtime.threads), \
        "params": \(count), "median_ms": \(times.median), "min_ms": \(times.min), "loss": \(try loss.item())}
        """)
}

do {
    try main()
} catch {
    FileHandle.standardError.write(Data("paris-bench: \(error)\n".utf8))
    exit(1)
}
