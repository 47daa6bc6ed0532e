import ArgumentParser
import Foundation
import ParisContributions
import ParisServe
import ParisZK

/// `--zk-python` and `--zk-script`: where `scripts/zk/zklora.py` and its venv are. By default the clone this
/// binary was built in (found by walking up from the executable to `scripts/zk/zklora.py`) and its `.zk-venv`,
/// which scripts/setup.sh makes.
struct ZKToolOptions: ParsableArguments {
    @Option(help: "The zero-knowledge venv's python (default: <clone>/.zk-venv/bin/python).")
    var zkPython: String?

    @Option(help: "zklora.py (default: <clone>/scripts/zk/zklora.py).")
    var zkScript: String?

    func tool() throws -> ZKLoRATool {
        let clone = Self.clone()
        guard let script = zkScript.map({ URL(fileURLWithPath: $0) })
                ?? clone?.appendingPathComponent("scripts/zk/zklora.py") else {
            throw ValidationError("cannot find scripts/zk/zklora.py above \(CommandLine.arguments[0]); pass --zk-script")
        }
        let python = zkPython.map { URL(fileURLWithPath: $0) }
            ?? script.deletingLastPathComponent().appendingPathComponent("../../.zk-venv/bin/python").standardized
        return try ZKLoRATool(python: python, script: script)
    }

    /// The first folder above the executable that holds scripts/zk/zklora.py.
    static func clone() -> URL? {
        var folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while folder.path != "/" {
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("scripts/zk/zklora.py").path) {
                return folder
            }
            folder = folder.deletingLastPathComponent()
        }
        return nil
    }
}

/// `paris zk setup …`
struct ZKCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zk", abstract: "Zero-knowledge keys for verifying a private LoRA (ZKLoRA's protocol).",
        subcommands: [ZKSetup.self])
}

/// `paris zk setup --run R --expert K --targets T --rank r --out OWNER`
struct ZKSetup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "The owner's step: circuits, a fresh SRS and keys for each layer shape of a LoRA of expert K.",
        discussion: """
            For each distinct shape among the layers that --targets names in expert K (at --rank), writes \
            <out>/<d_in>x<d_out>-r<rank>-n<rows>/ (ezkl settings, compiled dummy circuit, SRS, proving and verifying \
            keys), keeping shapes already there. The owner makes the SRS because whoever knows its secret can forge \
            proofs. Hand the folder to the contributor, who commits to its weights with it \
            (`paris contribute pack --private`). docs/contributing-experts.md has the protocol.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String

    @Option(help: "The base expert's index.")
    var expert: Int

    @Option(help: "The LoRA's target modules, comma-separated (PEFT's suffix matching).")
    var targets: String = "mlp.0,mlp.2"

    @Option(help: "The LoRA rank.")
    var rank: Int

    @Option(help: "The rows one proof covers.")
    var rows: Int = 1

    @Option(help: "The keys folder to write.")
    var out: String

    @OptionGroup var zk: ZKToolOptions

    func validate() throws {
        guard rank > 0, rows > 0, expert >= 0 else { throw ValidationError("--rank and --rows must be > 0, --expert ≥ 0") }
    }

    func run() throws {
        let targets = self.targets.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        try PrivateLoRA.ownerSetup(run: URL(fileURLWithPath: runFolder), expert: expert, targets: targets, rank: rank,
                                   rows: rows, tool: try zk.tool(), out: URL(fileURLWithPath: out)) { print($0) }
    }
}

/// `paris serve lora --lora DIR [--zk-owner OWNER --zk CONTRIB] [--port 8091]`
struct ServeLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora",
        abstract: "Serve a LoRA's deltas (and proofs) without handing over its weights.",
        discussion: """
            Answers POST /v1/delta?layer=PATH (safetensors x [N, d_in] → delta [N, d_out] = B·A·x, unscaled) and, \
            with --zk-owner and --zk, POST /v1/prove?layer=PATH (a proof for one challenged block of rows, made with \
            the circuits committed in the signed manifest); GET /v1/info lists the layers, GET /healthz counts. \
            The owner runs the base expert and adds (α / r)·delta (`paris admit --lora-url`).
            """)

    @Option(help: "The LoRA folder (`paris train lora`'s output).")
    var lora: String

    @Option(help: "The owner's keys folder (`paris zk setup`).")
    var zkOwner: String?

    @Option(help: "Your committed circuits (`paris contribute pack --private --zk-out`).")
    var zk: String?

    @Option(help: "The rows one proof covers (as the owner set up).")
    var rows: Int = 1

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "The TCP port (0: any free one).")
    var port: Int = 8091

    @Option(help: "A file whose first line is the bearer token the owner must send.")
    var tokenFile: String?

    @OptionGroup var tool: ZKToolOptions

    func validate() throws {
        guard (zkOwner == nil) == (zk == nil) else { throw ValidationError("--zk-owner and --zk go together") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be within 0…65535, not \(port)") }
    }

    func run() throws {
        let proving = try zkOwner.map {
            LoRAServer.Proving(tool: try tool.tool(), owner: URL(fileURLWithPath: $0),
                               contributor: URL(fileURLWithPath: zk!), rows: rows)
        }
        try ServeJob.runLoRA(lora: URL(fileURLWithPath: lora), proving: proving, host: host, port: port,
                             tokenFile: tokenFile.map { URL(fileURLWithPath: $0) }, log: { print($0) })
    }
}
