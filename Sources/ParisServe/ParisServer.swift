import Foundation
import Hummingbird
import Crypto
import Logging
import NIOCore
import ParisEnsemble
import ParisRun
import Torch

/// Where and how `paris serve` listens. Binds 127.0.0.1 by default: serving other machines is a choice.
public struct ServeOptions: Sendable, Equatable {
    public var host: String
    /// The TCP port; 0 asks the system for a free one (tests), reported through `ParisServer.run(onRunning:)`.
    public var port: Int
    public var limits: ServeLimits

    public init(host: String = "127.0.0.1", port: Int = 8080, limits: ServeLimits = .standard) {
        self.host = host
        self.port = port
        self.limits = limits
    }
}

/// `paris serve`: a run's mixture or a release, loaded once (`MixtureEngine`), behind Hummingbird 2. One worker thread
/// samples the queued jobs (`JobQueue`); the event loop only parses, queues and answers, so `/healthz` and
/// `/sdapi/v1/progress` answer while an image is being sampled. Routes: `ServeRoutes.swift`; docs/serving.md.
public final class ParisServer: Sendable {
    public let engine: MixtureEngine
    public let queue: JobQueue
    public let metrics: ServeMetrics
    public let options: ServeOptions
    let started = Date()

    public init(engine: MixtureEngine, options: ServeOptions = ServeOptions()) throws {
        try options.limits.validate()
        guard (0...65535).contains(options.port) else {
            throw APIError(500, field: "port", "the port must be within 0…65535, not \(options.port)")
        }
        self.engine = engine
        self.options = options
        self.metrics = ServeMetrics(numExperts: engine.numExperts)
        self.queue = JobQueue(engine: engine, limits: options.limits, metrics: metrics)
    }

    /// Serves until the calling task is cancelled (or, with `signals`, until SIGINT/SIGTERM). `onRunning` gets the
    /// bound port once the server listens.
    public func run(handleSignals: Bool = false, onRunning: @escaping @Sendable (Int) -> Void = { _ in })
        async throws {
        queue.start()
        defer { queue.stop() }
        try await Self.serve(makeRouter(), host: options.host, port: options.port, name: "paris",
                             handleSignals: handleSignals, onRunning: onRunning)
    }

    /// Runs a Hummingbird application for `router` on host:port until cancelled (or SIGINT/SIGTERM with
    /// `handleSignals`), logging warnings only; the one server set-up of `paris serve` and `paris serve expert`.
    static func serve(_ router: Router<BasicRequestContext>, host: String, port: Int, name: String, handleSignals: Bool,
                      onRunning: @escaping @Sendable (Int) -> Void) async throws {
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: name),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? 0) },
            logger: {
                var logger = Logger(label: name)
                logger.logLevel = .warning
                return logger
            }())
        if handleSignals { try await app.runService() } else { try await app.run() }
    }

    /// A handler behind a bearer token (compared in constant time; nil: none asked), with `APIError`s as JSON
    /// answers: a request without the token, or with another, is answered 401 before its body is read.
    static func guarded(token: [UInt8]?, onRefused: @escaping @Sendable () -> Void,
                        _ body: @escaping @Sendable (Request) async throws -> Response)
        -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, _ in
            do {
                if let token {
                    let given = request.headers[.authorization].map { Array($0.utf8) } ?? []
                    guard constantTimeEqual(given, Array("Bearer ".utf8) + token) else {
                        onRefused()
                        throw APIError(401, field: "Authorization", given.isEmpty ? "a bearer token is required"
                            : "the bearer token is wrong")
                    }
                }
                return try await body(request)
            } catch let e as APIError {
                return response(e.jsonBody, contentType: "application/json", status: HTTPResponse.Status(code: e.status))
            } catch {
                return response(APIError(500, "\(error)").jsonBody, contentType: "application/json",
                                status: .internalServerError)
            }
        }
    }

    /// Equal bytes, in time that depends on the lengths only (digests of both, compared byte by byte).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let x = Array(SHA256.hash(data: a)), y = Array(SHA256.hash(data: b))
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// The uptime, the mixture and the queue, for `/healthz`.
    func health() -> [String: Any] {
        ["status": "ok", "uptime_seconds": Date().timeIntervalSince(started), "num_experts": engine.numExperts,
         "missing_experts": engine.model.missingExperts, "image_size": engine.imageSize,
         "source": engine.model.source, "default_steps": engine.model.defaults.steps,
         "default_cfg_scale": engine.model.defaults.cfgScale,
         "queue_depth": queue.depth, "max_queued_jobs": options.limits.maxQueuedJobs]
    }
}

