import Foundation

/// The foundation's demo: an MLP fitted to y = sin(x) + noise with AdamW and a warmup/cosine schedule, on the CPU
/// in a few seconds. It exercises tensors, autograd, `nn` and `optim` end to end; `paris demo` runs it.
public enum SineRegression {
    /// The demo's settings (JSON keys in snake_case).
    public struct Config: Codable, Sendable {
        public var steps = 300
        public var batchSize = 256
        public var hidden = 64
        public var learningRate = 1e-2
        public var noise = 0.05
        public var seed: UInt64 = 0
        public var logEvery = 25

        public init() {}

        enum CodingKeys: String, CodingKey {
            case steps, batchSize = "batch_size", hidden, learningRate = "learning_rate", noise, seed
            case logEvery = "log_every"
        }

        /// Throws a clear error for settings the loop cannot run with.
        public func validate() throws {
            guard steps > 0, batchSize > 0, hidden > 0, logEvery > 0 else {
                throw TorchError("steps, batch size, hidden size and log interval must be positive")
            }
            guard learningRate > 0, noise >= 0 else { throw TorchError("learning rate must be > 0 and noise >= 0") }
        }
    }

    /// One logged point of the run.
    public struct Point: Sendable {
        public let step: Int
        public let loss: Double
        public let learningRate: Double
    }

    /// Trains and returns the logged points; `log` receives a line per point, and the final test error.
    @discardableResult
    public static func run(_ config: Config, log: (String) -> Void) throws -> [Point] {
        try config.validate()
        Runtime.manualSeed(config.seed)
        let model = try Sequential(
            Linear(1, config.hidden), GELU(), Linear(config.hidden, config.hidden), GELU(), Linear(config.hidden, 1))
        let optimizer = try AdamW(model.parameters(), lr: config.learningRate, weightDecay: 0)
        let schedule = LRSchedule(baseLR: config.learningRate, warmupSteps: config.steps / 10,
                                  totalSteps: config.steps, minLR: config.learningRate / 20)

        // Data: x uniform in [-π, π], y = sin(x) + noise.
        func batch(_ n: Int) throws -> (x: Tensor, y: Tensor) {
            let x = try (Tensor.rand([n, 1]) * 2.0 - 1.0) * Double.pi  // x: [n, 1]
            let y = try x.sin() + Tensor.randn([n, 1]) * config.noise
            return (x, y)
        }

        log("fitting a \(model.parameterCount)-parameter MLP to sin(x) + noise: \(config.steps) steps of "
            + "\(config.batchSize) points, AdamW (lr \(config.learningRate), warmup + cosine)")
        var points: [Point] = []
        for step in 1...config.steps {
            let lr = schedule.lr(step: step - 1)
            optimizer.lr = lr
            let (x, y) = try batch(config.batchSize)
            let loss = try mseLoss(model(x), y)
            try optimizer.zeroGrad()
            try loss.backward()
            try optimizer.step()
            if step == 1 || step % config.logEvery == 0 || step == config.steps {
                let p = Point(step: step, loss: try loss.item(), learningRate: lr)
                points.append(p)
                log(String(format: "step %4d  loss %.5f  lr %.2e", p.step, p.loss, p.learningRate))
            }
        }
        let test = try withNoGrad {
            let x = try Tensor.linspace(-Double.pi, Double.pi, steps: 512).reshape([512, 1])
            return try mseLoss(model(x), x.sin()).item()
        }
        log(String(format: "test MSE against sin(x) on 512 points: %.5f (noise variance %.5f)", test,
                   config.noise * config.noise))
        return points
    }
}
