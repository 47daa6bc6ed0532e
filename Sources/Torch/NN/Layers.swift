import CTorch

/// y = x·Wᵀ + b (`torch.nn.Linear`). Parameters `weight` [out, in] and `bias` [out], initialised as PyTorch does and
/// in the same order: weight ~ kaiming_uniform(a = √5) = U(±1/√in), then bias ~ U(±1/√in). After the same
/// `Runtime.manualSeed` the weights are bit-identical to PyTorch's.
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    /// [outFeatures, inFeatures]
    public let weight: Tensor
    /// [outFeatures], or nil when made with `bias: false`.
    public let bias: Tensor?
    public var isTraining = true
    /// An adapter whose delta the forward pass adds: a `LoRAAdapter` (`LoRA.inject` attaches it, `LoRA.merge`
    /// folds it in) or another `LinearAdapter` (a remote LoRA). It is not a child: the layer's state dict stays
    /// `weight`, `bias`.
    public var adapter: (any LinearAdapter)?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, dtype: DType = .float32,
                device: Device = .cpu) throws {
        guard inFeatures >= 0, outFeatures >= 0 else {
            throw TorchError("Linear(\(inFeatures), \(outFeatures)): feature counts must not be negative")
        }
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let shape = [outFeatures, inFeatures]
        weight = try makeParameter(shape, dtype: dtype, device: device) { try Init.kaimingUniform_($0, a: 5.0.squareRoot()) }
        self.bias = bias ? try makeParameter([outFeatures], dtype: dtype, device: device) {
            try Init.fanInUniform_($0, weightShape: shape)
        } : nil
    }

    public var localParameters: [(String, Tensor)] {
        if let bias { return [("weight", weight), ("bias", bias)] }
        return [("weight", weight)]
    }

    /// x: [..., in] → [..., out]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try x.linear(weight: weight, bias: bias)
        guard let adapter else { return y }
        return try y + adapter.delta(x, training: isTraining)
    }
}

/// 2-D convolution over [N, C, H, W] (`torch.nn.Conv2d`, zero padding). Parameters `weight`
/// [out, in/groups, kH, kW] and `bias` [out], initialised as PyTorch: weight ~ kaiming_uniform(a = √5), then
/// bias ~ U(±1/√fan_in) with fan_in = in/groups·kH·kW.
public final class Conv2d: Layer {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: (Int, Int)
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let dilation: (Int, Int)
    public let groups: Int
    /// [outChannels, inChannels / groups, kH, kW]
    public let weight: Tensor
    /// [outChannels], or nil.
    public let bias: Tensor?
    public var isTraining = true

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true,
                dtype: DType = .float32, device: Device = .cpu) throws {
        guard groups > 0 else { throw TorchError("Conv2d: groups must be a positive integer, got \(groups)") }
        guard inChannels % groups == 0 else {
            throw TorchError("Conv2d: in_channels (\(inChannels)) must be divisible by groups (\(groups))")
        }
        guard outChannels % groups == 0 else {
            throw TorchError("Conv2d: out_channels (\(outChannels)) must be divisible by groups (\(groups))")
        }
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        let shape = [outChannels, inChannels / groups, kernelSize.0, kernelSize.1]
        weight = try makeParameter(shape, dtype: dtype, device: device) { try Init.kaimingUniform_($0, a: 5.0.squareRoot()) }
        self.bias = bias ? try makeParameter([outChannels], dtype: dtype, device: device) { b in
            // PyTorch skips the draw when fan_in is 0.
            if try Init.fans(shape).fanIn != 0 { try Init.fanInUniform_(b, weightShape: shape) }
        } : nil
    }

    /// A square kernel, stride, padding and dilation.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true, dtype: DType = .float32,
                            device: Device = .cpu) throws {
        try self.init(inChannels, outChannels, kernelSize: (kernelSize, kernelSize), stride: (stride, stride),
                      padding: (padding, padding), dilation: (dilation, dilation), groups: groups, bias: bias,
                      dtype: dtype, device: device)
    }

    public var localParameters: [(String, Tensor)] {
        if let bias { return [("weight", weight), ("bias", bias)] }
        return [("weight", weight)]
    }

    /// x: [N, in, H, W] → [N, out, H', W']
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
}

/// A lookup table of `numEmbeddings` vectors of size `embeddingDim` (`torch.nn.Embedding`). Parameter `weight`
/// [num, dim] ~ N(0, 1), with the row `paddingIdx` (if any) zeroed; as in PyTorch, that row receives no gradient.
public final class Embedding: Layer {
    public let numEmbeddings: Int
    public let embeddingDim: Int
    /// The non-negative padding index, or nil.
    public let paddingIdx: Int?
    /// [numEmbeddings, embeddingDim]
    public let weight: Tensor
    public var isTraining = true

    /// `paddingIdx` may be negative (counted from the end), as in PyTorch.
    public init(_ numEmbeddings: Int, _ embeddingDim: Int, paddingIdx: Int? = nil, dtype: DType = .float32,
                device: Device = .cpu) throws {
        var pad = paddingIdx
        if let p = paddingIdx {
            guard p < numEmbeddings, p >= -numEmbeddings else {
                throw TorchError("Embedding: padding_idx \(p) must be within num_embeddings (\(numEmbeddings))")
            }
            pad = p < 0 ? p + numEmbeddings : p
        }
        self.numEmbeddings = numEmbeddings
        self.embeddingDim = embeddingDim
        self.paddingIdx = pad
        weight = try makeParameter([numEmbeddings, embeddingDim], dtype: dtype, device: device) { w in
            try Init.normal_(w)
            if let pad { try w.select(0, pad).fill_(0) }
        }
    }

    public var localParameters: [(String, Tensor)] { [("weight", weight)] }

    /// indices: [...] integer → [..., dim]
    public func callAsFunction(_ indices: Tensor) throws -> Tensor {
        let out = try weight.embedding(indices)
        guard let paddingIdx else { return out }
        // Same values, but the padding row's entries come from a detached copy, so they get no gradient.
        let isPad = try indices.eq(Double(paddingIdx)).unsqueeze(-1)
        return try Tensor.where(isPad, try weight.detach().embedding(indices), out)
    }
}
