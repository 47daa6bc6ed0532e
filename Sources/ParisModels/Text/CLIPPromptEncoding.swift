import Foundation
import Torch

extension CLIPTextModel {
    /// The prompt of the unconditional branch of classifier-free guidance in Paris: the empty string, whose ids are
    /// `<|startoftext|> <|endoftext|>` followed by 75 `<|endoftext|>` pads.
    public static let unconditionalPrompt = ""

    /// The text conditioning of the released Paris experts: CLIP's last hidden state (after `final_layer_norm`),
    /// [B, T, C] with T = `tokenizer.maxLength` (77) and C = `hidden_size` (768 for ViT-L/14), for `prompts`.
    ///
    /// As the release computes it (transformers' `CLIPTokenizer(prompt, max_length=77, padding="max_length",
    /// truncation=True)`, then `CLIPTextModel(input_ids).last_hidden_state`):
    /// - every prompt is padded with `<|endoftext|>` to T tokens, and a longer one is truncated to
    ///   `<|startoftext|>`, its first T − 2 tokens, `<|endoftext|>`;
    /// - **no attention mask** is given: only the causal mask applies, so the padding positions attend to the
    ///   prompt and carry their own states, which the experts' cross-attention sees;
    /// - the empty string (`unconditionalPrompt`) gives the unconditional embedding.
    ///
    /// Runs `batchSize` prompts at a time without autograd, on the model's device and in its dtype. Throws when the
    /// tokenizer's ids do not fit the model's `vocab_size`, or its length exceeds `max_position_embeddings`.
    public func encodePrompts(_ prompts: [String], tokenizer: CLIPTokenizer, batchSize: Int = 64) throws -> Tensor {
        guard batchSize > 0 else { throw TorchError("encodePrompts: batchSize must be positive, got \(batchSize)") }
        guard tokenizer.highestID < config.vocabSize else {
            throw TorchError("encodePrompts: the tokenizer has ids up to \(tokenizer.highestID), beyond the model's "
                                 + "vocab_size (\(config.vocabSize))")
        }
        guard tokenizer.maxLength <= config.maxPositionEmbeddings else {
            throw TorchError("encodePrompts: the tokenizer's \(tokenizer.maxLength) tokens exceed the model's "
                                 + "max_position_embeddings (\(config.maxPositionEmbeddings))")
        }
        let weight = tokenEmbedding.weight
        guard !prompts.isEmpty else {
            return try Tensor.zeros([0, tokenizer.maxLength, config.hiddenSize], dtype: weight.dtype,
                                    device: weight.device)
        }
        var out: [Tensor] = []
        try withNoGrad {
            for start in stride(from: 0, to: prompts.count, by: batchSize) {
                let batch = Array(prompts[start..<min(start + batchSize, prompts.count)])
                let (ids, _) = try tokenizer.encode(batch, device: weight.device)  // [b, T]; the mask is not used
                out.append(try self(ids).hidden)  // [b, T, C]
            }
        }
        return out.count == 1 ? out[0] : try Tensor.cat(out, dim: 0)
    }
}
