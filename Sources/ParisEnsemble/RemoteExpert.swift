import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParisDiffusion
import ParisModels
import Torch

/// Where a remote member of a run's mixture is served (`paris serve expert`), as `mixture.json` beside run.json
/// lists it (`{"remote": [{"expert": 2, "url": "http://10.0.0.7:8090", "token_file": "…"}]}`) or
/// `--remote K=URL` gives it.
public struct RemoteExpertConfig: Codable, Sendable, Equatable {
    /// The expert slot k it fills.
    public var expert: Int
    /// The base URL of its `paris serve expert` (`POST <url>/v1/velocity`).
    public var url: String
    /// A file holding the bearer token (first line), nil for an expert served without one.
    public var tokenFile: String?
    /// Seconds one call may take before it counts as failed.
    public var timeoutSeconds: Double
    /// Further attempts after a failed call, within the same step.
    public var retries: Int

    public init(expert: Int, url: String, tokenFile: String? = nil, timeoutSeconds: Double = 30, retries: Int = 1) {
        self.expert = expert
        self.url = url
        self.tokenFile = tokenFile
        self.timeoutSeconds = timeoutSeconds
        self.retries = retries
    }

    enum CodingKeys: String, CodingKey {
        case expert, url, tokenFile = "token_file", timeoutSeconds = "timeout_s", retries
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        expert = try c.decode(Int.self, forKey: .expert)
        url = try c.decode(String.self, forKey: .url)
        tokenFile = try c.decodeIfPresent(String.self, forKey: .tokenFile)
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? 30
        retries = try c.decodeIfPresent(Int.self, forKey: .retries) ?? 1
    }

    /// Parses `K=URL` (`--remote 2=http://127.0.0.1:8090`).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let k = Int(parts[0]), k >= 0 else {
            throw EnsembleError("--remote '\(text)': expected K=URL, e.g. 2=http://127.0.0.1:8090")
        }
        self.init(expert: k, url: parts[1])
    }

    /// Throws unless the URL is http(s) with a host, the expert index is ≥ 0, and the timeout and retries are sane.
    public func validate() throws {
        guard expert >= 0 else { throw EnsembleError("remote expert \(expert): the index must be ≥ 0") }
        guard let u = URL(string: url), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
            throw EnsembleError("remote expert \(expert): '\(url)' is not an http(s) URL")
        }
        guard timeoutSeconds.isFinite, timeoutSeconds > 0, timeoutSeconds <= 3600 else {
            throw EnsembleError("remote expert \(expert): timeout_s must be within (0, 3600], not \(timeoutSeconds)")
        }
        guard (0...10).contains(retries) else {
            throw EnsembleError("remote expert \(expert): retries must be within 0…10, not \(retries)")
        }
    }

    /// The remote members of `<run>/mixture.json`, or none when the file is absent.
    public static func read(mixtureJSON url: URL) throws -> [RemoteExpertConfig] { try MixtureFile.read(url).remote }
}

/// A remote expert call that failed: unreachable, too slow, refused, or an answer that breaks the wire format.
/// The mixture drops the expert for that step and renormalises over the rest (`MixtureOfExperts.velocity`).
public struct RemoteExpertError: Error, CustomStringConvertible, Sendable {
    public let url: String
    public let reason: String
    public var description: String { "remote expert \(url): \(reason)" }
}

/// The client of one remote expert: its guided velocity over HTTP (`VelocityWire`), with a bearer token, a timeout
/// per call and retries. Synchronous: it is called from the sampler's thread.
public final class RemoteExpert: @unchecked Sendable {
    public let config: RemoteExpertConfig
    let http: HTTPExchange

    public init(_ config: RemoteExpertConfig) throws {
        try config.validate()
        self.config = config
        let token: String?
        do { token = try config.tokenFile.map { try Self.token(file: URL(fileURLWithPath: $0)) } } catch {
            throw EnsembleError("remote expert \(config.expert): \(error)")
        }
        http = HTTPExchange(base: URL(string: config.url)!, token: token, timeoutSeconds: config.timeoutSeconds)
    }

    /// What the remote serves (`GET /v1/info`): its input shape, cluster and objective.
    public func info() throws -> RemoteExpertInfo {
        let (status, body) = try call("GET", "/v1/info", body: nil)
        guard status == 200 else { throw failure("GET /v1/info answered \(status): \(String(decoding: body, as: UTF8.self))") }
        do { return try JSONDecoder().decode(RemoteExpertInfo.self, from: Data(body)) } catch {
            throw failure("GET /v1/info is not an expert's info: \(error)")
        }
    }

    /// The remote expert's guided velocity for x [B, C, H, W] at network time t [B] → [B, C, H, W] on x's device.
    public func velocity(_ x: Tensor, _ t: Tensor, _ text: TextCondition?, _ scale: Double) throws -> Tensor {
        let body = try VelocityWire.encode(x: x, t: t, text: text, guidance: scale)
        var last = ""
        for _ in 0...config.retries {
            do {
                let (status, answer) = try call("POST", "/v1/velocity", body: body)
                guard status == 200 else {
                    last = "POST /v1/velocity answered \(status): \(String(decoding: answer.prefix(300), as: UTF8.self))"
                    if status == 401 || status == 400 { break }  // the same request fails the same way again
                    continue
                }
                do { return try VelocityWire.decodeResponse(answer, shape: x.shape).to(device: x.device, dtype: x.dtype) }
                catch { last = "a bad answer: \(error)" }
            } catch let e as RemoteExpertError {
                last = e.reason
            }
        }
        throw failure(last)
    }

    /// The bearer token of a token file: its first line, trimmed (the one reader of `--token-file` and
    /// `token_file`, for the server and the client alike).
    public static func token(file: URL) throws -> String {
        guard let text = try? String(contentsOf: file, encoding: .utf8),
              let line = text.split(whereSeparator: \.isNewline).first?.trimmingCharacters(in: .whitespaces),
              !line.isEmpty else { throw EnsembleError("cannot read a token from \(file.path) (its first line)") }
        return line
    }

    func failure(_ reason: String) -> RemoteExpertError { RemoteExpertError(url: config.url, reason: reason) }

    /// One HTTP exchange (`HTTPExchange`), its failures as this expert's.
    func call(_ method: String, _ path: String, body: [UInt8]?) throws -> (Int, [UInt8]) {
        do { return try http.call(method, path, body: body) } catch let e as HTTPExchange.Failure {
            throw failure(e.description)
        }
    }
}

/// `GET /v1/info` of `paris serve expert`.
public struct RemoteExpertInfo: Codable, Sendable, Equatable {
    public var expert: Int
    public var cluster: Int?
    public var objective: String
    public var shape: VelocityWire.Shape

    public init(expert: Int, cluster: Int?, objective: String, shape: VelocityWire.Shape) {
        self.expert = expert
        self.cluster = cluster
        self.objective = objective
        self.shape = shape
    }
}
