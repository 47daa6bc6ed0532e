import Foundation
import ParisDiffusion
import ParisEnsemble

/// One request for images, as both APIs take it (`POST /sdapi/v1/txt2img` and `POST /v1/jobs`), checked field by
/// field: a wrong type, a value out of bounds or an unknown field is an `APIError` 400 naming the field.
///
/// Fields (AUTOMATIC1111's names): `prompt`, `negative_prompt` (accepted, not supported: noted in `notes`),
/// `seed` (−1 = random; image i of the request uses seed + i), `steps`, `cfg_scale`, `batch_size`, `n_iter`,
/// `width`/`height` (must equal the run's image size), and ours: `strategy` (`RoutingStrategy` syntax) and
/// `solver` (euler, heun).
public struct GenerationRequest: Sendable, Equatable {
    public var prompt = ""
    public var negativePrompt = ""
    /// The first image's seed; −1 asks for a random one (resolved by `resolvingSeed`).
    public var seed: Int64 = -1
    public var steps = 20
    public var cfgScale = 4.0
    public var batchSize = 1
    public var nIter = 1
    public var strategy: RoutingStrategy = .top2
    public var solver: ODESolver = .euler
    /// What the server accepted but does not do (an ignored negative prompt, AUTOMATIC1111 fields), for `info`.
    public var notes: [String] = []

    public init() {}

    /// The images the request makes: `batch_size × n_iter`.
    public var imageCount: Int { batchSize * nIter }

    /// The seeds of the images, in order: seed, seed + 1, … (seed must be resolved, ≥ 0).
    public var seeds: [UInt64] { (0..<imageCount).map { UInt64(seed) &+ UInt64($0) } }

    /// The request with a random seed in place of −1 (below 2³² as AUTOMATIC1111 draws them).
    public func resolvingSeed() -> GenerationRequest {
        var r = self
        if r.seed < 0 { r.seed = Int64.random(in: 0..<(1 << 32)) }
        return r
    }

    /// AUTOMATIC1111 txt2img fields that are accepted and ignored, so that its clients work unmodified.
    public static let automatic1111Ignored: Set<String> = [
        "sampler_name", "sampler_index", "scheduler", "restore_faces", "tiling", "subseed", "subseed_strength",
        "seed_resize_from_h", "seed_resize_from_w", "denoising_strength", "enable_hr", "hr_scale", "hr_upscaler",
        "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "hr_sampler_name", "hr_prompt", "hr_negative_prompt",
        "styles", "eta", "s_churn", "s_tmax", "s_tmin", "s_noise", "s_min_uncond", "override_settings",
        "override_settings_restore_afterwards", "send_images", "save_images", "alwayson_scripts", "script_name",
        "script_args", "do_not_save_samples", "do_not_save_grid", "firstphase_width", "firstphase_height",
        "comments", "disable_extra_networks", "infotext", "force_task_id", "refiner_checkpoint",
        "refiner_switch_at", "sampler_index", "image_cfg_scale",
    ]

    /// The fields this server reads.
    public static let fields: Set<String> = ["prompt", "negative_prompt", "seed", "steps", "cfg_scale", "batch_size",
                                             "n_iter", "width", "height", "strategy", "solver"]

