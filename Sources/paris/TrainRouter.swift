import ArgumentParser
import Foundation
import ParisTraining

/// `paris train router --run R`
struct TrainRouter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Train the router p(cluster | x_t, t [, prompt]) on every shard, then evaluate it on held-out images.",
        discussion: """
            Reads run.json and all K shards; writes <run>/router/ only: config.json + model.safetensors, \
            eval.json, eval.md, confusion.png, metrics.jsonl, accuracy.png. x_t is drawn from the experts' \
            flow-matching forward process; a fraction of each shard is held out for the evaluation. Restarting \
            the same command resumes from the last checkpoint; SIGTERM, SIGINT and SIGUSR1 write a checkpoint \
            and stop (exit status 128 + the signal number). A -text router preset in run.json (router-T/4-text, \
            router-S/4-text, router-B/2-text) trains the text-conditioned router p(cluster | x_t, t, prompt) on \
            the shards' pooled caption embeddings, with run.json's caption_dropout (default 0.1) replacing \
            captions by a learned null caption so that it also routes samples without a prompt.
            """)

    @OptionGroup var session: TrainSessionOptions

    @Option(name: .customLong("held-out"), number: "Fraction of each shard held out for evaluation.")
    var heldOut: Double = 0.1

    @Option(help: "A router preset instead of run.json's router model (router-T/4, router-T/4-text, …).")
    var model: String?

    @Option(help: "The folder to train and publish the router in, instead of <run>/router (needed with --model).")
    var out: String?

    @Flag(name: .customLong("skip-checksums"), help: "Do not hash the shard files against their shard.json.")
    var skipChecksums = false

    func validate() throws {
        guard (0..<1).contains(heldOut) else { throw ValidationError("--held-out must be in [0, 1), not \(heldOut)") }
        if model != nil && out == nil {
            throw ValidationError("--model needs --out: a second router must not overwrite the run's router/")
        }
    }

    func run() throws {
        let router = RouterTrainOptions(heldOutFraction: heldOut, verifyChecksums: !skipChecksums, model: model,
                                        folder: out.map { URL(fileURLWithPath: $0) })
        try session.session { options in
            try RouterTrainer.train(run: URL(fileURLWithPath: session.run), options: options, router: router)
        }
    }
}
