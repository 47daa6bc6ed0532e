import ArgumentParser
import Foundation
import ParisContributions

/// `paris keys new --name N [--out DIR]`
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Contributor keys (Ed25519).", subcommands: [KeysNew.self])
}

struct KeysNew: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new",
        abstract: "Make an Ed25519 key pair: <out>/<name>.key (private, mode 0600) and <out>/<name>.pub.",
        discussion: "Give the .pub file to a run's owner, who adds it to the trust list of `paris admit`.")

    @Option(help: "The key's name (letters, digits, '-', '_', '.').")
    var name: String

    @Option(help: "The folder for the two files.")
    var out: String = "."

    func run() throws {
        let (key, pub) = try ContributorKey(name: name).write(to: URL(fileURLWithPath: out))
        print("private key: \(key.path)\npublic key:  \(pub.path)")
    }
}

/// `paris contribute pack ...`
struct ContributeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contribute", abstract: "Package a LoRA or an expert as a signed contribution bundle.",
        subcommands: [ContributePack.self])
}

struct ContributePack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Write a signed bundle: the files, and a manifest with their SHA-256, signed with your key.",
        discussion: """
            --source is a LoRA folder (what `paris train lora` wrote) or an expert folder. The manifest records \
            the architecture, a LoRA's base-weights hash and settings, the training steps, --description and, \
            with --data, the shard's size, dataset and checksums (never the data itself).
            """)

    @Option(help: "The contributor's private key file (<name>.key).")
    var key: String

    @Option(help: "The LoRA or expert folder to contribute.")
    var source: String

    @Option(number: "The cluster it is for (a LoRA: its base expert's index).")
    var cluster: Int

    @Option(help: "What the training data is, in words.")
    var description: String

    @Option(help: "The shard the weights were trained on, to record its size and checksums.")
    var data: String?

    @Option(help: "The bundle folder to write (must not exist).")
    var out: String

    @Flag(name: .customLong("private"), help: "Keep a LoRA's weights out of the bundle and publish their commitments (needs --zk-owner, --zk-out).")
    var isPrivate = false

    @Option(help: "The owner's keys folder (`paris zk setup`), for --private.")
    var zkOwner: String?

    @Option(help: "Where to write your committed circuits, for --private (they hold the weights: keep them; `paris serve lora --zk` proves with them).")
    var zkOut: String?

    @Option(help: "The rows one proof covers (as the owner set up), for --private.")
    var rows: Int = 1

    @OptionGroup var zk: ZKToolOptions

    func validate() throws {
        guard isPrivate == (zkOwner != nil), isPrivate == (zkOut != nil) else {
            throw ValidationError("--private needs --zk-owner and --zk-out, and they need --private")
        }
    }

    func run() throws {
        let privately = try zkOwner.map { owner in
            try PrivateLoRA.commit(lora: URL(fileURLWithPath: source), owner: URL(fileURLWithPath: owner), rows: rows,
                                   tool: try zk.tool(), contributor: URL(fileURLWithPath: zkOut!)) { print($0) }
        }
        let manifest = try ContributionBundle.pack(
            source: URL(fileURLWithPath: source), cluster: cluster, key: ContributorKey.read(URL(fileURLWithPath: key)),
            description: description, data: data.map { URL(fileURLWithPath: $0) }, privately: privately,
            out: URL(fileURLWithPath: out))
        print("wrote \(out): a \(manifest.kind.rawValue) for cluster \(cluster), \(manifest.files.count) files, "
            + "signed by \(manifest.contributor.name)")
    }
}

