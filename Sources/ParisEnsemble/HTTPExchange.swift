import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One blocking HTTP client for the remote members of a mixture (`RemoteExpert`) and remote LoRA deltas
/// (`RemoteLoRA`): a base URL, an optional bearer token, one timeout per call. Synchronous, because its callers run
/// inside a model's forward pass on the sampler's thread.
public final class HTTPExchange: @unchecked Sendable {
    public let base: URL
    let token: String?
    let timeoutSeconds: Double
    let session: URLSession

    /// A call that got no HTTP answer: unreachable, refused, or slower than the timeout.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public init(base: URL, token: String?, timeoutSeconds: Double) {
        self.base = base
        self.token = token
        self.timeoutSeconds = timeoutSeconds
        let c = URLSessionConfiguration.ephemeral
        c.timeoutIntervalForRequest = timeoutSeconds
        c.timeoutIntervalForResource = timeoutSeconds
        session = URLSession(configuration: c)
    }

    /// One exchange, waited for on this thread: `path` ("/v1/info") with optional query items and body → the
    /// status and the body of the answer.
    public func call(_ method: String, _ path: String, query: [String: String] = [:],
                     body: [UInt8]?) throws -> (status: Int, body: [UInt8]) {
        var url = base.appendingPathComponent(String(path.dropFirst()))
        if !query.isEmpty, var parts = URLComponents(url: url, resolvingAgainstBaseURL: false) {
            parts.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            url = parts.url ?? url
        }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = timeoutSeconds
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = Data(body)
            request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<(Int, [UInt8]), Error> = .failure(Failure(description: "no answer"))
        let task = session.dataTask(with: request) { data, response, error in
            if let error {
                result = .failure(Failure(description: "\(method) \(path): \(error.localizedDescription)"))
            } else if let http = response as? HTTPURLResponse {
                result = .success((http.statusCode, [UInt8](data ?? Data())))
            }
            done.signal()
        }
        task.resume()
        if done.wait(timeout: .now() + timeoutSeconds + 1) == .timedOut {
            task.cancel()
            throw Failure(description: "\(method) \(path): no answer within \(timeoutSeconds) s")
        }
        let (status, answer) = try result.get()
        return (status, answer)
    }
}
