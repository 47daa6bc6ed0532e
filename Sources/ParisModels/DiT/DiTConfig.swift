import Foundation
import Torch

/// The hyper-parameters of facebookresearch/DiT's `DiT` (adaLN-Zero, class-conditional), with the reference's
/// constructor argument names as JSON keys (`input_size`, `patch_size`, ...). Defaults are the reference's.
public struct DiTConfig: PatchTransformerConfig, PresetConfig, Codable, Equatable, Hashable, Sendable {
    /// Input height and width (square), in pixels or latent cells.
    public var inputSize: Int
    public var patchSize: Int
    public var inChannels: Int
    public var hiddenSize: Int
    public var depth: Int
    public var numHeads: Int
    public var mlpRatio: Double
    /// Probability of replacing a label by the null class in training (classifier-free guidance); with 0 there is
    /// no null class row in the embedding table.
    public var classDropoutProb: Double
    public var numClasses: Int
    /// Predict a variance too: the output has 2·inChannels channels.
    public var learnSigma: Bool

    enum CodingKeys: String, CodingKey {
        case inputSize = "input_size", patchSize = "patch_size", inChannels = "in_channels"
        case hiddenSize = "hidden_size", depth, numHeads = "num_heads", mlpRatio = "mlp_ratio"
        case classDropoutProb = "class_dropout_prob", numClasses = "num_classes", learnSigma = "learn_sigma"
    }

    public init(inputSize: Int = 32, patchSize: Int = 2, inChannels: Int = 4, hiddenSize: Int = 1152, depth: Int = 28,
                numHeads: Int = 16, mlpRatio: Double = 4, classDropoutProb: Double = 0.1, numClasses: Int = 1000,
                learnSigma: Bool = true) {
        self.inputSize = inputSize
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.hiddenSize = hiddenSize
        self.depth = depth
        self.numHeads = numHeads
        self.mlpRatio = mlpRatio
        self.classDropoutProb = classDropoutProb
        self.numClasses = numClasses
        self.learnSigma = learnSigma
    }

