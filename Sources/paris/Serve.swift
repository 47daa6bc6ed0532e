import ArgumentParser
import Foundation
import ParisRun
import ParisServe
import Torch

/// `paris serve --run R [--host 127.0.0.1] [--port 8080] [--device auto]`
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a run's mixture over HTTP: AUTOMATIC1111's txt2img, a jobs API and a web page.",
        discussion: """
            Loads the run's experts and router once and answers POST /sdapi/v1/txt2img (AUTOMATIC1111's request and \
            response), GET /sdapi/v1/progress, POST /sdapi/v1/interrupt; the jobs API POST /v1/jobs, \
            GET /v1/jobs/{id}, GET /v1/jobs/{id}/events (server-sent events: progress and the router weights at \
            each step), DELETE /v1/jobs/{id}; GET /healthz, GET /v1/experts, GET /metrics (Prometheus) and the web \
            page at /. One worker samples the queued jobs in order; a full queue is answered 429 with Retry-After. \
            Binds 127.0.0.1 unless --host says otherwise. docs/serving.md has the API with curl examples.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String

    @Option(help: "The address to listen on (0.0.0.0 serves other machines).")
    var host: String = "127.0.0.1"

    @Option(help: "The TCP port (0: any free one, printed at start).")
    var port: Int = 8080

    @Option(help: "cpu, cuda, cuda:N or auto (CUDA when present).")
    var device: String = "auto"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be within 0…65535, not \(port)") }
    }

    func run() throws {
        try ServeJob.run(run: RunLayout(URL(fileURLWithPath: runFolder)), device: try Device(parsing: device),
                         options: ServeOptions(host: host, port: port), packageCache: CachePaths.packages,
                         log: { print($0) })
    }
}
