import Foundation
import Torch

/// ReLU6: min(max(x, 0), 6), Lite's activation everywhere (`nn.ReLU6`).
@inline(__always)
func relu6(_ x: Tensor) throws -> Tensor { try x.clamp(min: 0.0, max: 6.0) }

/// Runs `conv` (made with padding 0) with TensorFlow's "SAME" padding for the input's actual size: the output is
/// ceil(in / stride), and an odd total padding puts the extra row and column at the bottom and right. This is the
/// reference's `Conv2dDynamicSamePadding`; it equals its static padding (computed for 224 px) at 224 px and at any
/// size whose stride-2 layers all see even sizes (every multiple of 32).
func sameConv(_ conv: Conv2d, _ x: Tensor) throws -> Tensor {
    func pads(_ size: Int, _ kernel: Int, _ stride: Int) -> (Int, Int) {
        let out = (size + stride - 1) / stride
        let total = max((out - 1) * stride + kernel - size, 0)
        return (total / 2, total - total / 2)
    }
    let (top, bottom) = pads(x.size(2), conv.kernelSize.0, conv.stride.0)
    let (left, right) = pads(x.size(3), conv.kernelSize.1, conv.stride.1)
    if top == bottom && left == right {  // symmetric: the convolution pads by itself, without a copy
        return try x.conv2d(weight: conv.weight, bias: conv.bias, stride: conv.stride, padding: (top, left),
                            groups: conv.groups)
    }
    let padded = try x.pad([left, right, top, bottom])
    return try padded.conv2d(weight: conv.weight, bias: conv.bias, stride: conv.stride, groups: conv.groups)
}

/// A mobile inverted bottleneck (MBConv) block of EfficientNet-Lite, without squeeze-and-excitation: 1×1 expansion
/// (`_expand_conv`, `_bn0`; absent when the expand ratio is 1), k×k depthwise convolution (`_depthwise_conv`,
/// `_bn1`), 1×1 projection (`_project_conv`, `_bn2`, no activation), and a residual connection when the stride is 1
/// and the channels match (with stochastic depth in training).
public final class MBConvBlock: Module {
    public let spec: EfficientNetLiteConfig.BlockSpec
    let expandConv: Conv2d?, bn0: BatchNorm2d?
    let depthwiseConv: Conv2d, bn1: BatchNorm2d
    let projectConv: Conv2d, bn2: BatchNorm2d
    public var isTraining = true

    public init(_ spec: EfficientNetLiteConfig.BlockSpec, momentum: Double, eps: Double, dtype: DType = .float32,
                device: Device = .cpu) throws {
        self.spec = spec
        let hidden = spec.hiddenFilters
        if spec.expandRatio != 1 {
            expandConv = try Conv2d(spec.inputFilters, hidden, kernelSize: 1, bias: false, dtype: dtype, device: device)
            bn0 = try BatchNorm2d(hidden, eps: eps, momentum: momentum, dtype: dtype, device: device)
        } else {
            expandConv = nil
            bn0 = nil
        }
        depthwiseConv = try Conv2d(hidden, hidden, kernelSize: spec.kernelSize, stride: spec.stride, groups: hidden,
                                   bias: false, dtype: dtype, device: device)
        bn1 = try BatchNorm2d(hidden, eps: eps, momentum: momentum, dtype: dtype, device: device)
        projectConv = try Conv2d(hidden, spec.outputFilters, kernelSize: 1, bias: false, dtype: dtype, device: device)
        bn2 = try BatchNorm2d(spec.outputFilters, eps: eps, momentum: momentum, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] {
        var out: [(String, any Module)] = []
        if let expandConv, let bn0 { out += [("_expand_conv", expandConv), ("_bn0", bn0)] }
        return out + [("_depthwise_conv", depthwiseConv), ("_bn1", bn1), ("_project_conv", projectConv),
                      ("_bn2", bn2)]
    }

    /// x: [B, in, H, W] → [B, out, ⌈H/stride⌉, ⌈W/stride⌉]; `dropConnect` is the stochastic-depth probability,
    /// used in training mode only.
    public func callAsFunction(_ x: Tensor, dropConnect: Double = 0) throws -> Tensor {
        var h = x
        if let expandConv, let bn0 { h = try relu6(bn0(sameConv(expandConv, h))) }  // [B, hidden, H, W]
        h = try relu6(bn1(sameConv(depthwiseConv, h)))  // [B, hidden, H/s, W/s]
        h = try bn2(sameConv(projectConv, h))  // [B, out, H/s, W/s]
        guard spec.hasSkip else { return h }
        if isTraining && dropConnect > 0 {
            // Keeps each sample's branch with probability 1 − p, scaled by 1/(1 − p) (the reference's drop_connect).
            let keep = 1 - dropConnect
            let mask = try (Tensor.rand([h.size(0), 1, 1, 1], dtype: h.dtype, device: h.device) + keep).floor()
            h = try h / keep * mask
        }
        return try h + x  // [B, out, H, W]
    }
}

/// EfficientNet-Lite (Tan & Le 2019; the Lite variants of TensorFlow's EfficientNet): a 3×3 stride-2 stem, 16
/// MBConv blocks (for Lite0), a 1×1 head to 1280 channels, global average pooling and a linear classifier. Every
/// convolution uses TensorFlow's "SAME" padding; BatchNorm has eps 1e-3 and PyTorch momentum 0.01; the activation is
/// ReLU6.
///
/// Parameter names are those of efficientnet-lite-pytorch's `state_dict()` (`_conv_stem.weight`,
/// `_blocks.3._depthwise_conv.weight`, `_bn1.running_var`, `_fc.bias`, ...), so its `.pth` files load strictly with
/// `EfficientNetLite.pretrained(weights:)`. Use it in eval mode for features: the released weights expect inputs
/// normalised as (x·255 − 127)/128 for x in [0, 1] (what `ImageFeatureExtractor` does).
public final class EfficientNetLite: Module {
    public let config: EfficientNetLiteConfig
    let convStem: Conv2d, bn0: BatchNorm2d
    public let blocks: [MBConvBlock]
    let convHead: Conv2d, bn1: BatchNorm2d
    let dropout: Dropout
    let fc: Linear
    public var isTraining = true

