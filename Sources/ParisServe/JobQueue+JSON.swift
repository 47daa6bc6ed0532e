import Foundation
import ParisEnsemble

extension JobQueue {
    /// `GET /v1/jobs/{id}`: `{"id", "state", "progress": {"step", "total"}, "seeds", "parameters", "error"?,
    /// and when done "images": [base64 PNG…], "info": {…}, "trace": RoutingTrace}`. Nil when there is no such job.
    public func snapshot(_ id: String, images: Bool = true) -> [String: Any]? {
        condition.lock()
        defer { condition.unlock() }
        guard let job = jobs[id] else { return nil }
        var s: [String: Any] = [
            "id": job.id, "state": job.state.rawValue,
            "progress": ["step": job.doneSteps, "total": job.totalSteps],
            "seeds": job.request.seeds.map { NSNumber(value: $0) },
            "parameters": Self.parameters(job.request, imageSize: engine.imageSize),
        ]
        if let error = job.error { s["error"] = error }
        if let output = job.output {
            if images { s["images"] = output.png.map { Data($0).base64EncodedString() } }
            s["info"] = Self.info(job.request, output, imageSize: engine.imageSize)
            if let trace = try? JSONSerialization.jsonObject(with: Data(try output.trace.jsonData())) {
                s["trace"] = trace
            }
        }
        return s
    }

    /// The output of a finished job (nil when it is not done).
    public func output(_ id: String) -> (GenerationRequest, MixtureEngine.Output)? {
        condition.withLock { jobs[id].flatMap { j in j.output.map { (j.request, $0) } } }
    }

    /// The state of a job, nil when unknown.
    public func state(_ id: String) -> JobState? { condition.withLock { jobs[id]?.state } }

    /// The request's settings as AUTOMATIC1111 echoes them in `parameters`.
    static func parameters(_ r: GenerationRequest, imageSize: Int) -> [String: Any] {
        ["prompt": r.prompt, "negative_prompt": r.negativePrompt, "seed": NSNumber(value: r.seed), "steps": r.steps,
         "cfg_scale": r.cfgScale, "batch_size": r.batchSize, "n_iter": r.nIter, "width": imageSize,
         "height": imageSize, "strategy": r.strategy.description, "solver": r.solver.rawValue]
    }

    /// AUTOMATIC1111's `info` (there a JSON string): the seeds, the prompts, the settings, our routing summary
    /// (mean weight per expert, the experts each image used most, the missing experts) and the notes.
    static func info(_ r: GenerationRequest, _ o: MixtureEngine.Output, imageSize: Int) -> [String: Any] {
        let mean = MixtureEngine.meanWeights(o.trace)
        let dominant = (0..<o.seeds.count).map { i -> Int in
            var sums = [Double](repeating: 0, count: o.trace.numExperts)
            for step in o.trace.steps where i < step.weights.count {
                for (k, w) in step.weights[i].enumerated() where k < sums.count { sums[k] += w }
            }
            return sums.indices.max { sums[$0] < sums[$1] } ?? 0
        }
        let seeds = o.seeds.map { NSNumber(value: $0) }
        return [
            "prompt": r.prompt, "all_prompts": Array(repeating: r.prompt, count: o.seeds.count),
            "negative_prompt": r.negativePrompt, "seed": seeds.first ?? 0, "all_seeds": seeds,
            "steps": r.steps, "cfg_scale": r.cfgScale, "width": imageSize, "height": imageSize,
            "batch_size": r.batchSize, "n_iter": r.nIter, "sampler_name": r.solver.rawValue,
            "routing": ["strategy": r.strategy.description, "mean_weights": mean, "dominant_expert": dominant,
                        "missing_experts": o.trace.missingExperts, "num_experts": o.trace.numExperts,
                        "dropped_experts": o.trace.droppedExperts.map(\.expert)]
                as [String: Any],
            "notes": o.notes,
        ]
    }

    /// `GET /sdapi/v1/progress`, in AUTOMATIC1111's shape: the running job's fraction done and its step.
    public func progressA1111() -> [String: Any] {
        condition.lock()
        defer { condition.unlock() }
        let job = current.first.flatMap { jobs[$0] }
        let fraction = job.map { Double($0.doneSteps) / Double(max(1, $0.totalSteps)) } ?? 0
        var eta = 0.0
        if let job, let started = job.started, fraction > 0 {
            eta = Date().timeIntervalSince(started) * (1 - fraction) / fraction
        }
        let state: [String: Any] = [
            "skipped": false, "interrupted": job?.cancel ?? false, "job": job?.id ?? "",
            "job_count": pending.count + current.count, "job_no": 0,
            "job_timestamp": job.map { Self.timestamp($0.created) } ?? "0",
            "sampling_step": job?.step ?? 0, "sampling_steps": job?.request.steps ?? 0,
        ]
        return ["progress": fraction, "eta_relative": eta, "state": state, "current_image": NSNull(),
                "textinfo": NSNull()]
    }

    static func timestamp(_ date: Date) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMddHHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }
}
