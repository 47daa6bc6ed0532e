import Foundation
import Torch

/// The hyper-parameters of EfficientNet-Lite (as in the PyPI package efficientnet-lite-pytorch 0.1.0, itself a port
/// of TensorFlow's `efficientnet_lite_builder.py`), with that code's names as JSON keys (`width_coefficient`, ...).
///
/// Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-and-excitation, and the stem (32 channels),
/// the first and last stages' repeats and the head (1280 channels) are not scaled. Defaults are Lite0's.
public struct EfficientNetLiteConfig: PresetConfig, Codable, Equatable, Hashable, Sendable {
    /// One stage of MBConv blocks before width and depth scaling (`r1_k3_s11_e1_i32_o16` in the reference).
    public struct Stage: Codable, Equatable, Hashable, Sendable {
        public var repeats: Int
        public var kernelSize: Int
        /// The first block's stride; the repeats use stride 1.
        public var stride: Int
        public var expandRatio: Int
        public var inputFilters: Int
        public var outputFilters: Int

        enum CodingKeys: String, CodingKey {
            case repeats = "num_repeat", kernelSize = "kernel_size", stride, expandRatio = "expand_ratio"
            case inputFilters = "input_filters", outputFilters = "output_filters"
        }

        public init(repeats: Int, kernelSize: Int, stride: Int, expandRatio: Int, inputFilters: Int,
                    outputFilters: Int) {
            self.repeats = repeats
            self.kernelSize = kernelSize
            self.stride = stride
            self.expandRatio = expandRatio
            self.inputFilters = inputFilters
            self.outputFilters = outputFilters
        }
    }

    /// One MBConv block after scaling: what `EfficientNetLite` builds.
    public struct BlockSpec: Equatable, Hashable, Sendable {
        public let inputFilters: Int
        public let outputFilters: Int
        public let kernelSize: Int
        public let stride: Int
        public let expandRatio: Int
        /// Channels after the expansion (input × expand ratio).
        public var hiddenFilters: Int { inputFilters * expandRatio }
        /// A residual connection: stride 1 and as many channels out as in.
        public var hasSkip: Bool { stride == 1 && inputFilters == outputFilters }
    }

    public var widthCoefficient: Double
    public var depthCoefficient: Double
    /// The resolution the weights were trained at (square), e.g. 224 for Lite0.
    public var imageSize: Int
    /// Dropout before the classifier, in training mode.
    public var dropoutRate: Double
    /// Stochastic depth: block i of n is dropped with probability rate·i/n, in training mode.
    public var dropConnectRate: Double
    public var numClasses: Int
    /// TensorFlow's convention (0.99); PyTorch's BatchNorm momentum is 1 − this.
    public var batchNormMomentum: Double
    public var batchNormEpsilon: Double
    /// Channel counts are rounded to multiples of this.
    public var depthDivisor: Int
    /// Stem output channels (not scaled in Lite).
    public var stemChannels: Int
    /// Head output channels, the feature dimension (not scaled in Lite).
    public var headChannels: Int
    public var stages: [Stage]

    enum CodingKeys: String, CodingKey {
        case widthCoefficient = "width_coefficient", depthCoefficient = "depth_coefficient", imageSize = "image_size"
        case dropoutRate = "dropout_rate", dropConnectRate = "drop_connect_rate", numClasses = "num_classes"
        case batchNormMomentum = "batch_norm_momentum", batchNormEpsilon = "batch_norm_epsilon"
        case depthDivisor = "depth_divisor", stemChannels = "stem_channels", headChannels = "head_channels", stages
    }

    /// The seven stages of EfficientNet-Lite (the reference's `efficientnet_lite` block strings).
    public static let liteStages: [Stage] = [
        Stage(repeats: 1, kernelSize: 3, stride: 1, expandRatio: 1, inputFilters: 32, outputFilters: 16),
        Stage(repeats: 2, kernelSize: 3, stride: 2, expandRatio: 6, inputFilters: 16, outputFilters: 24),
        Stage(repeats: 2, kernelSize: 5, stride: 2, expandRatio: 6, inputFilters: 24, outputFilters: 40),
        Stage(repeats: 3, kernelSize: 3, stride: 2, expandRatio: 6, inputFilters: 40, outputFilters: 80),
        Stage(repeats: 3, kernelSize: 5, stride: 1, expandRatio: 6, inputFilters: 80, outputFilters: 112),
        Stage(repeats: 4, kernelSize: 5, stride: 2, expandRatio: 6, inputFilters: 112, outputFilters: 192),
        Stage(repeats: 1, kernelSize: 3, stride: 1, expandRatio: 6, inputFilters: 192, outputFilters: 320),
    ]

    public init(widthCoefficient: Double = 1, depthCoefficient: Double = 1, imageSize: Int = 224,
                dropoutRate: Double = 0.2, dropConnectRate: Double = 0.2, numClasses: Int = 1000,
                batchNormMomentum: Double = 0.99, batchNormEpsilon: Double = 1e-3, depthDivisor: Int = 8,
                stemChannels: Int = 32, headChannels: Int = 1280, stages: [Stage] = liteStages) {
        self.widthCoefficient = widthCoefficient
        self.depthCoefficient = depthCoefficient
        self.imageSize = imageSize
        self.dropoutRate = dropoutRate
        self.dropConnectRate = dropConnectRate
        self.numClasses = numClasses
        self.batchNormMomentum = batchNormMomentum
        self.batchNormEpsilon = batchNormEpsilon
        self.depthDivisor = depthDivisor
        self.stemChannels = stemChannels
        self.headChannels = headChannels
        self.stages = stages
    }

