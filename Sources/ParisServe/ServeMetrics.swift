import Foundation
import ParisEnsemble

/// The server's counters, written by hand in the Prometheus text format (0.0.4) at `GET /metrics`: requests by
/// route and status, a request latency histogram, the queue depth, jobs by final state, and per expert the
/// number of steps it was evaluated in and its failures. (swift-prometheus is mirrored too; the format is small
/// enough that writing it costs less than another package to build.)
public final class ServeMetrics: @unchecked Sendable {
    /// Upper bounds of the latency histogram's buckets, in seconds.
    public static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    let lock = NSLock()
    var requests: [String: Int] = [:]  // "route|status" → count
    var bucketCounts = [Int](repeating: 0, count: ServeMetrics.buckets.count)
    var latencyCount = 0
    var latencySum = 0.0
    var jobs: [JobState: Int] = [:]
    var expertCalls: [Int]
    var expertFailures: [Int]
    var batches = 0, batchedJobs = 0
    var lastFailure: [Int: (at: Date, reason: String)] = [:]

    public init(numExperts: Int) {
        expertCalls = [Int](repeating: 0, count: numExperts)
        expertFailures = [Int](repeating: 0, count: numExperts)
    }

    /// One answered request: its route pattern (`/v1/jobs/{id}`, not the id), status and seconds taken.
    public func recordRequest(route: String, status: Int, seconds: Double) {
        lock.withLock {
            requests["\(route)|\(status)", default: 0] += 1
            latencyCount += 1
            latencySum += seconds
            for (i, bound) in Self.buckets.enumerated() where seconds <= bound { bucketCounts[i] += 1 }
        }
    }

    /// The experts evaluated in one step.
    public func recordExperts(_ routing: [StepRouting]) {
        lock.withLock {
            for r in routing {
                for k in r.experts where k < expertCalls.count { expertCalls[k] += 1 }
                for d in r.dropped ?? [] where d.expert < expertFailures.count {
                    expertFailures[d.expert] += 1
                    lastFailure[d.expert] = (Date(), d.reason)
                }
            }
        }
    }

    /// Expert k's last failure (a remote expert dropped from a step) within `seconds`, nil when none.
    public func recentFailure(_ k: Int, within seconds: Double = 60) -> String? {
        lock.withLock { lastFailure[k].flatMap { Date().timeIntervalSince($0.at) <= seconds ? $0.reason : nil } }
    }

    /// A forward batch shared by `jobs` (> 1) requests.
    public func recordBatch(_ jobs: Int) { lock.withLock { batches += 1; batchedJobs += jobs } }

    /// A job that finished (done, failed, cancelled).
    public func recordJob(_ state: JobState) { lock.withLock { jobs[state, default: 0] += 1 } }

    /// The exposition text; `queueDepth` is read at the time of the scrape.
    public func render(queueDepth: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = "# HELP paris_requests_total HTTP requests answered, by route and status.\n"
        out += "# TYPE paris_requests_total counter\n"
        for key in requests.keys.sorted() {
            let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
            out += "paris_requests_total{route=\"\(parts[0])\",status=\"\(parts[1])\"} \(requests[key]!)\n"
        }
        out += "# HELP paris_request_duration_seconds Time to answer a request.\n"
        out += "# TYPE paris_request_duration_seconds histogram\n"
        for (i, bound) in Self.buckets.enumerated() {
            out += "paris_request_duration_seconds_bucket{le=\"\(bound)\"} \(bucketCounts[i])\n"
        }
        out += "paris_request_duration_seconds_bucket{le=\"+Inf\"} \(latencyCount)\n"
        out += "paris_request_duration_seconds_sum \(latencySum)\n"
        out += "paris_request_duration_seconds_count \(latencyCount)\n"
        out += "# HELP paris_queue_depth Jobs waiting behind the running one.\n# TYPE paris_queue_depth gauge\n"
        out += "paris_queue_depth \(queueDepth)\n"
        out += "# HELP paris_jobs_total Jobs finished, by final state.\n# TYPE paris_jobs_total counter\n"
        for state in [JobState.done, .failed, .cancelled] {
            out += "paris_jobs_total{state=\"\(state.rawValue)\"} \(jobs[state] ?? 0)\n"
        }
        out += "# HELP paris_batches_total Forward batches shared by several requests.\n"
        out += "# TYPE paris_batches_total counter\nparis_batches_total \(batches)\n"
        out += "# HELP paris_batched_jobs_total Requests sampled in a shared batch.\n"
        out += "# TYPE paris_batched_jobs_total counter\nparis_batched_jobs_total \(batchedJobs)\n"
        out += "# HELP paris_expert_calls_total Sampling steps in which the expert was evaluated.\n"
        out += "# TYPE paris_expert_calls_total counter\n"
        for (k, n) in expertCalls.enumerated() { out += "paris_expert_calls_total{expert=\"\(k)\"} \(n)\n" }
        out += "# HELP paris_expert_failures_total Steps a remote expert was dropped from (down, slow or a bad answer).\n"
        out += "# TYPE paris_expert_failures_total counter\n"
        for (k, n) in expertFailures.enumerated() { out += "paris_expert_failures_total{expert=\"\(k)\"} \(n)\n" }
        return out
    }
}
