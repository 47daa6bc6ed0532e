import Foundation
import ParisRun
import Torch

/// A small CNN trained on the dataset's own labels: the in-domain feature space for a Fréchet distance
/// ("FD_classifier", as MNIST-FID does) and the judge of prompt-to-class accuracy (our offline stand-in for CLIP
/// score, since no CLIP weights can be had offline).
///
/// conv3×3(C→32) ReLU avgpool2 → conv3×3(32→64) ReLU avgpool2 → conv3×3(64→128) ReLU → average pool to 2×2 →
/// Linear(512→128) ReLU (the features) → Linear(128→classes). Inputs are images in [0, 1], [N, C, S, S].
public final class ImageClassifier: Module {
    /// `config.json` of a saved classifier.
    public struct Config: Codable, Sendable, Equatable {
        public var channels: Int
        public var imageSize: Int
        /// The class names, index = logit.
        public var classes: [String]
        public var featureDim: Int
        /// Training steps, batch size and the accuracy on the held-out images at the end of training.
        public var steps: Int
        public var batchSize: Int
        public var heldOutAccuracy: Double?
        /// The images it was trained on.
        public var trainImages: Int?

        public init(channels: Int, imageSize: Int, classes: [String], featureDim: Int = 128, steps: Int = 0,
                    batchSize: Int = 0, heldOutAccuracy: Double? = nil, trainImages: Int? = nil) {
            self.channels = channels
            self.imageSize = imageSize
            self.classes = classes
            self.featureDim = featureDim
            self.steps = steps
            self.batchSize = batchSize
            self.heldOutAccuracy = heldOutAccuracy
            self.trainImages = trainImages
        }

        enum CodingKeys: String, CodingKey {
            case channels, imageSize = "image_size", classes, featureDim = "feature_dim", steps
            case batchSize = "batch_size", heldOutAccuracy = "held_out_accuracy", trainImages = "train_images"
        }
    }

    public var config: Config
    public let conv1: Conv2d, conv2: Conv2d, conv3: Conv2d
    public let fc: Linear, head: Linear
    public var isTraining = true

    public init(_ config: Config, device: Device = .cpu) throws {
        guard config.channels > 0, config.imageSize >= 4, config.classes.count >= 2, config.featureDim > 0 else {
            throw EvalError("classifier needs channels ≥ 1, image size ≥ 4 and ≥ 2 classes; got \(config.channels) "
                + "channels, size \(config.imageSize), \(config.classes.count) classes")
        }
        self.config = config
        conv1 = try Conv2d(config.channels, 32, kernelSize: (3, 3), padding: (1, 1), device: device)
        conv2 = try Conv2d(32, 64, kernelSize: (3, 3), padding: (1, 1), device: device)
        conv3 = try Conv2d(64, 128, kernelSize: (3, 3), padding: (1, 1), device: device)
        fc = try Linear(128 * 4, config.featureDim, device: device)
        head = try Linear(config.featureDim, config.classes.count, device: device)
    }

    public var children: [(String, any Module)] {
        [("conv1", conv1), ("conv2", conv2), ("conv3", conv3), ("fc", fc), ("head", head)]
    }

    /// Penultimate features [N, featureDim] of images [N, C, S, S] in [0, 1].
    public func features(_ images: Tensor) throws -> Tensor {
        let c = config
        guard images.rank == 4, images.size(1) == c.channels, images.size(2) == c.imageSize,
              images.size(3) == c.imageSize else {
            throw EvalError("the classifier takes images [N, \(c.channels), \(c.imageSize), \(c.imageSize)], "
                + "got \(images.shape)")
        }
        var h = try images * 2.0 - 1.0
        h = try conv1(h).relu().avgPool2d(kernel: (2, 2))   // [N, 32, S/2, S/2]
        h = try conv2(h).relu().avgPool2d(kernel: (2, 2))   // [N, 64, S/4, S/4]
        // A 2×2 pool, not a global one: where the mass is (sleeves, a collar, a heel) tells shirt from T-shirt
        // from pullover, which a global average loses (on the demo's Fashion-MNIST, 600 steps: 0.699 → 0.803).
        h = try conv3(h).relu().adaptiveAvgPool2d((2, 2)).flatten(start: 1)  // [N, 512]
        return try fc(h).relu()                             // [N, featureDim]
    }

    /// Class logits [N, classes].
    public func callAsFunction(_ images: Tensor) throws -> Tensor { try head(try features(images)) }