/// The library entry of `paris serve --run R`: loads the mixture and serves it until SIGINT/SIGTERM.
public enum ServeJob {
    /// With the MiniLM prompt encoder from the package cache `cache`; blocks the calling thread (the CLI's
    /// synchronous `run()`) until the server stops.
    public static func run(run: RunLayout, device: Device, options: ServeOptions, remotes: [RemoteExpertConfig] = [],
                           packageCache cache: URL, log: @escaping @Sendable (String) -> Void) throws {
        let encode = try PromptEncoding.miniLM(cache: cache, device: device, log: log)
        let countTokens = try PromptEncoding.miniLMTokenCounter(cache: cache, log: log)
        try block { [encode] in
            try await self.run(run: run, device: device, options: options, encode: encode, countTokens: countTokens,
                               remotes: remotes, log: log)
        }
    }

    /// Runs `body` on a detached task and blocks the calling thread (the CLI's synchronous `run()`) until it ends.
    static func block(_ body: sending @escaping () async throws -> Void) throws {
        let done = DispatchSemaphore(value: 0)
        let failure = ErrorBox()
        let task = Task.detached {
            do { try await body() } catch { failure.error = error }
            done.signal()
        }
        done.wait()
        _ = task
        if let error = failure.error { throw error }
    }

    /// With an injected prompt encoder (tests pass `TinyRun.encoder`) and token counter.
    public static func run(run: RunLayout, device: Device, options: ServeOptions, encode: @escaping PromptEncoder,
                           countTokens: PromptTokenCounter? = nil, remotes: [RemoteExpertConfig] = [],
                           log: @escaping @Sendable (String) -> Void) async throws {
        try await serve(try MixtureEngine(run: run, device: device, encode: encode, countTokens: countTokens,
                                          remotes: remotes, log: log), options: options, log: log)
    }

    /// `paris serve --release DIR`: loads the released Paris folder (`ParisRelease`) and serves it until
    /// SIGINT/SIGTERM with the same API; blocks the calling thread.
    public static func runRelease(folder: URL, device: Device, options: ServeOptions,
                                  log: @escaping @Sendable (String) -> Void) throws {
        let engine = try MixtureEngine(release: folder, device: device, log: log)
        try block { try await serve(engine, options: options, log: log) }
    }

    /// Serves `engine` until SIGINT/SIGTERM.
    static func serve(_ engine: MixtureEngine, options: ServeOptions, log: @escaping @Sendable (String) -> Void)
        async throws {
        let server = try ParisServer(engine: engine, options: options)
        try await server.run(handleSignals: true) { port in
            log("serving \(engine.model.source) (\(engine.numExperts) experts, \(engine.imageSize)×\(engine.imageSize)) "
                + "at http://\(options.host):\(port)/")
        }
    }
}

extension ServeJob {
    /// `paris serve expert`: serves expert k of `run` until SIGINT/SIGTERM; blocks the calling thread.
    public static func runExpert(run: RunLayout, expert k: Int, device: Device, host: String, port: Int,
                                 tokenFile: URL?, log: @escaping @Sendable (String) -> Void) throws {
        let token = try tokenFile.map { try RemoteExpert.token(file: $0) }
        let server = try ExpertServer(run: run, expert: k, device: device, token: token, host: host, port: port)
        let guarded = token != nil
        try block {
            try await server.run(handleSignals: true) { port in
                log("serving expert \(k) of \(run.root.path) at http://\(host):\(port)/ (POST /v1/velocity"
                    + (guarded ? ", bearer token required)" : ", no token asked)"))
            }
        }
    }
}

/// The error of a detached task, handed back to the thread that waited for it.
final class ErrorBox: @unchecked Sendable {
    var error: (any Error)?
}
