import Foundation
import Torch

/// The Swift side of `scripts/zk/zklora.py` (ezkl, Halo2 + KZG, `polycommit` parameters): each step runs as a
/// subprocess of the zero-knowledge venv's Python with files in and out, as ZKLoRA's protocol (arXiv 2501.13965)
/// splits it between the model owner and the contributor.
///
///     owner        setup(shape, out)                 circuit on dummy weights, a fresh SRS, the keys
///     contributor  commit(weights, layer, owner, out) the KZG commitments of the real A, B (published, signed)
///     contributor  prove(contrib, owner, x)          a proof that delta = B·A·x for the committed A, B
///     owner        verify(owner, commitment, x, delta, proof)   commitments swapped in, then checked
///
/// The proof covers one layer's unscaled delta B·A·x for one query x: not the base model, not the α/r scaling
/// (the owner applies it), not how A and B were trained.
public struct ZKLoRATool: Sendable {
    /// The venv's interpreter and zklora.py.
    public let python: URL, script: URL
    /// Seconds one step may take.
    public var timeoutSeconds: Double = 900

    public init(python: URL, script: URL) throws {
        for (what, url) in [("the zero-knowledge venv's python", python), ("zklora.py", script)]
        where !FileManager.default.fileExists(atPath: url.path) {
            throw ZKError("\(what) is not at \(url.path); run scripts/setup.sh, which installs the venv as .zk-venv")
        }
        self.python = python
        self.script = script
    }

    /// One adapted layer's circuit: x [rows, dIn] → delta [rows, dOut] through rank r.
    public struct Shape: Codable, Hashable, Sendable, CustomStringConvertible {
        public var dIn: Int, dOut: Int, rank: Int, rows: Int
        public init(dIn: Int, dOut: Int, rank: Int, rows: Int = 1) {
            (self.dIn, self.dOut, self.rank, self.rows) = (dIn, dOut, rank, rows)
        }
        /// The owner's folder for this shape's keys: `<dIn>x<dOut>-r<rank>-n<rows>`.
        public var folderName: String { "\(dIn)x\(dOut)-r\(rank)-n\(rows)" }
        public var description: String { "\(dIn) → \(dOut), r = \(rank), \(rows) row(s)" }
        enum CodingKeys: String, CodingKey { case dIn = "d_in", dOut = "d_out", rank, rows }
    }

    /// The owner's step: settings, keys and SRS for `shape` in `out` (made afresh; whoever draws the SRS could
    /// forge proofs, so the owner does). Returns the circuit's logrows.
    @discardableResult
    public func setup(_ shape: Shape, out: URL) throws -> Int {
        let line = try run(["setup", "--d-in", "\(shape.dIn)", "--d-out", "\(shape.dOut)", "--rank", "\(shape.rank)",
                            "--rows", "\(shape.rows)", "--out", out.path], what: "zk setup (\(shape))")
        guard let logrows = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["logrows"] as? Int
        else { throw ZKError("zk setup (\(shape)) printed no logrows: \(line)") }
        return logrows
    }

    /// The contributor's step: compiles layer `layer` of `weights` (PEFT names) with the owner's settings into
    /// `out` and returns commitment.json's text, which goes into the signed manifest.
    public func commit(weights: URL, layer: String, owner: URL, out: URL) throws -> String {
        _ = try run(["commit", "--weights", weights.path, "--layer", layer, "--owner", owner.path, "--out", out.path],
                    what: "zk commit of \(layer)")
        return try String(contentsOf: out.appendingPathComponent("commitment.json"), encoding: .utf8)
    }

    /// The contributor's step for one query: proof.json's bytes for x [rows, dIn] (float32), made in `work`.
    public func prove(contrib: URL, owner: URL, x: Tensor, work: URL) throws -> [UInt8] {
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let input = work.appendingPathComponent("x.safetensors")
        try write(["x": x], to: input)
        _ = try run(["prove", "--contrib", contrib.path, "--owner", owner.path, "--x", input.path, "--out", work.path],
                    what: "zk prove")
        return [UInt8](try Data(contentsOf: work.appendingPathComponent("proof.json")))
    }

