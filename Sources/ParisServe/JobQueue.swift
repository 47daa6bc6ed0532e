import Foundation
import ParisEnsemble

/// Where a job is: waiting in the queue, being sampled, or finished one of three ways.
public enum JobState: String, Codable, Sendable {
    case queued, running, done, failed, cancelled

    /// Done, failed or cancelled: nothing more will happen to the job.
    public var isFinal: Bool { self == .done || self == .failed || self == .cancelled }
}

/// One server-sent event: `event: <name>` and one line of JSON `data`.
public struct JobEvent: Sendable, Equatable {
    public let name: String
    public let data: [UInt8]

    /// The event in the `text/event-stream` format.
    public var wire: [UInt8] { Array("event: \(name)\ndata: ".utf8) + data + Array("\n\n".utf8) }
}

/// The bounded job queue and its one worker: requests wait in FIFO order, a dedicated thread (not the event loop,
/// not Swift's cooperative pool) samples them through `MixtureEngine`, and every step is published as an event to
/// the job's subscribers (`subscribe`). A full queue refuses a job with 429 and a Retry-After.
///
/// Batching: the worker takes the oldest job, waits up to `ServeLimits.batchWindowMilliseconds` for others with the
/// same sampler settings, and samples them all in one forward batch (`takeBatch`, `MixtureEngine.generate(batch:)`);
/// each image is the one its request would get alone. A job cancelled in a batch is finished as cancelled at once
/// and the rest go on.
///
/// All state is guarded by one `NSCondition`, which also wakes the worker.
public final class JobQueue: @unchecked Sendable {
    final class Job {
        let id: String
        let request: GenerationRequest
        var state = JobState.queued
        var iteration = 0, step = 0
        var output: MixtureEngine.Output? = nil
        var error: String? = nil
        var cancel = false
        var events: [JobEvent] = []
        var subscribers: [UUID: AsyncStream<JobEvent>.Continuation] = [:]
        let created = Date()
        var started: Date? = nil, finished: Date? = nil

        init(id: String, request: GenerationRequest) {
            self.id = id
            self.request = request
        }

        var doneSteps: Int { iteration * request.steps + step }
        var totalSteps: Int { request.steps * request.nIter }
    }

    let engine: MixtureEngine
    let limits: ServeLimits
    let metrics: ServeMetrics
    let condition = NSCondition()
    var jobs: [String: Job] = [:]
    var finishedOrder: [String] = []
    var pending: [String] = []
    /// The jobs being sampled (several when they share a batch), oldest first.
    var current: [String] = []
    var stopped = false
    var lastDuration = 1.0  // seconds the last job took, for Retry-After
    var thread: Thread? = nil

    public init(engine: MixtureEngine, limits: ServeLimits, metrics: ServeMetrics) {
        self.engine = engine
        self.limits = limits
        self.metrics = metrics
    }

    /// Starts the worker thread.
    public func start() {
        let t = Thread { [weak self] in self?.work() }
        t.name = "paris-serve-worker"
        t.stackSize = 16 << 20
        thread = t
        t.start()
    }