    /// Predicted class indices for images [N, C, S, S] in [0, 1], in batches without autograd.
    public func predict(_ images: Tensor, batchSize: Int = 256) throws -> [Int] {
        try batched(images, batchSize: batchSize) { try self($0).argmax(dim: 1) }.toArray(as: Int64.self).map(Int.init)
    }

    /// Features [N, featureDim] (float64) in batches without autograd.
    public func featureBatches(_ images: Tensor, batchSize: Int = 256) throws -> Tensor {
        try batched(images, batchSize: batchSize) { try self.features($0).to(dtype: .float64) }
    }

    func batched(_ images: Tensor, batchSize: Int, _ f: (Tensor) throws -> Tensor) throws -> Tensor {
        let wasTraining = isTraining
        train(false)
        defer { train(wasTraining) }
        return try withNoGrad {
            var parts: [Tensor] = []
            for s in stride(from: 0, to: images.size(0), by: max(1, batchSize)) {
                parts.append(try f(images.slice(0, s, min(images.size(0), s + batchSize))).to(device: .cpu))
            }
            return try Tensor.cat(parts, dim: 0)
        }
    }

    /// Trains on images [N, C, S, S] in [0, 1] with labels [N] (class indices): AdamW (lr 2e-3, no weight decay),
    /// random minibatches from a seeded generator, plus random horizontal shifts of ±2 pixels as augmentation.
    /// Returns the mean loss of the last 20 steps.
    @discardableResult
    public func fit(images: Tensor, labels: [Int], steps: Int, batchSize: Int = 64, seed: UInt64 = 0,
                    log: (String) -> Void = { _ in }) throws -> Double {
        let n = images.size(0)
        guard n == labels.count, n > 0 else { throw EvalError("classifier training: \(n) images, \(labels.count) labels") }
        guard labels.allSatisfy({ (0..<config.classes.count).contains($0) }) else {
            throw EvalError("classifier training: a label is outside 0..<\(config.classes.count)")
        }
        let target = try Tensor(labels.map { Int64($0) })
        let optimizer = try AdamW(parameters(), lr: 2e-3, weightDecay: 0)
        Runtime.manualSeed(seed)
        train(true)
        defer { train(false) }
        var recent: [Double] = []
        for step in 1...max(1, steps) {
            let index = try Tensor.randint(0, n, [min(batchSize, n)])
            var x = try images.indexSelect(dim: 0, index: index)
            let shift = try Tensor.randint(-2, 3, [1]).itemInt()
            if shift != 0 { x = try x.roll(shift, dim: 3) }
            let loss = try crossEntropy(logits: self(x), target: target.indexSelect(dim: 0, index: index))
            try optimizer.zeroGrad()
            try loss.backward()
            try optimizer.step()
            recent.append(try loss.item())
            if recent.count > 20 { recent.removeFirst() }
            if step % 100 == 0 || step == steps {
                log(String(format: "classifier step %d/%d, loss %.4f", step, steps, recent.reduce(0, +) / Double(recent.count)))
            }
        }
        config.steps = steps
        config.batchSize = batchSize
        return recent.reduce(0, +) / Double(max(1, recent.count))
    }

    public static let configName = "config.json"
    public static let weightsName = "model.safetensors"

    /// Writes `model.safetensors` then `config.json` into `folder` (atomic).
    public func save(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try SafeTensors.save(try stateDict(), to: folder.appendingPathComponent(Self.weightsName),
                             metadata: ["paris_class": "ImageClassifier"])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(config)) + [10], to: folder.appendingPathComponent(Self.configName))
    }

    /// Loads a classifier saved by `save(to:)`.
    public static func load(from folder: URL, device: Device = .cpu) throws -> ImageClassifier {
        let url = folder.appendingPathComponent(configName)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw EvalError("\(url.path): not found") }
        let config: Config
        do { config = try JSONDecoder().decode(Config.self, from: data) } catch {
            throw EvalError("\(url.path): malformed classifier config (\(error))")
        }
        let model = try ImageClassifier(config, device: device)
        do {
            try model.loadStateDict(try SafeTensors.load(folder.appendingPathComponent(weightsName), device: device).tensors)
        } catch {
            throw EvalError("\(folder.path): not a classifier of this version (\(error)); delete the folder (or pass "
                + "another --classifier) to train a new one")
        }
        model.train(false)
        return model
    }
}
