import Foundation
import ParisDiffusion

/// The bounds `paris serve` puts on what one request may ask for and on how much work it holds, so that no
/// request can take the server down. Codable, with the named preset `standard`.
public struct ServeLimits: Codable, Sendable, Equatable {
    /// The most sampling steps a request may ask for (a server is not `paris sample`: `SamplerConfig.maxSteps` is
    /// 10,000, here 200; Paris samples with 50).
    public var maxSteps: Int
    /// The most images of one forward batch (`batch_size`).
    public var maxBatchSize: Int
    /// The most images of one request, `batch_size × n_iter`.
    public var maxImagesPerRequest: Int
    /// Jobs waiting behind the running one; one more is answered 429 with Retry-After.
    public var maxQueuedJobs: Int
    /// The largest request body, in bytes; a larger one is answered 413.
    public var maxBodyBytes: Int
    /// The longest prompt, in characters (the text encoder then truncates to its token limit).
    public var maxPromptCharacters: Int
    /// Finished jobs kept for `GET /v1/jobs/{id}`; the oldest are forgotten first.
    public var keptJobs: Int
    /// How long the worker waits, after taking a job, for others with the same settings to share its forward
    /// batch (up to `maxBatchSize` images in all); 0 turns batching off.
    public var batchWindowMilliseconds: Int

    public init(maxSteps: Int = 200, maxBatchSize: Int = 16, maxImagesPerRequest: Int = 64, maxQueuedJobs: Int = 16,
                maxBodyBytes: Int = 1 << 20, maxPromptCharacters: Int = 2000, keptJobs: Int = 256,
                batchWindowMilliseconds: Int = 20) {
        self.maxSteps = maxSteps
        self.maxBatchSize = maxBatchSize
        self.maxImagesPerRequest = maxImagesPerRequest
        self.maxQueuedJobs = maxQueuedJobs
        self.maxBodyBytes = maxBodyBytes
        self.maxPromptCharacters = maxPromptCharacters
        self.keptJobs = keptJobs
        self.batchWindowMilliseconds = batchWindowMilliseconds
    }

    /// The defaults: 200 steps, batches of 16, 64 images a request, 16 queued jobs, 1 MiB bodies, a 20 ms batching
    /// window (a few percent of one 20-step image on a CPU).
    public static let standard = ServeLimits()

    enum CodingKeys: String, CodingKey {
        case maxSteps = "max_steps", maxBatchSize = "max_batch_size", maxImagesPerRequest = "max_images_per_request"
        case maxQueuedJobs = "max_queued_jobs", maxBodyBytes = "max_body_bytes"
        case maxPromptCharacters = "max_prompt_characters", keptJobs = "kept_jobs"
        case batchWindowMilliseconds = "batch_window_ms"
    }

    /// Throws unless every bound is positive and `maxSteps` is within `SamplerConfig.maxSteps`.
    public func validate() throws {
        for (name, value) in [("max_steps", maxSteps), ("max_batch_size", maxBatchSize),
                              ("max_images_per_request", maxImagesPerRequest), ("max_queued_jobs", maxQueuedJobs),
                              ("max_body_bytes", maxBodyBytes), ("max_prompt_characters", maxPromptCharacters),
                              ("kept_jobs", keptJobs)] where value < 1 {
            throw APIError(500, field: name, "the serve limit \(name) must be ≥ 1, not \(value)")
        }
        guard (0...10_000).contains(batchWindowMilliseconds) else {
            throw APIError(500, field: "batch_window_ms", "the serve limit batch_window_ms must be within 0…10000, "
                + "not \(batchWindowMilliseconds)")
        }
        try SamplerConfig.checkSteps(maxSteps)
    }
}
