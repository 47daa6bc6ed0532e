import Torch

/// Checks shared by every patch-based transformer config (DiT, Paris expert, router): the image splits into whole
/// patches, the heads split the width evenly, and the 2-D sine-cosine position embedding fits (width % 4 == 0).
/// `fail` wraps each message in the caller's own prefix.
func validatePatchTransformer(inputSize: Int, patchSize: Int, hiddenSize: Int, numHeads: Int,
                              fail: (String) -> TorchError) throws {
    guard inputSize % patchSize == 0 else {
        throw fail("input_size \(inputSize) is not divisible by patch_size \(patchSize)")
    }
    guard hiddenSize % numHeads == 0 else {
        throw fail("hidden_size \(hiddenSize) is not divisible by num_heads \(numHeads)")
    }
    guard hiddenSize % 4 == 0 else {
        throw fail("hidden_size \(hiddenSize) must be a multiple of 4 (2-D sine-cosine position embedding)")
    }
}

/// The initialisation DiT, PixArt-α and the Paris router share: xavier-uniform weights and zero biases for every
/// `Linear` in `module`, then xavier-uniform on the patch-embedding convolution's weight viewed as
/// [hidden, C·p·p] (as a Linear would be) with a zero bias. Call inside `withNoGrad`.
func xavierInitLinearsAndPatchEmbed(_ module: any Module, patchWeight: Tensor, patchBias: Tensor?) throws {
    for (_, m) in module.namedModules() {
        guard let linear = m as? Linear else { continue }
        try Init.xavierUniform_(linear.weight)
        if let b = linear.bias { try Init.zeros_(b) }
    }
    try Init.xavierUniform_(try patchWeight.view([patchWeight.size(0), -1]))
    if let b = patchBias { try Init.zeros_(b) }
}

/// The geometry every patch-based transformer config shares (DiT, Paris expert, router), and what follows from it.
public protocol PatchTransformerConfig {
    /// Input height and width (square), in pixels or latent cells.
    var inputSize: Int { get }
    var patchSize: Int { get }
    var hiddenSize: Int { get }
    var mlpRatio: Double { get }
}

extension PatchTransformerConfig {
    /// Patches per side.
    public var gridSize: Int { inputSize / patchSize }
    /// Image tokens per sample (gridSize²).
    public var numPatches: Int { gridSize * gridSize }
    /// The MLP's inner width, int(hiddenSize · mlpRatio) as in the references.
    public var mlpHiddenSize: Int { Int(Double(hiddenSize) * mlpRatio) }
}