    /// Decodes a config, taking Lite0's value for every key that is absent.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = EfficientNetLiteConfig()
        func get<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        self.init(widthCoefficient: try get(.widthCoefficient, d.widthCoefficient),
                  depthCoefficient: try get(.depthCoefficient, d.depthCoefficient),
                  imageSize: try get(.imageSize, d.imageSize), dropoutRate: try get(.dropoutRate, d.dropoutRate),
                  dropConnectRate: try get(.dropConnectRate, d.dropConnectRate),
                  numClasses: try get(.numClasses, d.numClasses),
                  batchNormMomentum: try get(.batchNormMomentum, d.batchNormMomentum),
                  batchNormEpsilon: try get(.batchNormEpsilon, d.batchNormEpsilon),
                  depthDivisor: try get(.depthDivisor, d.depthDivisor),
                  stemChannels: try get(.stemChannels, d.stemChannels),
                  headChannels: try get(.headChannels, d.headChannels), stages: try get(.stages, d.stages))
    }

    /// Throws a clear error when the numbers cannot make a model.
    public func validate() throws {
        func fail(_ why: String) -> TorchError { TorchError("invalid EfficientNet-Lite config: \(why)") }
        guard widthCoefficient > 0, depthCoefficient > 0 else {
            throw fail("width and depth coefficients must be positive (\(widthCoefficient), \(depthCoefficient))")
        }
        guard imageSize > 0, numClasses > 0, depthDivisor > 0, stemChannels > 0, headChannels > 0, !stages.isEmpty else {
            throw fail("image_size, num_classes, depth_divisor, stem and head channels must be positive and stages "
                           + "non-empty")
        }
        guard (0..<1).contains(dropoutRate), (0..<1).contains(dropConnectRate) else {
            throw fail("dropout_rate and drop_connect_rate must be in [0, 1)")
        }
        for (i, s) in stages.enumerated() where s.repeats < 1 || s.kernelSize < 1 || s.kernelSize % 2 == 0
            || s.stride < 1 || s.expandRatio < 1 || s.inputFilters < 1 || s.outputFilters < 1 {
            throw fail("stage \(i) (\(s)) needs positive sizes and an odd kernel")
        }
    }

    /// `round_filters`: scales a channel count by the width coefficient and rounds it to a multiple of
    /// `depthDivisor` (never more than 10 % down).
    public func roundFilters(_ filters: Int) -> Int {
        let scaled = Double(filters) * widthCoefficient
        var rounded = max(depthDivisor, Int(scaled + Double(depthDivisor) / 2) / depthDivisor * depthDivisor)
        if Double(rounded) < 0.9 * scaled { rounded += depthDivisor }
        return rounded
    }

    /// `round_repeats`: ceil(depth coefficient × repeats).
    public func roundRepeats(_ repeats: Int) -> Int { Int((depthCoefficient * Double(repeats)).rounded(.up)) }

    /// Every MBConv block in order, after scaling. As in Lite, the first and last stages keep their repeats and the
    /// first stage takes the (unscaled) stem's channels.
    public var blockSpecs: [BlockSpec] {
        var out: [BlockSpec] = []
        for (i, stage) in stages.enumerated() {
            let first = i == 0, last = i == stages.count - 1
            let input = first ? stemChannels : roundFilters(stage.inputFilters)
            let output = roundFilters(stage.outputFilters)
            let repeats = first || last ? stage.repeats : roundRepeats(stage.repeats)
            for r in 0..<repeats {
                out.append(BlockSpec(inputFilters: r == 0 ? input : output, outputFilters: output,
                                     kernelSize: stage.kernelSize, stride: r == 0 ? stage.stride : 1,
                                     expandRatio: stage.expandRatio))
            }
        }
        return out
    }

    /// The number of parameters (`sum(p.numel() for p in model.parameters())`; BatchNorm's running statistics are
    /// buffers, not counted), from the sizes alone.
    public var parameterCount: Int {
        func bn(_ c: Int) -> Int { 2 * c }
        var n = 3 * stemChannels * 9 + bn(stemChannels)
        for b in blockSpecs {
            let h = b.hiddenFilters
            if b.expandRatio != 1 { n += b.inputFilters * h + bn(h) }
            n += h * b.kernelSize * b.kernelSize + bn(h) + h * b.outputFilters + bn(b.outputFilters)
        }
        let last = blockSpecs.last?.outputFilters ?? stemChannels
        n += last * headChannels + bn(headChannels)
        return n + headChannels * numClasses + numClasses
    }

    // MARK: Presets

    /// A named configuration.
    public typealias Preset = ModelPreset<EfficientNetLiteConfig>
    public static let presetFamily = "EfficientNet-Lite"

    /// EfficientNet-Lite0: width 1.0, depth 1.0, 224 px, dropout 0.2 (4.65M parameters, 1280-d features).
    public static let lite0 = EfficientNetLiteConfig()

    /// Lite0 to Lite4 with the reference's (width, depth, resolution, dropout); only Lite0's weights are used here.
    public static let presets: [Preset] = [
        (0, 1.0, 1.0, 224, 0.2), (1, 1.0, 1.1, 240, 0.2), (2, 1.1, 1.2, 260, 0.3), (3, 1.2, 1.4, 280, 0.3),
        (4, 1.4, 1.8, 300, 0.3),
    ].map { i, w, d, res, drop in
        Preset(name: "efficientnet-lite\(i)",
               config: EfficientNetLiteConfig(widthCoefficient: w, depthCoefficient: d, imageSize: res,
                                              dropoutRate: drop),
               description: "EfficientNet-Lite\(i): ReLU6, no SE, \(res) px, 1000 ImageNet classes")
    }
}
