import Torch

/// What the expert uses as the "no caption" condition for classifier-free guidance.
public enum NullTextEmbedding: String, Codable, Sendable {
    /// The text encoder's embedding of the empty prompt "" (the released Paris experts). The expert holds no
    /// parameter for it: the caller encodes "" and passes it as `text`.
    case emptyPrompt = "empty_prompt"
    /// All-zero text tokens [B, textLength, textDim].
    case zero
    /// A learned table `null_text_embedding` [textLength, textDim] (PixArt-α's `y_embedding`), trained by caption
    /// dropout.
    case learned
}

/// The shape of a Paris expert: a DiT with adaLN-Single and cross-attention on text tokens (PixArt-α style).
/// JSON keys are snake_case (`hidden_size`, `text_dim`, ...).
public struct ParisExpertConfig: PatchTransformerConfig, PresetConfig, Codable, Sendable, Equatable {
    /// Input height = width (latent or pixel grid), e.g. 32.
    public var inputSize: Int
    /// Input (and output) channels: 4 for SD-VAE latents, 3 for pixels.
    public var inChannels: Int
    public var patchSize: Int
    public var hiddenSize: Int
    public var depth: Int
    public var numHeads: Int
    public var mlpRatio: Double
    /// Width of the text tokens the expert attends to (768 for CLIP ViT-L/14, 384 for MiniLM).
    public var textDim: Int
    /// The number of text tokens of the null embedding (77 for CLIP). Inputs may have any length.
    public var textLength: Int
    public var nullText: NullTextEmbedding
    /// The sinusoid's width before `time_embed` (256).
    public var frequencyEmbeddingSize: Int
    /// The (affine-free) LayerNorms' epsilon; 1e-5 as `F.layer_norm` in the reference.
    public var normEps: Double

    enum CodingKeys: String, CodingKey {
        case inputSize = "input_size", inChannels = "in_channels", patchSize = "patch_size"
        case hiddenSize = "hidden_size", depth, numHeads = "num_heads", mlpRatio = "mlp_ratio"
        case textDim = "text_dim", textLength = "text_length", nullText = "null_text"
        case frequencyEmbeddingSize = "frequency_embedding_size", normEps = "norm_eps"
    }

    public init(inputSize: Int, inChannels: Int, patchSize: Int, hiddenSize: Int, depth: Int, numHeads: Int,
                mlpRatio: Double = 4, textDim: Int, textLength: Int, nullText: NullTextEmbedding,
                frequencyEmbeddingSize: Int = 256, normEps: Double = 1e-5) {
        self.inputSize = inputSize
        self.inChannels = inChannels
        self.patchSize = patchSize
        self.hiddenSize = hiddenSize
        self.depth = depth
        self.numHeads = numHeads
        self.mlpRatio = mlpRatio
        self.textDim = textDim
        self.textLength = textLength
        self.nullText = nullText
        self.frequencyEmbeddingSize = frequencyEmbeddingSize
        self.normEps = normEps
    }

    /// The released Paris expert (DiT-XL/2 scale): 32×32×4 SD-VAE latents, patch 2, hidden 1152, 28 layers,
    /// 16 heads, CLIP ViT-L/14 tokens (77 × 768); the null condition is CLIP("").
    /// 605,675,536 trainable parameters (605,970,448 with the fixed `pos_embed`).
    public static let paris = ParisExpertConfig(inputSize: 32, inChannels: 4, patchSize: 2, hiddenSize: 1152,
                                                depth: 28, numHeads: 16, textDim: 768, textLength: 77,
                                                nullText: .emptyPrompt)

    /// A DiT-B/2-scale expert on the same inputs as `paris`: hidden 768, 12 layers, 12 heads.
    /// 118,370,320 trainable parameters (adaLN-Single makes it smaller than DiT-B/2's 130M).
    public static let parisB2 = ParisExpertConfig(inputSize: 32, inChannels: 4, patchSize: 2, hiddenSize: 768,
                                                  depth: 12, numHeads: 12, textDim: 768, textLength: 77,
                                                  nullText: .emptyPrompt)