/// `paris admit --run R BUNDLE --trust KEYS`
struct Admit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admit",
        abstract: "Verify a contribution bundle and admit it into a run, or refuse it with the reasons.",
        discussion: """
            Checks the signature against --trust (a .pub file or {"keys": [...]}), every file's SHA-256, that a \
            LoRA adapts exactly the run's expert (weights hash and architecture), and its flow-matching loss on the \
            cluster's held-out images at t = 0.1 … 0.9 against the base and the other experts. Accepted: copied to \
            <run>/contributions/<id>/ with admission.json (with --use, also into mixture.json). A private LoRA is \
            scored through its contributor's `paris serve lora` (--lora-url), with --proof-rate of the queries \
            proved and verified (--zk-owner). An expert is admitted as the new expert K with --data (that cluster's \
            one-cluster partition, with held-out images): it must do at least as well on the cluster's held-out \
            images as every existing expert, and the router, retrained for K + 1, must give it --min-router-share \
            of them at t = 0.1, 0.3, 0.5; then it is added as `paris run add-expert` adds one. Refused: the run is \
            left exactly as it was, and the exit status is 1.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String

    @Argument(help: "The bundle folder.")
    var bundle: String

    @Option(help: "The trusted public keys.")
    var trust: String

    @Option(name: .customLong("max-regression"), number: "Refuse a LoRA whose held-out loss exceeds its base's (an expert: the best existing expert's) by more than this fraction.")
    var maxRegression: Double = 0.02

    @Flag(help: "Once admitted, add the LoRA to <run>/mixture.json: `paris sample` and `paris serve` then use it for its expert.")
    var use = false

    @Option(help: "A private LoRA's `paris serve lora` URL: the held-out check runs the base here with its deltas.")
    var loraUrl: String?

    @Option(help: "The bearer token file for --lora-url.")
    var loraTokenFile: String?

    @Option(help: "Your keys folder (`paris zk setup`), to verify the contributor's proofs.")
    var zkOwner: String?

    @Option(name: .customLong("proof-rate"), number: "The fraction of delta queries challenged for a proof (1: every one, 0: none).")
    var proofRate: Double = 1

    @Option(help: "For an expert: its cluster's data, a one-cluster partition with held-out images.")
    var data: String?

    @Option(name: .customLong("min-router-share"), number: "For an expert: the least share of its cluster's held-out images the retrained router must give it.")
    var minRouterShare: Double = 0.5

    @OptionGroup var zk: ZKToolOptions

    @OptionGroup var threads: ThreadsOption

    func validate() throws {
        guard (0...1).contains(minRouterShare) else {
            throw ValidationError("--min-router-share must be within 0…1, not \(minRouterShare)")
        }
        guard maxRegression >= 0, maxRegression.isFinite else {
            throw ValidationError("--max-regression must be ≥ 0, not \(maxRegression)")
        }
        guard (0...1).contains(proofRate) else { throw ValidationError("--proof-rate must be within 0…1, not \(proofRate)") }
        guard loraUrl != nil || (zkOwner == nil && loraTokenFile == nil) else {
            throw ValidationError("--zk-owner and --lora-token-file go with --lora-url")
        }
    }

    func run() throws {
        try threads.apply()
        var policy = AdmissionPolicy()
        policy.maxRegression = maxRegression
        policy.use = use
        policy.data = data.map { URL(fileURLWithPath: $0) }
        policy.minRouterShare = minRouterShare
        if let loraUrl {
            var remote = RemoteLoRA.Options(url: loraUrl)
            remote.tokenFile = loraTokenFile.map { URL(fileURLWithPath: $0) }
            remote.proofRate = proofRate
            if let zkOwner { remote.zk = (try zk.tool(), URL(fileURLWithPath: zkOwner)) }
            policy.remote = remote
        }
        let report = try Admission.admit(run: URL(fileURLWithPath: runFolder), bundle: URL(fileURLWithPath: bundle),
                                         trust: TrustList.read(URL(fileURLWithPath: trust)), policy: policy) {
            print($0)
        }
        guard report.accepted else {
            print("refused: " + report.reasons.joined(separator: "; ") + "; the run is unchanged")
            throw ExitCode(1)
        }
        if let v = report.verification {
            print("private LoRA: \(v.deltas) remote delta queries, \(v.proofs) proofs verified "
                + String(format: "(prove %.1f s, verify %.1f s in all)", v.proveSeconds, v.verifySeconds))
        }
        print("admitted as \(runFolder)/\(report.admittedAs ?? "")")
    }
}
