import Foundation
import Torch

/// The training checkpoints of one job, in `<job>/state/`:
///
/// ```
/// state/step_<N>/{<key>.safetensors for each key the trainer saves, state.json}
/// state/latest          "step_<N>": the newest complete checkpoint (a hint; the folders are authoritative)
/// ```
///
/// The keys are the trainer's: an expert saves `model`, `ema` and `optimizer`, the router `model` and
/// `optimizer`. `state.json`'s `files` records each file's byte size, so a checkpoint says what it holds.
///
/// A checkpoint is written into a hidden temporary folder (`.tmp-step_<N>-…`, every file flushed, `state.json`
/// last) that is then renamed to `step_<N>` in one atomic step, so a `step_<N>` folder is always complete; a
/// crash (even `kill -9`) during a write leaves only a temporary folder, which loading ignores and the next write
/// removes. Loading takes the newest checkpoint that passes every check (state.json parses, every file it records
/// has the recorded size, the keys the caller needs are there and parse as safetensors) and reports each one it
/// skips.
///
/// The store knows the folder format; `State` (the trainers' `TrainingState`) is what `state.json` holds.
public struct CheckpointStore<State: CheckpointState>: Sendable {
    public static var stateName: String { CheckpointFolder.stateName }
    public static var latestName: String { "latest" }

    /// The file that holds key `key`'s tensors: `<key>.safetensors`.
    public static func fileName(_ key: String) -> String { key + ".safetensors" }

    public let folder: URL
    /// How many complete checkpoints to keep (older ones are deleted after a new one is written).
    public let keep: Int

    public init(folder: URL, keep: Int = 2) {
        self.folder = folder
        self.keep = max(1, keep)
    }

    /// A checkpoint read back: its state and tensors, by key (`model`, `ema`, `optimizer`).
    public struct Loaded {
        public let folder: URL
        public let state: State
        public let tensors: [String: [String: Tensor]]
    }

    /// The folder name of step N's checkpoint.
    public static func name(step: Int) -> String { CheckpointFolder.name(step: step) }

    /// Steps of the complete-looking checkpoint folders, newest first.
    public func steps() -> [Int] { CheckpointFolder.steps(in: folder) }

    /// The newest step whose `state.json` names that step (no tensor checks).
    public func latestStep() -> Int? { CheckpointFolder.latest(in: folder)?.step }