    /// CPU training on 32×32 RGB pixels with MiniLM caption tokens (32 × 384), learned null text: patch 2
    /// (256 tokens), hidden 128, 4 layers, 4 heads. 1,271,820 trainable parameters.
    public static let cpuSmall = ParisExpertConfig(inputSize: 32, inChannels: 3, patchSize: 2, hiddenSize: 128,
                                                   depth: 4, numHeads: 4, textDim: 384, textLength: 32,
                                                   nullText: .learned)

    /// The smallest useful CPU expert: 32×32 RGB pixels, patch 4 (64 tokens), hidden 64, 2 layers, 4 heads,
    /// MiniLM tokens (32 × 384), learned null text. 222,384 trainable parameters.
    public static let cpuTiny = ParisExpertConfig(inputSize: 32, inChannels: 3, patchSize: 4, hiddenSize: 64,
                                                  depth: 2, numHeads: 4, textDim: 384, textLength: 32,
                                                  nullText: .learned)

    /// A named configuration.
    public typealias Preset = ModelPreset<ParisExpertConfig>
    public static let presetFamily = "Paris expert"

    /// The named expert presets: `paris-XL/2` (`paris`), `paris-B/2` (`parisB2`), `paris-S/2` (`cpuSmall`),
    /// `paris-T/4` (`cpuTiny`).
    public static let presets: [Preset] = [
        Preset(name: "paris-XL/2", config: .paris,
               description: "released Paris expert: 32×32×4 latents, CLIP ViT-L/14 tokens (77×768)"),
        Preset(name: "paris-B/2", config: .parisB2,
               description: "DiT-B/2-scale Paris expert: 32×32×4 latents, 77×768 text tokens"),
        Preset(name: "paris-S/2", config: .cpuSmall,
               description: "small, CPU: 32×32×3 pixels, MiniLM tokens (32×384), learned null text"),
        Preset(name: "paris-T/4", config: .cpuTiny,
               description: "tiny, CPU: 32×32×3 pixels, MiniLM tokens (32×384), learned null text"),
    ]

    /// Throws a clear error for a configuration the model cannot be built with.
    public func validate() throws {
        func fail(_ why: String) -> TorchError { TorchError("ParisExpertConfig: \(why)") }
        guard inputSize > 0, inChannels > 0, patchSize > 0, hiddenSize > 0, depth >= 0, numHeads > 0, textDim > 0,
              textLength > 0, frequencyEmbeddingSize > 0, mlpRatio > 0 else {
            throw fail("sizes must be positive")
        }
        try ModelLimits.checkPatchTransformer(inputSize: inputSize, inChannels: inChannels, patchSize: patchSize,
                                              hiddenSize: hiddenSize, depth: depth, numHeads: numHeads,
                                              mlpRatio: mlpRatio, fail: fail)
        try ModelLimits.check("text_dim", textDim, ModelLimits.maxWidth, "maxWidth", fail)
        try ModelLimits.check("text_length", textLength, ModelLimits.maxTextLength, "maxTextLength", fail)
        try ModelLimits.check("frequency_embedding_size", frequencyEmbeddingSize, ModelLimits.maxWidth, "maxWidth", fail)
        try validatePatchTransformer(inputSize: inputSize, patchSize: patchSize, hiddenSize: hiddenSize,
                                     numHeads: numHeads, fail: fail)
    }

    /// Trainable parameters, computed from the configuration (equals `ParisExpert(config).parameterCount`).
    public var parameterCount: Int {
        let h = hiddenSize, m = mlpHiddenSize
        let linear = { (i: Int, o: Int) in i * o + o }
        let attention = 4 * h * h + 4 * h  // in_proj (3h×h + 3h) + out_proj (h×h + h)
        let block = 6 * h + 2 * attention + linear(h, m) + linear(m, h)
        var total = inChannels * patchSize * patchSize * h + h       // patch_embed
        total += linear(frequencyEmbeddingSize, h) + linear(h, h)     // time_embed
        total += linear(textDim, h)                                   // text_proj
        total += linear(h, 6 * h)                                     // t_block
        total += depth * block                                        // layers
        total += linear(h, patchSize * patchSize * inChannels) + 2 * h  // final_layer
        if nullText == .learned { total += textLength * textDim }     // null_text_embedding
        return total
    }

    /// Scalars in the state dict: the parameters plus the fixed `pos_embed` buffer.
    public var stateDictCount: Int { parameterCount + numPatches * hiddenSize }
}
