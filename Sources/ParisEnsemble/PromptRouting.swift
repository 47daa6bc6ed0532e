import Foundation
import ParisData
import ParisModels
import ParisRun
import Torch

/// `--strategy prompt`: each prompt goes to the expert of its nearest caption centroid (`CaptionCentroids`, from the
/// run's partition), chosen once per prompt before sampling, with weight 1 and no router call: one expert per
/// sample, as top-1. The prompt's embedding is `TextCondition.pooled()` of its MiniLM tokens, which is the sentence
/// embedding the partition clustered the captions with (the experts' token length is the partition's).
///
/// It needs a partition clustered on caption features (`text`, or `both`, whose caption slice is used); any other
/// partition is an error naming the ones that work. Unconditional samples have no prompt and are refused
/// (`MixtureSampler`): route them with a router strategy. A missing expert is never chosen: the prompt goes to the
/// nearest centroid of an available one.
public enum PromptRouting {
    /// The caption centroids of `run`'s partition, for prompt embeddings `embeddingDim` wide.
    public static func centroids(run: RunLayout, embeddingDim: Int) throws -> CaptionCentroids {
        let config = try run.config()
        do { return try CaptionCentroids.load(partition: run.partition(config), embeddingDim: embeddingDim) } catch {
            throw EnsembleError("\(error)")
        }
    }

    /// The cluster of each prompt of `prompts` (tokens [B, L, D]), among `mixture`'s available experts.
    public static func clusters(_ centroids: CaptionCentroids, prompts: TextCondition,
                                mixture: MixtureOfExperts) throws -> [Int] {
        guard centroids.numClusters == mixture.numExperts else {
            throw EnsembleError("the partition has \(centroids.numClusters) clusters, the mixture \(mixture.numExperts) "
                + "experts")
        }
        guard prompts.tokens.size(1) == centroids.textLength else {
            throw EnsembleError("the prompts are encoded to \(prompts.tokens.size(1)) tokens, but the partition pooled "
                + "its captions over \(centroids.textLength) (text_length); their embeddings would not compare")
        }
        do {
            return try centroids.clusters(embeddings: try prompts.pooled(), available: mixture.members.map { $0 != nil })
        } catch { throw EnsembleError("\(error)") }
    }

    /// `clusters(_:prompts:mixture:)` with the centroids of `run`'s partition.
    public static func clusters(run: RunLayout, prompts: TextCondition, mixture: MixtureOfExperts) throws -> [Int] {
        try clusters(try centroids(run: run, embeddingDim: prompts.tokens.size(2)), prompts: prompts, mixture: mixture)
    }
}