    /// Writes step N's checkpoint: one `<key>.safetensors` per entry of `tensors` (a state dict each), recorded
    /// in state.json's `files`. Atomic as a whole; then updates `latest` and prunes old checkpoints and stale
    /// temporary folders.
    public func write(state: State, tensors: [String: [String: Tensor]]) throws {
        guard !tensors.isEmpty else { throw RunError("checkpoint: no tensors to write") }
        for key in tensors.keys where key.isEmpty || key.contains("/") || key.hasPrefix(".") {
            throw RunError("checkpoint: '\(key)' cannot name a tensor file")
        }
        let fm = FileManager.default
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let finalName = Self.name(step: state.step)
        let tmp = folder.appendingPathComponent(".tmp-\(finalName)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
        var ok = false
        defer { if !ok { try? fm.removeItem(at: tmp) } }
        var state = state
        state.files = [:]
        for (key, dict) in tensors.sorted(by: { $0.key < $1.key }) {
            let url = tmp.appendingPathComponent(Self.fileName(key))
            try SafeTensors.save(dict, to: url, metadata: ["step": String(state.step)])
            state.files[Self.fileName(key)] = try Self.size(url)
        }
        try Self.writeJSON(state, to: tmp.appendingPathComponent(Self.stateName))
        Self.syncFolder(tmp)
        let target = folder.appendingPathComponent(finalName)
        if fm.fileExists(atPath: target.path) {
            // The same step again (a finished job re-saved): move the old one aside first, then drop it.
            let old = folder.appendingPathComponent(".old-\(finalName)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            try fm.moveItem(at: target, to: old)
            try? fm.removeItem(at: old)
        }
        guard rename(tmp.path, target.path) == 0 else {
            throw RunError("\(target.path): cannot rename the checkpoint into place: \(String(cString: strerror(errno)))")
        }
        ok = true
        Self.syncFolder(folder)
        try AtomicFile.write(Array((finalName + "\n").utf8), to: folder.appendingPathComponent(Self.latestName))
        prune(except: state.step)
    }

    /// Deletes all but the newest `keep` checkpoints, and temporary folders that crashed writes left behind.
    func prune(except current: Int) {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
        for n in names where n.hasPrefix(".tmp-") || n.hasPrefix(".old-") || n.hasPrefix(".del-") {
            try? fm.removeItem(at: folder.appendingPathComponent(n))
        }
        for s in steps().dropFirst(keep) where s != current {
            // Renamed away first (atomic), so a crash while deleting never leaves a half-deleted step_<N>.
            let old = folder.appendingPathComponent(Self.name(step: s))
            let doomed = folder.appendingPathComponent(".del-\(Self.name(step: s))-\(getpid())")
            if rename(old.path, doomed.path) == 0 { try? fm.removeItem(at: doomed) }
        }
    }

    /// Reads and checks one checkpoint folder completely and loads the tensors of `keys` (nil: every file
    /// state.json records); throws a message naming the problem, e.g. a key the checkpoint does not hold.
    public func load(step: Int, device: Device, keys: [String]? = nil) throws -> Loaded {
        let dir = folder.appendingPathComponent(Self.name(step: step))
        let stateURL = dir.appendingPathComponent(Self.stateName)
        guard let data = FileManager.default.contents(atPath: stateURL.path) else {
            throw RunError("\(stateURL.path) is missing")
        }
        let state: State
        do { state = try JSONDecoder().decode(State.self, from: data) } catch {
            throw RunError("\(stateURL.path) is malformed (\(error))")
        }
        guard state.format == State.currentFormat else {
            throw RunError("\(stateURL.path): format '\(state.format)', expected '\(State.currentFormat)'")
        }
        guard state.step == step else { throw RunError("\(stateURL.path) says step \(state.step), not \(step)") }
        for (file, want) in state.files.sorted(by: { $0.key < $1.key }) {
            let url = dir.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else { throw RunError("\(url.path) is missing") }
            let size = try Self.size(url)
            guard want == size else { throw RunError("\(url.path) has \(size) bytes, state.json recorded \(want)") }
        }
        let recorded = state.files.keys.filter { $0.hasSuffix(".safetensors") }
            .map { String($0.dropLast(".safetensors".count)) }.sorted()
        var tensors: [String: [String: Tensor]] = [:]
        for key in keys ?? recorded {
            let url = dir.appendingPathComponent(Self.fileName(key))
            guard recorded.contains(key) else {
                throw RunError("\(dir.path) holds no \(key) tensors (state.json records \(recorded.joined(separator: ", ")))")
            }
            do { tensors[key] = try SafeTensors.load(url, device: device).tensors }
            catch { throw RunError("\(url.path) is unreadable (\(error))") }
        }
        try state.validate()
        return Loaded(folder: dir, state: state, tensors: tensors)
    }

    /// The newest checkpoint that loads with `keys` (nil: whatever it holds), or nil when there is none; `warn`
    /// hears about each one skipped.
    public func loadLatest(device: Device, keys: [String]? = nil, warn: (String) -> Void) -> Loaded? {
        for step in steps() {
            do { return try load(step: step, device: device, keys: keys) } catch {
                warn("skipping checkpoint step_\(step): \(error)")
            }
        }
        return nil
    }

    static func size(_ url: URL) throws -> Int {
        let attrs = try FileManager.default.attributesOfItem(atPath: url.path)
        return (attrs[.size] as? NSNumber)?.intValue ?? 0
    }

    static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(value)) + [10], to: url)
    }

    /// fsync on a folder, so a rename inside it survives a power cut.
    static func syncFolder(_ url: URL) {
        let fd = open(url.path, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}

/// What a checkpoint's `state.json` holds: its format tag, its step and the byte sizes of the tensor files (which
/// the store fills in and checks before loading).
public protocol CheckpointState: Codable, Sendable {
    static var currentFormat: String { get }
    var format: String { get }
    var step: Int { get }
    var files: [String: Int] { get set }
    /// Checks the rest of the state (e.g. that its generator state decodes); throws a message naming the problem.
    func validate() throws
}

/// A job's `state/` folder as files, whatever its states hold: what progress displays read.
public enum CheckpointFolder {
    /// The folder's name inside a job folder.
    public static let name = "state"
    /// The state file inside each `step_<N>` folder.
    public static let stateName = "state.json"

    /// The folder name of step N's checkpoint.
    public static func name(step: Int) -> String { "step_\(step)" }

    /// Steps of the `step_<N>` folders in `folder`, newest first.
    public static func steps(in folder: URL) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.compactMap { n -> Int? in
            guard n.hasPrefix("step_"), let s = Int(n.dropFirst(5)), s >= 0 else { return nil }
            return s
        }.sorted(by: >)
    }

    /// The newest step whose `state.json` names that step (no tensor checks), and when it was written (Unix
    /// seconds); nil when there is none.
    public static func latest(in folder: URL) -> (step: Int, writtenAt: Double?)? {
        struct Step: Decodable { let step: Int }
        for step in steps(in: folder) {
            let url = folder.appendingPathComponent(name(step: step)).appendingPathComponent(stateName)
            guard let d = FileManager.default.contents(atPath: url.path),
                  let s = try? JSONDecoder().decode(Step.self, from: d), s.step == step else { continue }
            let date = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date
            return (step, date?.timeIntervalSince1970)
        }
        return nil
    }
}