    /// What `verify` concluded. `valid` only when the proof verifies with the published commitment swapped in,
    /// its public input is x and its public output is the delta (within the quantisation step).
    public struct Verdict: Codable, Sendable {
        public var valid: Bool
        public var proofVerifies: Bool?
        public var inputMatches: Bool?
        public var deltaMaxError: Double?
        public var deltaTolerance: Double?
        public var error: String?
        public var verifySeconds: Double?
        enum CodingKeys: String, CodingKey {
            case valid, proofVerifies = "proof_verifies", inputMatches = "input_matches",
                 deltaMaxError = "delta_max_error", deltaTolerance = "delta_tolerance", error, verifySeconds = "verify_s"
        }

        /// Why it is not valid, in words.
        public var reason: String {
            if let error { return "the proof does not verify (\(error))" }
            if proofVerifies == false { return "the proof does not verify with the published commitment" }
            if inputMatches == false { return "the proof is for another input than the one sent" }
            return "the returned delta differs from the proved one by \(deltaMaxError ?? .nan) "
                + "(tolerance \(deltaTolerance ?? .nan))"
        }
    }

    /// The owner's step for one query: x [rows, dIn], the delta [rows, dOut] the contributor returned, its proof,
    /// and the commitment published in the manifest. A proof that fails is a verdict, not an error.
    public func verify(owner: URL, commitment: String, x: Tensor, delta: Tensor, proof: [UInt8],
                       work: URL) throws -> Verdict {
        let fm = FileManager.default
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        let files = ["x.safetensors", "delta.safetensors", "proof.json", "commitment.json"].map(work.appendingPathComponent)
        try write(["x": x], to: files[0])
        try write(["delta": delta], to: files[1])
        try Data(proof).write(to: files[2])
        try Data(commitment.utf8).write(to: files[3])
        let (status, out, err) = try execute(["verify", "--owner", owner.path, "--commitment", files[3].path,
                                              "--x", files[0].path, "--delta", files[1].path, "--proof", files[2].path])
        let line = out.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
        guard let verdict = try? JSONDecoder().decode(Verdict.self, from: Data(line.utf8)) else {
            throw ZKError("zk verify exited \(status) without a verdict: \(Self.tail(err))")
        }
        return verdict
    }

    func write(_ tensors: [String: Tensor], to url: URL) throws {
        let cpu = try tensors.mapValues { try $0.to(device: .cpu, dtype: .float32).contiguous() }
        try Data(try SafeTensors.serialize(cpu)).write(to: url)
    }

    /// Runs a step that must succeed; returns its last line of output.
    func run(_ args: [String], what: String) throws -> String {
        let (status, out, err) = try execute(args)
        guard status == 0 else { throw ZKError("\(what) failed (exit \(status)): \(Self.tail(err))") }
        return out.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
    }

    /// python zklora.py ARGS → exit status, stdout, stderr; killed after `timeoutSeconds`.
    func execute(_ args: [String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = python
        process.arguments = [script.path] + args
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { throw ZKError("cannot start \(python.path): \(error)") }
        // Drain both pipes while it runs, so a chatty step cannot fill one and stall.
        nonisolated(unsafe) var errData = Data()
        let reader = DispatchGroup()
        reader.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); reader.leave() }
        let timer = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeoutSeconds, execute: timer)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        timer.cancel()
        reader.wait()
        if process.terminationReason == .uncaughtSignal {
            throw ZKError("zklora.py \(args.first ?? "") was stopped after \(Int(timeoutSeconds)) s or by a signal")
        }
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    static func tail(_ text: String) -> String {
        let lines = text.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | ")
        return lines.isEmpty ? "no message" : String(lines.suffix(600))
    }
}

/// A zero-knowledge step that could not run (a missing venv, a failed subprocess, a malformed answer).
public struct ZKError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension ZKLoRATool {
    /// The owner's keys for one layer shape: `<root>/<shape.folderName>/`.
    public static func ownerFolder(_ root: URL, _ shape: Shape) -> URL { root.appendingPathComponent(shape.folderName) }
    /// The contributor's committed circuit of one layer: `<root>/<layer path>/` (private: it holds the weights).
    public static func contributorFolder(_ root: URL, layer: String) -> URL { root.appendingPathComponent(layer) }
}