    /// Parses and checks a JSON body. `imageSize`: the run's height = width; `numExperts`: K, for `topk:N`;
    /// `automatic1111`: accept (and note) AUTOMATIC1111's other fields instead of refusing them; `defaults`: the
    /// values of the fields the body leaves out (a release's 50 steps and CFG 7.5).
    public static func parse(_ body: [UInt8], limits: ServeLimits, imageSize: Int, numExperts: Int,
                             automatic1111: Bool, defaults: GenerationRequest = GenerationRequest())
        throws -> GenerationRequest {
        let object = try JSONValue.object(body)
        var r = defaults
        var ignored: [String] = []
        for key in object.keys.sorted() where !fields.contains(key) {
            guard automatic1111 && automatic1111Ignored.contains(key) else {
                throw APIError.badRequest(key, "unknown field '\(key)'; the fields are "
                    + fields.sorted().joined(separator: ", "))
            }
            ignored.append(key)
        }
        if let v = object["prompt"] { r.prompt = try string(v, "prompt") }
        guard r.prompt.count <= limits.maxPromptCharacters else {
            throw APIError.badRequest("prompt", "the prompt has \(r.prompt.count) characters, more than the "
                + "\(limits.maxPromptCharacters) allowed")
        }
        if let v = object["negative_prompt"] { r.negativePrompt = try string(v, "negative_prompt") }
        if let v = object["seed"] {
            r.seed = try integer(v, "seed")
            guard r.seed >= -1 else { throw APIError.badRequest("seed", "seed must be ≥ 0, or −1 for random; not \(r.seed)") }
        }
        if let v = object["steps"] { r.steps = try integer(v, "steps", in: 1...Int64(limits.maxSteps)) }
        if let v = object["cfg_scale"] {
            r.cfgScale = try number(v, "cfg_scale")
            do { try SamplerConfig.checkGuidance(r.cfgScale) } catch {
                throw APIError.badRequest("cfg_scale", "cfg_scale must be finite and within "
                    + "±\(Int(SamplerConfig.maxGuidanceScale)), not \(r.cfgScale); 1 means no guidance")
            }
        }
        if let v = object["batch_size"] {
            r.batchSize = try integer(v, "batch_size", in: 1...Int64(limits.maxBatchSize))
        }
        if let v = object["n_iter"] { r.nIter = try integer(v, "n_iter", in: 1...Int64(limits.maxImagesPerRequest)) }
        guard r.imageCount <= limits.maxImagesPerRequest else {
            throw APIError.badRequest("n_iter", "batch_size × n_iter = \(r.imageCount) images, more than the "
                + "\(limits.maxImagesPerRequest) one request may make")
        }
        for name in ["width", "height"] {
            guard let v = object[name] else { continue }
            let size: Int = try integer(v, name)
            guard size == imageSize else {
                throw APIError.badRequest(name, "\(name) must be the run's image size, \(imageSize), not \(size)")
            }
        }
        if let v = object["strategy"] {
            let text = try string(v, "strategy")
            do {
                r.strategy = try RoutingStrategy(parsing: text)
                try r.strategy.validate(numExperts: numExperts)
            } catch { throw APIError.badRequest("strategy", "\(error)") }
            guard r.strategy != .oracle else {
                throw APIError.badRequest("strategy", "the oracle strategy needs dataset captions; the server "
                    + "serves \(RoutingStrategy.syntax.replacingOccurrences(of: ", oracle", with: ""))")
            }
        }
        if let v = object["solver"] {
            let text = try string(v, "solver")
            guard let s = ODESolver(rawValue: text) else {
                throw APIError.badRequest("solver", "solver must be euler or heun, not '\(text)'")
            }
            r.solver = s
        }
        if !r.negativePrompt.isEmpty { r.notes.append("negative_prompt is not supported and was ignored") }
        if !ignored.isEmpty { r.notes.append("ignored AUTOMATIC1111 fields: " + ignored.joined(separator: ", ")) }
        return r
    }

    static func string(_ v: JSONValue, _ field: String) throws -> String {
        guard case .string(let s) = v else { throw APIError.badRequest(field, "\(field) must be a string, not \(v.kind)") }
        return s
    }

    static func number(_ v: JSONValue, _ field: String) throws -> Double {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: throw APIError.badRequest(field, "\(field) must be a number, not \(v.kind)")
        }
    }

    static func integer<T: FixedWidthInteger>(_ v: JSONValue, _ field: String, in range: ClosedRange<Int64>? = nil)
        throws -> T {
        let value: Int64
        switch v {
        case .int(let i): value = i
        case .double(let d) where d.isFinite && d == d.rounded() && abs(d) < 9e15: value = Int64(d)
        case .double(let d): throw APIError.badRequest(field, "\(field) must be an integer, not \(d)")
        default: throw APIError.badRequest(field, "\(field) must be an integer, not \(v.kind)")
        }
        if let range, !range.contains(value) {
            throw APIError.badRequest(field, "\(field) must be within \(range.lowerBound)…\(range.upperBound), "
                + "not \(value)")
        }
        guard let t = T(exactly: value) else { throw APIError.badRequest(field, "\(field) is out of range: \(value)") }
        return t
    }
}
