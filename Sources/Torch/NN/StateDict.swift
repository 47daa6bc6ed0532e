import CTorch

/// What `Module.loadStateDict` found when it matched a state dict against a module: keys the module has and the dict
/// lacks, keys the dict has and the module lacks, and tensors whose shapes differ. `description` lists them all, one
/// per line, naming every key (and both shapes for a mismatch).
public struct StateDictReport: CustomStringConvertible, Sendable, Equatable {
    /// A key present on both sides with different shapes.
    public struct ShapeMismatch: Sendable, Equatable {
        public let key: String
        /// The shape of the module's tensor.
        public let expected: [Int]
        /// The shape of the state dict's tensor.
        public let found: [Int]
    }

    /// Keys of the module missing from the dict, in module order, with the module's shapes.
    public var missingKeys: [(key: String, shape: [Int])]
    /// Keys of the dict that the module does not have, sorted, with the dict's shapes.
    public var unexpectedKeys: [(key: String, shape: [Int])]
    public var shapeMismatches: [ShapeMismatch]
    /// The keys that were (or, for a strict load that failed, would have been) copied.
    public var loadedKeys: [String]

    /// True when every key matched in name and shape.
    public var isClean: Bool { missingKeys.isEmpty && unexpectedKeys.isEmpty && shapeMismatches.isEmpty }

    public static func == (a: StateDictReport, b: StateDictReport) -> Bool {
        a.missingKeys.map(\.key) == b.missingKeys.map(\.key) && a.missingKeys.map(\.shape) == b.missingKeys.map(\.shape)
            && a.unexpectedKeys.map(\.key) == b.unexpectedKeys.map(\.key)
            && a.unexpectedKeys.map(\.shape) == b.unexpectedKeys.map(\.shape)
            && a.shapeMismatches == b.shapeMismatches && a.loadedKeys == b.loadedKeys
    }

    /// At most this many lines per kind of problem; the rest are counted.
    static let lineLimit = 25

    public var description: String {
        if isClean { return "state dict matches the module (\(loadedKeys.count) tensors)" }
        func count(_ n: Int, _ what: String) -> String? { n == 0 ? nil : "\(n) \(what)\(n == 1 ? "" : "s")" }
        let summary = [count(missingKeys.count, "missing key"), count(unexpectedKeys.count, "unexpected key"),
                       count(shapeMismatches.count, "shape mismatch")].compactMap { $0 }
        var lines = ["state dict does not match the module (" + summary.joined(separator: ", ") + "):"]
        func add<T>(_ items: [T], _ line: (T) -> String) {
            lines += items.prefix(Self.lineLimit).map { "  " + line($0) }
            if items.count > Self.lineLimit { lines.append("  … and \(items.count - Self.lineLimit) more") }
        }
        add(missingKeys) { "missing key '\($0.key)' (the module's tensor has shape \($0.shape))" }
        add(unexpectedKeys) { "unexpected key '\($0.key)' (shape \($0.shape))" }
        add(shapeMismatches) {
            "shape mismatch for '\($0.key)': the module has \($0.expected), the state dict has \($0.found)"
        }
        return lines.joined(separator: "\n")
    }
}

extension Module {
    /// Every parameter and persistent buffer by dotted name, as `state_dict()`. The values are the module's own
    /// tensors (not copies, as in PyTorch), detached from autograd; a tensor registered under two names appears
    /// under both.
    public func stateDict() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, t) in stateEntries() { out[name] = try t.detach() }
        return out
    }

    /// The state dict's keys in module order (parameters, then buffers, of each module before its children).
    public func stateDictKeys() -> [String] { stateEntries().map { $0.0 } }

    /// (name, tensor) for every parameter and persistent buffer, without removing tensors registered twice.
    func stateEntries(prefix: String = "") -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        // A module reached twice is saved twice, under both names, as PyTorch's state_dict does.
        func visit(_ m: any Module, _ name: String) {
            for (key, t) in m.localParameters + m.localBuffers { out.append((join(name, key), t)) }
            for (childName, child) in m.children { visit(child, join(name, childName)) }
        }
        visit(self, prefix)
        return out
    }

    /// Matches `dict` against this module's state without copying anything.
    public func compareStateDict(_ dict: [String: Tensor]) -> StateDictReport {
        let entries = stateEntries()
        var report = StateDictReport(missingKeys: [], unexpectedKeys: [], shapeMismatches: [], loadedKeys: [])
        var known = Set<String>()
        for (key, t) in entries {
            known.insert(key)
            guard let source = dict[key] else {
                report.missingKeys.append((key, t.shape))
                continue
            }
            if source.shape != t.shape {
                report.shapeMismatches.append(.init(key: key, expected: t.shape, found: source.shape))
            } else {
                report.loadedKeys.append(key)
            }
        }
        report.unexpectedKeys = dict.keys.filter { !known.contains($0) }.sorted().map { ($0, dict[$0]!.shape) }
        return report
    }

    /// Copies `dict`'s tensors into this module's parameters and buffers, without recording autograd and keeping
    /// every tensor's identity (so optimizers stay valid); dtype and device are converted as needed.
    ///
    /// - strict (default): any missing key, unexpected key or shape mismatch throws one `TorchError` that lists
    ///   them all, and nothing is copied.
    /// - non-strict: the tensors whose key and shape match are copied; the report says what was skipped.
    @discardableResult
    public func loadStateDict(_ dict: [String: Tensor], strict: Bool = true) throws -> StateDictReport {
        let report = compareStateDict(dict)
        if strict && !report.isClean { throw TorchError(report.description) }
        let targets = Dictionary(stateEntries(), uniquingKeysWith: { first, _ in first })
        try withNoGrad {
            for key in report.loadedKeys {
                do {
                    try targets[key]!.copy_(dict[key]!)
                } catch let error as TorchError {
                    throw TorchError("loading '\(key)': \(error.message)")
                }
            }
        }
        return report
    }
}
