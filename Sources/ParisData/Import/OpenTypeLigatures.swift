import Foundation

/// The ligature substitutions (GSUB lookup type 4, also inside type 7 extensions) of an OpenType font: how colour
/// emoji fonts map a sequence of code points (ZWJ sequences, flags, keycaps) to one glyph. A minimal reader, not a
/// shaper: lookups are applied in order over the whole glyph run, ignoring features, scripts and lookup flags, which is
/// what emoji fonts need.
public struct OpenTypeLigatures: Sendable {
    /// One ligature lookup: for a first glyph, the (rest of the components, ligature glyph) pairs in font order.
    typealias Lookup = [UInt16: [([UInt16], UInt16)]]
    let lookups: [Lookup]

    /// The number of ligature rules read.
    public var ruleCount: Int { lookups.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } } }

    /// No ligatures (a font without GSUB).
    public init() { lookups = [] }

    /// Parses a GSUB table; `name` is used in error messages.
    public init(gsub b: [UInt8], name: String) throws {
        func u16(_ o: Int) throws -> Int {
            guard o >= 0, o + 2 <= b.count else { throw DatasetImportError("\(name): GSUB table truncated at byte \(o)") }
            return Int(b[o]) << 8 | Int(b[o + 1])
        }
        func u32(_ o: Int) throws -> Int { try u16(o) << 16 | u16(o + 2) }
        func coverage(_ o: Int) throws -> [UInt16] {
            switch try u16(o) {
            case 1: return try (0..<u16(o + 2)).map { UInt16(try u16(o + 4 + 2 * $0)) }
            case 2:
                var glyphs: [(Int, UInt16)] = []
                for r in 0..<(try u16(o + 2)) {
                    let rec = o + 4 + 6 * r
                    let start = try u16(rec), end = try u16(rec + 2), index = try u16(rec + 4)
                    guard end >= start else { throw DatasetImportError("\(name): GSUB coverage range \(start)>\(end)") }
                    for g in start...end { glyphs.append((index + g - start, UInt16(g))) }
                }
                return glyphs.sorted { $0.0 < $1.0 }.map(\.1)
            case let f: throw DatasetImportError("\(name): unknown GSUB coverage format \(f)")
            }
        }
        func ligatureSubtable(_ s: Int, into lookup: inout Lookup) throws {
            guard try u16(s) == 1 else { return }
            let cov = try coverage(s + (try u16(s + 2)))
            let setCount = try u16(s + 4)
            for i in 0..<min(setCount, cov.count) {
                let set = s + (try u16(s + 6 + 2 * i))
                for j in 0..<(try u16(set)) {
                    let lig = set + (try u16(set + 2 + 2 * j))
                    let glyph = UInt16(try u16(lig)), count = try u16(lig + 2)
                    guard count >= 1 else { continue }
                    let rest = try (0..<(count - 1)).map { UInt16(try u16(lig + 4 + 2 * $0)) }
                    lookup[cov[i], default: []].append((rest, glyph))
                }
            }
        }
        guard b.count >= 10 else { throw DatasetImportError("\(name): GSUB table of \(b.count) bytes is too short") }
        let list = try u16(8)
        var lookups: [Lookup] = []
        for l in 0..<(try u16(list)) {
            let lo = list + (try u16(list + 2 + 2 * l))
            let type = try u16(lo)
            var lookup: Lookup = [:]
            for t in 0..<(try u16(lo + 4)) {
                let sub = lo + (try u16(lo + 6 + 2 * t))
                if type == 4 {
                    try ligatureSubtable(sub, into: &lookup)
                } else if type == 7, try u16(sub) == 1, try u16(sub + 2) == 4 {
                    try ligatureSubtable(sub + (try u32(sub + 4)), into: &lookup)
                }
            }
            if !lookup.isEmpty { lookups.append(lookup) }
        }
        self.lookups = lookups
    }

    /// Applies every lookup in order: at each position the first ligature (in font order) whose components match
    /// replaces them.
    public func apply(_ glyphs: [UInt16]) -> [UInt16] {
        var run = glyphs
        for lookup in lookups {
            var out: [UInt16] = []
            var i = 0
            while i < run.count {
                var matched = false
                if let candidates = lookup[run[i]] {
                    for (rest, lig) in candidates {
                        if i + 1 + rest.count <= run.count && Array(run[(i + 1)..<(i + 1 + rest.count)]) == rest {
                            out.append(lig)
                            i += 1 + rest.count
                            matched = true
                            break
                        }
                    }
                }
                if !matched { out.append(run[i]); i += 1 }
            }
            run = out
        }
        return run
    }
}