    /// Stops the worker after the running job's current step; queued jobs are cancelled.
    public func stop() {
        condition.lock()
        stopped = true
        for id in current { jobs[id]?.cancel = true }
        let queued = pending
        condition.unlock()
        for id in queued { _ = cancel(id) }
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Jobs waiting behind the running one.
    public var depth: Int { condition.withLock { pending.count } }

    /// Queues `request` (seed resolved here, so the job records the seeds it will use) and returns the job's id.
    /// Throws 429 with Retry-After when `limits.maxQueuedJobs` jobs are already waiting, 503 once stopped.
    public func submit(_ request: GenerationRequest) throws -> String {
        let id = UUID().uuidString.lowercased()
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { throw APIError(503, "the server is shutting down") }
        guard pending.count < limits.maxQueuedJobs else {
            let wait = max(1, Int((lastDuration * Double(pending.count + 1)).rounded(.up)))
            throw APIError(429, "the queue is full (\(pending.count) jobs waiting, at most \(limits.maxQueuedJobs)); "
                + "retry in \(wait) s", retryAfter: wait)
        }
        let job = Job(id: id, request: request.resolvingSeed())
        jobs[id] = job
        pending.append(id)
        publish(job, JobEvent(name: "state", data: JSONText.serialize(["state": "queued", "id": id])))
        condition.broadcast()
        return id
    }

    /// Asks a job to stop: a queued job is cancelled at once, a running one after its current step.
    /// False when there is no such job or it has already finished.
    public func cancel(_ id: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard let job = jobs[id], !job.state.isFinal else { return false }
        job.cancel = true
        if job.state == .queued {
            pending.removeAll { $0 == id }
            finish(job, .cancelled, error: nil)
        }
        return true
    }

    /// AUTOMATIC1111's interrupt: cancels the running job (every job of its batch), if any.
    public func interruptCurrent() {
        condition.lock()
        let ids = current
        condition.unlock()
        for id in ids { _ = cancel(id) }
    }

    /// A job's events so far and then as they come; the stream ends after the final event (done, failed,
    /// cancelled). Nil when there is no such job.
    public func subscribe(_ id: String) -> AsyncStream<JobEvent>? {
        condition.lock()
        defer { condition.unlock() }
        guard let job = jobs[id] else { return nil }
        let (stream, continuation) = AsyncStream<JobEvent>.makeStream(bufferingPolicy: .unbounded)
        for e in job.events { continuation.yield(e) }
        if job.state.isFinal {
            continuation.finish()
        } else {
            let key = UUID()
            job.subscribers[key] = continuation
        }
        return stream
    }

    /// Waits until job `id` has finished (for txt2img, which answers with the images).
    public func wait(_ id: String) async {
        guard let stream = subscribe(id) else { return }
        for await _ in stream {}
    }

    // MARK: The worker

    func work() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopped { condition.wait() }
            if stopped { condition.unlock(); return }
            let batch = takeBatch()
            current = batch.map(\.id)
            let started = Date()
            for job in batch {
                job.state = .running
                job.started = started
                publish(job, JobEvent(name: "state", data: JSONText.serialize(["state": "running", "id": job.id])))
            }
            condition.unlock()
            let results: [Result<MixtureEngine.Output, Error>]
            if batch.count == 1, let job = batch.first {
                results = [Result { try engine.generate(job.request) { iteration, step, steps, routing in
                    self.metrics.recordExperts(routing)
                    return self.progressed(job, iteration: iteration, step: step, steps: steps, routing: routing)
                } }]
            } else {
                metrics.recordBatch(batch.count)
                do {
                    let outputs = try engine.generate(batch: batch.map(\.request)) { step, steps, routing, perJob in
                        self.metrics.recordExperts(routing)
                        // Every job gets its own rows; a cancelled one is finished now, and the batch goes on
                        // while any job still wants it.
                        return zip(batch, perJob).map { job, rows in
                            self.progressed(job, iteration: 0, step: step, steps: steps, routing: rows,
                                            finishIfCancelled: true)
                        }.contains(true)
                    }
                    results = outputs.map { .success($0) }
                } catch {
                    results = batch.map { _ in .failure(error) }
                }
            }
            condition.lock()
            current = []
            lastDuration = Date().timeIntervalSince(started) / Double(batch.count)
            for (job, result) in zip(batch, results) where !job.state.isFinal {
                switch result {
                case .success where job.cancel:
                    finish(job, .cancelled, error: nil)  // cancelled during the last step of its batch
                case .success(let output):
                    job.output = output
                    finish(job, .done, error: nil)
                case .failure(let error) where error is MixtureEngine.Cancelled:
                    finish(job, .cancelled, error: nil)
                case .failure(let error):
                    finish(job, .failed, error: "\(error)")
                }
            }
            condition.unlock()
        }
    }

    /// The next job and, after waiting `limits.batchWindowMilliseconds` for more to arrive (less once they fill a
    /// batch), every queued job
    /// that may share its forward batch (`MixtureEngine.batchable`), in queue order, up to `limits.maxBatchSize`
    /// images. Called with the lock held; removes them from `pending`.
    func takeBatch() -> [Job] {
        let first = jobs[pending.removeFirst()]!
        var images = first.request.imageCount
        func fits(_ job: Job) -> Bool {
            MixtureEngine.batchable(first.request, with: job.request) && images + job.request.imageCount <= limits.maxBatchSize
        }
        guard limits.batchWindowMilliseconds > 0, MixtureEngine.batchable(first.request, with: first.request),
              images < limits.maxBatchSize else { return [first] }
        // Wait out the window, unless the jobs that could join already fill the batch.
        let deadline = Date().addingTimeInterval(Double(limits.batchWindowMilliseconds) / 1000)
        func joinable() -> Int {
            pending.compactMap { jobs[$0] }.filter { MixtureEngine.batchable(first.request, with: $0.request) }
                .reduce(images) { $0 + $1.request.imageCount }
        }
        while !stopped && Date() < deadline && joinable() < limits.maxBatchSize { _ = condition.wait(until: deadline) }
        var batch = [first]
        for id in pending {
            guard let job = jobs[id], fits(job) else { continue }
            batch.append(job)
            images += job.request.imageCount
        }
        let taken = Set(batch.map(\.id))
        pending.removeAll { taken.contains($0) }
        return batch
    }

    /// Records a step and publishes it; false when the job was asked to stop. `finishIfCancelled` (a job sampled
    /// in a shared batch, which goes on for the others): a cancelled job is finished as cancelled here, at once.
    func progressed(_ job: Job, iteration: Int, step: Int, steps: Int, routing: [StepRouting],
                    finishIfCancelled: Bool = false) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if job.state.isFinal { return false }
        if job.cancel && finishIfCancelled {
            finish(job, .cancelled, error: nil)
            return false
        }
        job.iteration = iteration
        job.step = step
        let event: [String: Any] = [
            "iteration": iteration, "step": step, "steps": steps, "done_steps": job.doneSteps,
            "total_steps": job.totalSteps,
            "routing": routing.map { r in
                var entry: [String: Any] = ["t": r.t, "weights": r.weights, "experts": r.experts]
                if let p = r.probabilities { entry["probabilities"] = p }
                return entry
            },
        ]
        publish(job, JobEvent(name: "progress", data: JSONText.serialize(event)))
        return !job.cancel
    }

    /// Marks a job final, publishes the last event and ends its streams. Called with the lock held.
    func finish(_ job: Job, _ state: JobState, error: String?) {
        job.state = state
        job.error = error
        job.finished = Date()
        var data: [String: Any] = ["state": state.rawValue, "id": job.id]
        if let error { data["error"] = error }
        if let output = job.output { data["seeds"] = output.seeds.map { NSNumber(value: $0) } }
        publish(job, JobEvent(name: state.rawValue, data: JSONText.serialize(data)))
        for c in job.subscribers.values { c.finish() }
        job.subscribers = [:]
        metrics.recordJob(state)
        finishedOrder.append(job.id)
        while finishedOrder.count > limits.keptJobs { jobs[finishedOrder.removeFirst()] = nil }
    }

    /// Keeps `event` in the job's history and sends it to its subscribers. Called with the lock held.
    func publish(_ job: Job, _ event: JobEvent) {
        job.events.append(event)
        for c in job.subscribers.values { c.yield(event) }
    }
}