    /// Decodes a config, taking the reference's default for every key that is absent.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DiTConfig()
        self.init(
            inputSize: try c.decodeIfPresent(Int.self, forKey: .inputSize) ?? d.inputSize,
            patchSize: try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize,
            inChannels: try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? d.inChannels,
            hiddenSize: try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize,
            depth: try c.decodeIfPresent(Int.self, forKey: .depth) ?? d.depth,
            numHeads: try c.decodeIfPresent(Int.self, forKey: .numHeads) ?? d.numHeads,
            mlpRatio: try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? d.mlpRatio,
            classDropoutProb: try c.decodeIfPresent(Double.self, forKey: .classDropoutProb) ?? d.classDropoutProb,
            numClasses: try c.decodeIfPresent(Int.self, forKey: .numClasses) ?? d.numClasses,
            learnSigma: try c.decodeIfPresent(Bool.self, forKey: .learnSigma) ?? d.learnSigma)
    }

    /// 2·inChannels with `learnSigma`, else inChannels.
    public var outChannels: Int { learnSigma ? 2 * inChannels : inChannels }
    /// Rows of the label embedding table: the classes, plus the null class when labels are dropped.
    public var labelTableSize: Int { numClasses + (classDropoutProb > 0 ? 1 : 0) }

    /// Throws a clear error when the sizes cannot make a model.
    public func validate() throws {
        func fail(_ why: String) -> TorchError { TorchError("invalid DiT config: \(why)") }
        guard inputSize > 0, patchSize > 0, inChannels > 0, hiddenSize > 0, depth >= 0, numHeads > 0,
              numClasses > 0 else {
            throw fail("sizes must be positive (input_size \(inputSize), patch_size \(patchSize), in_channels "
                           + "\(inChannels), hidden_size \(hiddenSize), depth \(depth), num_heads \(numHeads), "
                           + "num_classes \(numClasses))")
        }
        try ModelLimits.checkPatchTransformer(inputSize: inputSize, inChannels: inChannels, patchSize: patchSize,
                                              hiddenSize: hiddenSize, depth: depth, numHeads: numHeads,
                                              mlpRatio: mlpRatio, fail: fail)
        try ModelLimits.check("num_classes", numClasses, ModelLimits.maxClasses, "maxClasses", fail)
        try validatePatchTransformer(inputSize: inputSize, patchSize: patchSize, hiddenSize: hiddenSize,
                                     numHeads: numHeads, fail: fail)
        guard mlpRatio > 0, mlpHiddenSize > 0 else { throw fail("mlp_ratio must be positive, got \(mlpRatio)") }
        guard (0..<1).contains(classDropoutProb) else {
            throw fail("class_dropout_prob must be in [0, 1), got \(classDropoutProb)")
        }
    }

    /// The number of parameters (`sum(p.numel() for p in model.parameters())`, the frozen `pos_embed` included),
    /// computed from the sizes alone, without building the model.
    public var parameterCount: Int {
        let h = hiddenSize, p2 = patchSize * patchSize, m = mlpHiddenSize
        let patchEmbed = h * inChannels * p2 + h
        let posEmbed = numPatches * h
        let timestep = 256 * h + h + h * h + h
        let labels = labelTableSize * h
        let attention = 3 * h * h + 3 * h + h * h + h
        let mlp = h * m + m + m * h + h
        let adaLN = h * 6 * h + 6 * h
        let block = attention + mlp + adaLN
        let final = h * p2 * outChannels + p2 * outChannels + h * 2 * h + 2 * h
        return patchEmbed + posEmbed + timestep + labels + depth * block + final
    }

    // MARK: Presets

    /// A named configuration.
    public typealias Preset = ModelPreset<DiTConfig>
    public static let presetFamily = "DiT"

    private static func reference(_ size: String, depth: Int, hidden: Int, heads: Int, patch: Int) -> Preset {
        Preset(name: "DiT-\(size)/\(patch)",
               config: DiTConfig(patchSize: patch, hiddenSize: hidden, depth: depth, numHeads: heads),
               description: "facebookresearch/DiT \(size)/\(patch): 32×32×4 latents, 1000 classes, learn_sigma")
    }

    /// The reference's twelve models (DiT-XL/2 ... DiT-S/8: 32×32×4 latents of 256-px images, 1000 ImageNet classes,
    /// learned sigma, class dropout 0.1), then small models that train on a CPU:
    /// - `DiT-T/2`: 28×28×1 pixels (Fashion-MNIST), patch 2 (196 tokens), hidden 128, depth 4, 4 heads, 10 classes.
    /// - `DiT-T/4`: 32×32×3 pixels, patch 4 (64 tokens), hidden 128, depth 4, 4 heads, 10 classes.
    /// - `DiT-N/4`: 28×28×1 pixels, patch 4 (49 tokens), hidden 64, depth 2, 4 heads, 10 classes (smoke tests).
    /// The small ones predict one output per input channel (learn_sigma false, as flow matching needs).
    public static let presets: [Preset] = {
        var out: [Preset] = []
        for (size, depth, hidden, heads) in [("XL", 28, 1152, 16), ("L", 24, 1024, 16), ("B", 12, 768, 12),
                                             ("S", 12, 384, 6)] {
            for patch in [2, 4, 8] { out.append(reference(size, depth: depth, hidden: hidden, heads: heads, patch: patch)) }
        }
        out.append(Preset(name: "DiT-T/2",
                          config: DiTConfig(inputSize: 28, patchSize: 2, inChannels: 1, hiddenSize: 128, depth: 4,
                                            numHeads: 4, numClasses: 10, learnSigma: false),
                          description: "tiny, CPU: 28×28×1 pixels (Fashion-MNIST), 10 classes"))
        out.append(Preset(name: "DiT-T/4",
                          config: DiTConfig(inputSize: 32, patchSize: 4, inChannels: 3, hiddenSize: 128, depth: 4,
                                            numHeads: 4, numClasses: 10, learnSigma: false),
                          description: "tiny, CPU: 32×32×3 pixels, 10 classes"))
        out.append(Preset(name: "DiT-N/4",
                          config: DiTConfig(inputSize: 28, patchSize: 4, inChannels: 1, hiddenSize: 64, depth: 2,
                                            numHeads: 4, numClasses: 10, learnSigma: false),
                          description: "nano, smoke tests: 28×28×1 pixels, 10 classes"))
        return out
    }()
}
