import Foundation
import ParisData
import ParisModels
import ParisRun
import Torch

/// Applying a trained LoRA to its base expert: checked against the base's hash and architecture, then either kept
/// as adapters (base + B·A on the fly) or merged into the weights (`paris lora merge`).
public enum LoRAMerge {
    /// The base expert in `baseFolder` with the adapters of `loraFolder` attached, in eval mode, after checking
    /// that the adapters were trained on exactly these base weights (SHA-256) and this architecture.
    public static func adapted(base baseFolder: URL, lora loraFolder: URL,
                               device: Device = .cpu) throws -> (ParisExpert, ExpertCheckpoint, LoRACheckpoint) {
        let lora = try LoRACheckpoint.read(from: loraFolder)
        let base = try ExpertCheckpoint.checkWeights(in: baseFolder)
        guard lora.baseModel == base.model else {
            throw RunError("the LoRA in \(loraFolder.path) was trained for another architecture than the expert in "
                + "\(baseFolder.path) (its base config differs)")
        }
        let digest = try Checksum.sha256(file: baseFolder.appendingPathComponent(ExpertCheckpoint.weightsName))
        guard digest == lora.baseSHA256 else {
            throw RunError("the LoRA in \(loraFolder.path) adapts other weights (base SHA-256 \(lora.baseSHA256.prefix(12))…) "
                + "than \(baseFolder.path) holds (\(digest.prefix(12))…)")
        }
        let (model, info) = try ExpertCheckpoint.load(from: baseFolder, device: device)
        try LoRA.inject(into: model, targets: lora.config.targetModules, rank: lora.config.r,
                        alpha: lora.config.loraAlpha, dropout: lora.config.loraDropout)
        let url = loraFolder.appendingPathComponent(LoRACheckpoint.weightsName)
        do { try LoRA.load(try SafeTensors.load(url, device: device).tensors, into: model) } catch {
            throw RunError("\(url.path): \(error)")
        }
        model.train(false)
        return (model, info, lora)
    }

    /// Folds the adapters into the base weights (W ← W + (α / r)·B·A) and writes an expert folder to `out`
    /// (`config.json` + `diffusion_pytorch_model.safetensors`, the base's config), refusing to overwrite one.
    @discardableResult
    public static func merge(base baseFolder: URL, lora loraFolder: URL, out: URL) throws -> URL {
        guard !FileManager.default.fileExists(atPath: out.path) else {
            throw RunError("\(out.path) already exists; choose another --out")
        }
        let (model, info, lora) = try adapted(base: baseFolder, lora: loraFolder)
        try LoRA.merge(model)
        var merged = info
        merged.steps = info.steps + lora.steps
        try merged.write(weights: try model.stateDict(), to: out)
        return out
    }
}
