/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast generator with a 64-bit state, for the seeded draws that
/// must not touch libtorch's global generator (shuffles, splits, k-means++ picks, `sample1` routing), so that they
/// depend on their seed alone. One generator for every layer: the data pipeline, the run and the mixture.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) from the top 53 bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
}
