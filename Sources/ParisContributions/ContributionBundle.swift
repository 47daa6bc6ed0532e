import Foundation
import ParisData
import ParisModels
import ParisRun
import Torch

/// What a contribution claims, signed by its contributor: `manifest.json` of a bundle.
///
/// A bundle is a folder: `manifest.json`, `manifest.sig` (the base64 Ed25519 signature of manifest.json's exact
/// bytes) and `files/` (a LoRA's `adapter_config.json` + `adapter_model.safetensors`, or an expert's `config.json`
/// + `diffusion_pytorch_model.safetensors`). The manifest lists the SHA-256 of every file, so the signature covers
/// them all.
public struct ContributionManifest: Codable, Equatable {
    public enum Kind: String, Codable, Sendable { case lora, expert }

    public static let currentFormat = "paris-contribution/1"
    public var format = Self.currentFormat
    public var kind: Kind
    /// The contributor's name and base64 Ed25519 public key.
    public var contributor: Contributor
    /// The cluster the contribution is for: a LoRA's base expert, or the cluster an expert claims.
    public var cluster: Int
    /// The expert architecture (a LoRA's base's).
    public var architecture: ParisExpertConfig
    /// SHA-256 of the base expert's weights file (LoRA only).
    public var baseSHA256: String?
    /// The LoRA settings (LoRA only).
    public var lora: LoRAConfig?
    /// Training steps behind the weights.
    public var steps: Int
    /// The training data, described (never included).
    public var data: DataDescription
    /// File name under `files/` → SHA-256.
    public var files: [String: String]
    /// For a private LoRA (only its adapter_config.json in `files/`): the published commitments.
    public var privateLoRA: PrivateLoRA? = nil

    public struct Contributor: Codable, Equatable {
        public var name: String
        public var publicKey: String
        enum CodingKeys: String, CodingKey { case name, publicKey = "public_key" }
    }

    /// What the contributor says about its data: free text plus, when packed from a shard, the shard's facts.
    public struct DataDescription: Codable, Equatable {
        public var description: String
        public var images: Int?
        public var dataset: String?
        public var textEncoder: String?
        /// The shard's per-file checksums (from its shard.json), so a later audit can match the data.
        public var shardChecksums: [String: String]?
        enum CodingKeys: String, CodingKey {
            case description, images, dataset, textEncoder = "text_encoder", shardChecksums = "shard_checksums"
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, kind, contributor, cluster, architecture, baseSHA256 = "base_sha256", lora, steps, data, files
        case privateLoRA = "private_lora"
    }
}

/// Packing and verifying contribution bundles.
public enum ContributionBundle {
    public static let manifestName = "manifest.json"
    public static let signatureName = "manifest.sig"
    public static let filesName = "files"