    public init(_ config: EfficientNetLiteConfig = .lite0, dtype: DType = .float32, device: Device = .cpu) throws {
        try config.validate()
        self.config = config
        let momentum = 1 - config.batchNormMomentum, eps = config.batchNormEpsilon
        func bn(_ c: Int) throws -> BatchNorm2d {
            try BatchNorm2d(c, eps: eps, momentum: momentum, dtype: dtype, device: device)
        }
        convStem = try Conv2d(3, config.stemChannels, kernelSize: 3, stride: 2, bias: false, dtype: dtype,
                              device: device)
        bn0 = try bn(config.stemChannels)
        blocks = try config.blockSpecs.map { try MBConvBlock($0, momentum: momentum, eps: eps, dtype: dtype, device: device) }
        let last = blocks.last?.spec.outputFilters ?? config.stemChannels
        convHead = try Conv2d(last, config.headChannels, kernelSize: 1, bias: false, dtype: dtype, device: device)
        bn1 = try bn(config.headChannels)
        dropout = try Dropout(p: config.dropoutRate)
        fc = try Linear(config.headChannels, config.numClasses, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] {
        [("_conv_stem", convStem), ("_bn0", bn0)] + blocks.enumerated().map { ("_blocks.\($0.offset)", $0.element) }
            + [("_conv_head", convHead), ("_bn1", bn1), ("_dropout", dropout), ("_fc", fc)]
    }

    /// The feature dimension (1280 for every Lite model).
    public var featureDimension: Int { config.headChannels }

    /// The reference's `extract_features`. x: [B, 3, H, W], normalised → [B, 1280, ⌈H/32⌉, ⌈W/32⌉]
    /// ([B, 1280, 7, 7] at 224 px).
    public func features(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.size(1) == 3, x.size(2) > 0, x.size(3) > 0 else {
            throw TorchError("EfficientNet-Lite expects normalised RGB images [B, 3, H, W], got \(x.shape)")
        }
        guard x.dtype.isFloatingPoint else {
            throw TorchError("EfficientNet-Lite expects floating-point input, got \(x.dtype)")
        }
        var h = try relu6(bn0(sameConv(convStem, x)))  // [B, 32, H/2, W/2]
        for (i, block) in blocks.enumerated() {
            h = try block(h, dropConnect: config.dropConnectRate * Double(i) / Double(blocks.count))
        }  // [B, 320, H/32, W/32]
        return try relu6(bn1(sameConv(convHead, h)))  // [B, 1280, H/32, W/32]
    }

    /// Global average pooling of `features`. x: [B, 3, H, W] → [B, 1280]
    public func pooled(_ x: Tensor) throws -> Tensor {
        try features(x).adaptiveAvgPool2d((1, 1)).flatten(start: 1)  // [B, 1280]
    }

    /// ImageNet class scores (the reference's `forward`). x: [B, 3, H, W] → [B, numClasses]
    public func logits(_ x: Tensor) throws -> Tensor {
        try fc(dropout(pooled(x)))  // [B, 1000]
    }

    /// `logits(x)`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try logits(x) }

    /// A model built from `config` with the weights of a `.pth`/`.pt` file (efficientnet-lite-pytorch's state dict)
    /// or a `.safetensors` file with the same keys, loaded strictly, in eval mode, on `device`. A missing, unexpected
    /// or misshapen key throws an error that names it.
    public static func pretrained(weights: URL, config: EfficientNetLiteConfig = .lite0,
                                  device: Device = .cpu) throws -> EfficientNetLite {
        let model = try EfficientNetLite(config)
        let dict: [String: Tensor]
        if weights.pathExtension.lowercased() == "safetensors" {
            dict = try SafeTensors.load(weights).tensors
        } else {
            dict = try PyTorchCheckpoint.open(weights).dictionary
        }
        do {
            try model.loadStateDict(dict)
        } catch let error as TorchError {
            throw TorchError("EfficientNet-Lite weights \(weights.path) do not fit the model: \(error.message)")
        }
        model.eval()
        if device != .cpu { try model.to(device: device) }
        return model
    }
}
