import CTorch
import Foundation

/// Parameter initialisers, as `torch.nn.init`: the same bounds computed with the same double arithmetic, drawn from
/// libtorch's generator in place, so that after the same seed they give bit-identical tensors. Every function runs
/// without recording autograd and works on views (`initXavierUniform` of `weight.view([out, -1])`, as DiT does).
public enum Init {
    /// Which fan `kaimingUniform` scales by.
    public enum FanMode: Sendable { case fanIn, fanOut }

    /// (fan_in, fan_out) of a weight: dimension 1 and dimension 0, times the receptive field (the product of the
    /// remaining dimensions), as `nn.init._calculate_fan_in_and_fan_out`.
    public static func fans(_ shape: [Int]) throws -> (fanIn: Int, fanOut: Int) {
        guard shape.count >= 2 else {
            throw TorchError("fan in and fan out can not be computed for a tensor with fewer than 2 dimensions "
                                 + "(shape \(shape))")
        }
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// The recommended gain for leaky ReLU with `negativeSlope`: √(2 / (1 + slope²)) (`calculate_gain`).
    public static func leakyReLUGain(_ negativeSlope: Double) -> Double {
        (2.0 / (1 + pow(negativeSlope, 2))).squareRoot()
    }

    /// U(−bound, bound) with bound = gain·√(3 / fan), gain for leaky ReLU of slope `a`
    /// (`kaiming_uniform_(t, a, mode, nonlinearity="leaky_relu")`). Linear and Conv2d use a = √5.
    public static func kaimingUniform_(_ t: Tensor, a: Double = 0, mode: FanMode = .fanIn) throws {
        if t.shape.contains(0) { return }
        let f = try fans(t.shape)
        let fan = mode == .fanIn ? f.fanIn : f.fanOut
        let std = leakyReLUGain(a) / Double(fan).squareRoot()
        let bound = 3.0.squareRoot() * std
        try uniform_(t, -bound, bound)
    }

    /// U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) (`xavier_uniform_`).
    public static func xavierUniform_(_ t: Tensor, gain: Double = 1) throws {
        let f = try fans(t.shape)
        let std = gain * (2.0 / Double(f.fanIn + f.fanOut)).squareRoot()
        let a = 3.0.squareRoot() * std
        try uniform_(t, -a, a)
    }

    /// N(0, std²) with std = gain·√(2 / (fan_in + fan_out)) (`xavier_normal_`).
    public static func xavierNormal_(_ t: Tensor, gain: Double = 1) throws {
        let f = try fans(t.shape)
        try normal_(t, mean: 0, std: gain * (2.0 / Double(f.fanIn + f.fanOut)).squareRoot())
    }

    /// The bias initialisation of Linear and Conv2d: U(±1/√fan_in) of the weight's fan_in (0 when fan_in is 0).
    public static func fanInUniform_(_ bias: Tensor, weightShape: [Int]) throws {
        let fanIn = try fans(weightShape).fanIn
        let bound = fanIn > 0 ? 1 / Double(fanIn).squareRoot() : 0
        try uniform_(bias, -bound, bound)
    }

    public static func uniform_(_ t: Tensor, _ low: Double, _ high: Double) throws {
        try withNoGrad { try t.uniform_(low, high) }
    }

    public static func normal_(_ t: Tensor, mean: Double = 0, std: Double = 1) throws {
        try withNoGrad { try t.normal_(mean: mean, std: std) }
    }

    public static func constant_(_ t: Tensor, _ value: Double) throws {
        try withNoGrad { try t.fill_(value) }
    }

    public static func zeros_(_ t: Tensor) throws { try constant_(t, 0) }
    public static func ones_(_ t: Tensor) throws { try constant_(t, 1) }
}