    /// `paris contribute pack`: writes a signed bundle at `out` (which must not exist) from a LoRA folder
    /// (`paris train lora`'s output) or an expert folder, for `cluster`, describing `data` (a shard folder, optional)
    /// with `description`. Written in a sibling staging folder and renamed into place.
    ///
    /// With `privately` (a LoRA only), the weights stay out of the bundle: `files/` holds adapter_config.json and the
    /// manifest publishes the commitments (`PrivateLoRA.commit`).
    @discardableResult
    public static func pack(source: URL, cluster: Int, key: ContributorKey, description: String, data: URL? = nil,
                            privately: PrivateLoRA? = nil, out: URL) throws -> ContributionManifest {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: out.path) else { throw ContributionError("\(out.path) already exists") }
        guard cluster >= 0 else { throw ContributionError("the cluster must be ≥ 0, not \(cluster)") }
        let kind: ContributionManifest.Kind, architecture: ParisExpertConfig, steps: Int
        var baseSHA256: String?, lora: LoRAConfig?, textEncoder: String?, names: [String]
        if LoRACheckpoint.exists(in: source) {
            let checkpoint = try LoRACheckpoint.read(from: source)
            (kind, architecture, steps) = (.lora, checkpoint.baseModel, checkpoint.steps)
            names = [LoRACheckpoint.configName, LoRACheckpoint.weightsName]
            (baseSHA256, lora) = (checkpoint.baseSHA256, checkpoint.config)
        } else if ExpertCheckpoint.exists(in: source) {
            let checkpoint = try ExpertCheckpoint.checkWeights(in: source)
            (kind, architecture, steps) = (.expert, checkpoint.model, checkpoint.steps)
            names = [ExpertCheckpoint.configName, ExpertCheckpoint.weightsName]
            textEncoder = checkpoint.textEncoder
        } else {
            throw ContributionError("\(source.path) holds neither a LoRA (adapter_config.json + adapter_model.safetensors) "
                + "nor an expert (config.json + diffusion_pytorch_model.safetensors)")
        }
        if privately != nil {
            guard kind == .lora else { throw ContributionError("only a LoRA can be packed privately, not an expert") }
            names = [LoRACheckpoint.configName]
        }
        var described = ContributionManifest.DataDescription(description: description, textEncoder: textEncoder)
        if let data {
            let info = try Shard.info(at: data)
            (described.images, described.dataset, described.shardChecksums) = (info.count, info.dataset, info.checksums)
            described.textEncoder = info.textEncoder
        }
        let staging = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).partial-\(UUID().uuidString.prefix(8))")
        try fm.createDirectory(at: staging.appendingPathComponent(filesName), withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: staging) }
        var files: [String: String] = [:]
        for name in names {
            let target = staging.appendingPathComponent(filesName).appendingPathComponent(name)
            try fm.copyItem(at: source.appendingPathComponent(name), to: target)
            files[name] = try Checksum.sha256(file: target)
        }
        let manifest = ContributionManifest(
            kind: kind, contributor: .init(name: key.name, publicKey: key.publicKey.base64), cluster: cluster,
            architecture: architecture, baseSHA256: baseSHA256, lora: lora, steps: steps, data: described, files: files,
            privateLoRA: privately)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let bytes = try encoder.encode(manifest)
        try AtomicFile.write([UInt8](bytes), to: staging.appendingPathComponent(manifestName))
        try AtomicFile.write([UInt8](try key.sign(bytes).base64EncodedString().utf8),
                             to: staging.appendingPathComponent(signatureName))
        try fm.moveItem(at: staging, to: out)
        return manifest
    }

    /// Checks a bundle before anything of it is used: the signer is in `trust`, the signature matches
    /// manifest.json's bytes, `files/` holds exactly the listed files with the listed SHA-256, and the files
    /// agree with what the manifest says of them (kind, architecture, base). Returns the manifest and the signer.
    public static func verify(_ bundle: URL, trust: TrustList) throws -> (ContributionManifest, TrustedKey) {
        let fm = FileManager.default
        let manifestURL = bundle.appendingPathComponent(manifestName)
        let sigURL = bundle.appendingPathComponent(signatureName)
        guard let bytes = fm.contents(atPath: manifestURL.path) else {
            throw ContributionError("\(bundle.path) is not a contribution bundle: \(manifestName) is missing")
        }
        guard let sigText = fm.contents(atPath: sigURL.path),
              let signature = Data(base64Encoded: String(decoding: sigText, as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ContributionError("\(sigURL.path) is missing or not base64: the bundle is unsigned")
        }
        let manifest: ContributionManifest
        do { manifest = try JSONDecoder().decode(ContributionManifest.self, from: bytes) } catch {
            throw ContributionError("\(manifestURL.path) is not a contribution manifest: \(error)")
        }
        guard manifest.format == ContributionManifest.currentFormat else {
            throw ContributionError("\(manifestURL.path): format \(manifest.format), expected \(ContributionManifest.currentFormat)")
        }
        guard let raw = Data(base64Encoded: manifest.contributor.publicKey), let signer = trust.key(raw) else {
            throw ContributionError("the bundle is signed by \"\(manifest.contributor.name)\" with a key that is not in "
                + "the trust list")
        }
        guard signer.verifies(signature, of: bytes) else {
            throw ContributionError("the signature does not match manifest.json: the manifest was changed after "
                + "signing, or signed with another key than the one it names")
        }
        let filesURL = bundle.appendingPathComponent(filesName)
        let present = Set((try? fm.contentsOfDirectory(atPath: filesURL.path)) ?? [])
        for name in manifest.files.keys where name.contains("/") || name.hasPrefix(".") {
            throw ContributionError("the manifest names a file outside files/: \(name)")
        }
        if let extra = present.subtracting(manifest.files.keys).sorted().first {
            throw ContributionError("files/\(extra) is not in the signed manifest")
        }
        for (name, digest) in manifest.files.sorted(by: { $0.key < $1.key }) {
            guard present.contains(name) else { throw ContributionError("files/\(name) is missing") }
            guard try Checksum.sha256(file: filesURL.appendingPathComponent(name)) == digest else {
                throw ContributionError("files/\(name): its SHA-256 differs from the signed manifest (the file was changed)")
            }
        }
        try checkContents(manifest, files: filesURL)
        return (manifest, signer)
    }

    /// The files say what the manifest says: a LoRA of the stated base and architecture, or an expert of it.
    static func checkContents(_ manifest: ContributionManifest, files: URL) throws {
        switch manifest.kind {
        case .lora where manifest.privateLoRA != nil:
            let config = try LoRACheckpoint.readConfig(files.appendingPathComponent(LoRACheckpoint.configName))
            let expected = try PrivateLoRA.layers(of: manifest.architecture, targets: config.targetModules, rank: config.r)
            guard config == manifest.lora, manifest.baseSHA256?.count == 64,
                  manifest.privateLoRA?.wireLayers == expected else {
                throw ContributionError("the private LoRA's config disagrees with the manifest (LoRA config, base hash, "
                    + "or the committed layers)")
            }
        case .lora:
            let lora = try LoRACheckpoint.read(from: files)
            guard lora.baseSHA256 == manifest.baseSHA256, lora.baseModel == manifest.architecture,
                  lora.config == manifest.lora else {
                throw ContributionError("the LoRA files disagree with the manifest (base hash, architecture or LoRA config)")
            }
        case .expert:
            let expert = try ExpertCheckpoint.checkWeights(in: files)
            guard expert.model == manifest.architecture else {
                throw ContributionError("the expert files disagree with the manifest's architecture")
            }
        }
    }
}
