import ArgumentParser
import Foundation
import ParisEnsemble
import ParisRun
import ParisServe
import Torch

/// `paris serve [mixture] --run R …`, `paris serve --release DIR …` and `paris serve expert --run R --expert K …`.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a run's mixture (the default), one of its experts, or a LoRA's deltas over HTTP.",
        subcommands: [ServeMixture.self, ServeExpert.self, ServeLoRA.self], defaultSubcommand: ServeMixture.self)
}

/// `paris serve --run R [--host 127.0.0.1] [--port 8080] [--device auto] [--remote K=URL …]`, or
/// `paris serve --release DIR [...]` for a released Paris folder.
struct ServeMixture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mixture",
        abstract: "Serve a run's mixture (or a released Paris folder) over HTTP: AUTOMATIC1111's txt2img, a jobs API and a web page.",
        discussion: """
            Loads the run's experts and router once and answers POST /sdapi/v1/txt2img (AUTOMATIC1111's request and \
            response), GET /sdapi/v1/progress, POST /sdapi/v1/interrupt; the jobs API POST /v1/jobs, \
            GET /v1/jobs/{id}, GET /v1/jobs/{id}/events (server-sent events: progress and the router weights at \
            each step), DELETE /v1/jobs/{id}; GET /healthz, GET /v1/experts, GET /metrics (Prometheus) and the web \
            page at /. One worker samples the queued jobs in order, batching those with the same settings that \
            arrive within --batch-window milliseconds into one forward batch (each image is the one it would be \
            alone); a full queue is answered 429 with Retry-After. \
            Remote experts (<run>/mixture.json, or --remote K=URL) fill their slots over HTTP; one that fails at a \
            step is dropped for that step and its weight renormalised over the rest. \
            With --release DIR instead of --run, the same API serves a released Paris folder (model_index.json, \
            expert_<k>/, router/, vae/, text_encoder/, tokenizer/) through its own inference, as \
            `paris sample --release` (requests default to 50 steps and CFG 7.5; solver euler only). \
            Binds 127.0.0.1 unless --host says otherwise. docs/serving.md has the API with curl examples.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String?

    @Option(help: "A released Paris folder to serve instead of a run (bageldotcom/paris layout, or `paris export diffusers`).")
    var release: String?

    @Option(help: "The address to listen on (0.0.0.0 serves other machines).")
    var host: String = "127.0.0.1"

    @Option(help: "The TCP port (0: any free one, printed at start).")
    var port: Int = 8080

    @Option(help: "cpu, cuda, cuda:N or auto (CUDA when present).")
    var device: String = "auto"

    @OptionGroup var remote: RemoteOptions

    @OptionGroup var threads: ThreadsOption

    @Option(number: "Milliseconds the worker waits for requests with the same settings to share a batch (0: no batching).")
    var batchWindow: Int = ServeLimits.standard.batchWindowMilliseconds

    func validate() throws {
        guard (runFolder == nil) != (release == nil) else {
            throw ValidationError("give exactly one of --run R and --release DIR")
        }
        if release != nil, !remote.remote.isEmpty {
            throw ValidationError("--remote fills a run's expert slots; a release's experts are all in its folder")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be within 0…65535, not \(port)") }
        guard (0...10_000).contains(batchWindow) else {
            throw ValidationError("--batch-window must be within 0…10000 ms, not \(batchWindow)")
        }
    }

    func run() throws {
        try threads.apply()
        var limits = ServeLimits.standard
        limits.batchWindowMilliseconds = batchWindow
        let options = ServeOptions(host: host, port: port, limits: limits)
        if let release {
            try ServeJob.runRelease(folder: URL(fileURLWithPath: release), device: try Device(parsing: device),
                                    options: options, log: { print($0) })
            return
        }
        try ServeJob.run(run: RunLayout(URL(fileURLWithPath: runFolder!)), device: try Device(parsing: device),
                         options: options, remotes: try remote.configs(),
                         packageCache: CachePaths.packages,
                         log: { print($0) })
    }
}

/// `paris serve expert --run R --expert K [--port 8090] [--token-file F]`
struct ServeExpert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expert",
        abstract: "Serve one expert's guided velocity over HTTP, so that it joins a mixture without its weights moving.",
        discussion: """
            Loads <run>/expert_<K>/ and answers POST /v1/velocity: a safetensors body with x [B, C, H, W] (x_t), \
            t [B] (network time), guidance_scale [1] and, for prompts, text_tokens [B, L, D] and text_mask [B, L]; \
            the answer is safetensors with v [B, C, H, W], the expert's CFG-guided velocity. GET /v1/info gives the \
            input shape, cluster and objective, GET /healthz the calls served. With --token-file every route but \
            /healthz needs "Authorization: Bearer <token>" (401 otherwise, before any work). A mixture uses it through \
            <run>/mixture.json or `paris sample/serve --remote K=URL`. Binds 127.0.0.1 unless --host says otherwise.
            """)

    @Option(name: .customLong("run"), help: "The run folder that holds expert_<K>/.")
    var runFolder: String

    @Option(number: "The expert index K.")
    var expert: Int

    @Option(help: "The address to listen on (0.0.0.0 serves other machines).")
    var host: String = "127.0.0.1"

    @Option(help: "The TCP port (0: any free one, printed at start).")
    var port: Int = 8090

    @Option(help: "A file whose first line is the bearer token clients must send (default: none asked).")
    var tokenFile: String?

    @Option(help: "cpu, cuda, cuda:N or auto (CUDA when present).")
    var device: String = "auto"

    @OptionGroup var threads: ThreadsOption

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be within 0…65535, not \(port)") }
        guard expert >= 0 else { throw ValidationError("--expert must be ≥ 0, not \(expert)") }
    }

    func run() throws {
        try threads.apply()
        try ServeJob.runExpert(run: RunLayout(URL(fileURLWithPath: runFolder)), expert: expert,
                               device: try Device(parsing: device), host: host, port: port,
                               tokenFile: tokenFile.map { URL(fileURLWithPath: $0) }, log: { print($0) })
    }
}

/// `--remote K=URL` (repeatable) and `--remote-token-file F`, for `paris sample` and `paris serve`.
struct RemoteOptions: ParsableArguments {
    @Option(help: "A remote expert for slot K: K=URL of its `paris serve expert` (repeat for several; beside <run>/mixture.json).")
    var remote: [String] = []

    @Option(help: "The bearer token file for the --remote experts.")
    var remoteTokenFile: String?

    @Option(number: "Seconds one remote call may take before the expert is dropped for that step.")
    var remoteTimeout: Double = 30

    func configs() throws -> [RemoteExpertConfig] {
        do {
            return try remote.map {
                var c = try RemoteExpertConfig(parsing: $0)
                c.tokenFile = remoteTokenFile
                c.timeoutSeconds = remoteTimeout
                try c.validate()
                return c
            }
        } catch { throw ValidationError("\(error)") }
    }
}
