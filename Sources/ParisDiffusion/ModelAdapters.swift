import ParisModels
import Torch

/// The models of ParisModels as velocity models, so the samplers (and later the router-weighted mixture) can
/// integrate them directly.
extension VelocityModel {
    /// A class-conditional DiT trained with flow matching. The condition is the class labels [B] (int64); nil means
    /// the null class (classifier-free guidance's unconditional branch). With `learn_sigma` the network predicts
    /// 2·C channels, and the velocity is the first C, as DiT splits its output.
    public static func dit(_ model: DiT) -> VelocityModel {
        let channels = model.config.inChannels
        return VelocityModel { x, t, y in
            // x: [B, C, H, W], t: [B] (network time), y: [B] or nil
            let labels = try y ?? Tensor.full([x.size(0)], Double(model.config.numClasses), dtype: .int64,
                                              device: x.device)
            let out = try model(x: x, t: t, y: labels)  // [B, C or 2C, H, W]
            return model.config.learnSigma ? try out.slice(1, 0, channels) : out
        }
    }

    /// A Paris expert trained with flow matching. The condition is the text-token embeddings [B, L, textDim];
    /// nil means the expert's null text (zeros or the learned embedding, per its config; with `empty_prompt` nil
    /// throws, so pass the text encoder's embedding of "" as the condition instead).
    /// `textMask` ([B, L] bool, true = a real token) applies to conditioned calls only.
    public static func expert(_ model: ParisExpert, textMask: Tensor? = nil) -> VelocityModel {
        VelocityModel { x, t, text in
            // x: [B, C, H, W], t: [B], text: [B, L, textDim] or nil
            guard let text else { return try model(x: x, t: t, text: model.nullText(batch: x.size(0))) }
            return try model(x: x, t: t, text: text, textMask: textMask)
        }
    }
}
