import XCTest

@testable import Torch

/// Neural-network functions against PyTorch 2.11 (fixture `ops_nn`): values and gradients.
final class NNOpsParityTests: XCTestCase {
    var fx: [String: Tensor] = [:]

    override func setUpWithError() throws { fx = try fixture("ops_nn") }

    func testActivationsAndNormalisation() throws {
        try checkCase(fx, "softmax", inputs: ["x"], grads: ["x"]) { try $0["x"]!.softmax(dim: -1) }
        try checkCase(fx, "softmax_d1", inputs: ["x"]) { try $0["x"]!.softmax(dim: 1) }
        try checkCase(fx, "log_softmax", inputs: ["x"], grads: ["x"]) { try $0["x"]!.logSoftmax(dim: -1) }
        try checkCase(fx, "linear", inputs: ["x", "w", "b"], grads: ["x", "w", "b"]) {
            try $0["x"]!.linear(weight: $0["w"]!, bias: $0["b"]!)
        }
        try checkCase(fx, "layer_norm", inputs: ["x", "w", "b"], grads: ["x", "w", "b"], atol: 2e-5) {
            try $0["x"]!.layerNorm([7], weight: $0["w"]!, bias: $0["b"]!)
        }
        try checkCase(fx, "layer_norm2", inputs: ["x"], grads: ["x"], atol: 2e-5) {
            try $0["x"]!.layerNorm([5, 7], eps: 1e-6)
        }
        try checkCase(fx, "group_norm", inputs: ["x", "w", "b"], grads: ["x", "w", "b"], atol: 2e-5) {
            try $0["x"]!.groupNorm(groups: 3, weight: $0["w"]!, bias: $0["b"]!)
        }
        try checkCase(fx, "group_norm_plain", inputs: ["x"], atol: 2e-5) { try $0["x"]!.groupNorm(groups: 2) }
    }

    func testBatchNorm() throws {
        let rm = try tensor(fx, "batch_norm.rm0").clone(), rv = try tensor(fx, "batch_norm.rv0").clone()
        try checkCase(fx, "batch_norm", inputs: ["x", "w", "b"], grads: ["x", "w", "b"], atol: 2e-5) {
            try $0["x"]!.batchNorm(weight: $0["w"]!, bias: $0["b"]!, runningMean: rm, runningVar: rv, training: true)
        }
        try assertClose(rm, try tensor(fx, "batch_norm.rm1"), "running mean updated in place")
        try assertClose(rv, try tensor(fx, "batch_norm.rv1"), "running var updated in place")
        let rm0 = try tensor(fx, "batch_norm.rm0"), rv0 = try tensor(fx, "batch_norm.rv0")
        try checkCase(fx, "batch_norm_eval", inputs: ["x"], atol: 2e-5) {
            try $0["x"]!.batchNorm(weight: nil, bias: nil, runningMean: rm0, runningVar: rv0, training: false)
        }
    }

    func testConv2d() throws {
        try checkCase(fx, "conv", inputs: ["x", "w", "b"], grads: ["x", "w", "b"], atol: 2e-5) {
            try $0["x"]!.conv2d(weight: $0["w"]!, bias: $0["b"]!, padding: (1, 1))
        }
        try checkCase(fx, "conv_groups", inputs: ["x", "w"], grads: ["x", "w"], atol: 2e-5) {
            try $0["x"]!.conv2d(weight: $0["w"]!, stride: (2, 1), padding: (1, 2), groups: 2)
        }
        try checkCase(fx, "conv_dw", inputs: ["x", "w", "b"], grads: ["x", "w", "b"], atol: 2e-5) {
            try $0["x"]!.conv2d(weight: $0["w"]!, bias: $0["b"]!, padding: (2, 2), dilation: (2, 2), groups: 4)
        }
    }

    func testInterpolateAndPooling() throws {
        let cases: [(String, (Int, Int), InterpolationMode, Bool, Bool)] = [
            ("nearest", (7, 9), .nearest, false, false), ("nearest_down", (2, 4), .nearest, false, false),
            ("bilinear", (8, 3), .bilinear, false, false), ("bilinear_ac", (8, 11), .bilinear, true, false),
            ("bicubic", (9, 10), .bicubic, false, false), ("bilinear_aa", (3, 4), .bilinear, false, true),
            ("bicubic_aa", (2, 3), .bicubic, false, true),
        ]
        for (name, size, mode, ac, aa) in cases {
            try checkCase(fx, "interp_\(name)", inputs: ["x"], grads: ["x"]) {
                try $0["x"]!.interpolate(size: size, mode: mode, alignCorners: ac, antialias: aa)
            }
        }
        try checkCase(fx, "avg_pool", inputs: ["x"], grads: ["x"]) { try $0["x"]!.avgPool2d(kernel: (2, 2)) }
        try checkCase(fx, "avg_pool_s", inputs: ["x"]) { try $0["x"]!.avgPool2d(kernel: (3, 2), stride: (2, 1)) }
        try checkCase(fx, "adaptive_pool", inputs: ["x"], grads: ["x"]) { try $0["x"]!.adaptiveAvgPool2d((3, 2)) }
    }

    func testScaledDotProductAttention() throws {
        let qkv = ["q", "k", "v"]
        let bmask = try tensor(fx, "sdpa.bmask"), fmask = try tensor(fx, "sdpa.fmask")
        XCTAssertEqual(bmask.dtype, .bool)
        try checkCase(fx, "sdpa", inputs: qkv, grads: qkv) {
            try scaledDotProductAttention(query: $0["q"]!, key: $0["k"]!, value: $0["v"]!)
        }
        try checkCase(fx, "sdpa_bool", inputs: qkv, grads: qkv) {
            try scaledDotProductAttention(query: $0["q"]!, key: $0["k"]!, value: $0["v"]!, mask: bmask)
        }
        try checkCase(fx, "sdpa_float", inputs: qkv, grads: qkv) {
            try scaledDotProductAttention(query: $0["q"]!, key: $0["k"]!, value: $0["v"]!, mask: fmask, scale: 0.2)
        }
        try checkCase(fx, "sdpa_causal", inputs: qkv, grads: qkv) {
            try scaledDotProductAttention(query: $0["q"]!, key: $0["k"]!, value: $0["v"]!, isCausal: true)
        }
    }

    func testEmbeddingAndLosses() throws {
        let idx = try tensor(fx, "embedding.idx")
        try checkCase(fx, "embedding", inputs: ["w"], grads: ["w"]) { try $0["w"]!.embedding(idx) }
        let target = try tensor(fx, "ce.target")
        try checkCase(fx, "ce_mean", inputs: ["x"], grads: ["x"]) { try crossEntropy(logits: $0["x"]!, target: target) }
        try checkCase(fx, "ce_sum_smooth", inputs: ["x"], grads: ["x"]) {
            try crossEntropy(logits: $0["x"]!, target: target, reduction: .sum, labelSmoothing: 0.1)
        }
        try checkCase(fx, "ce_none_ignore2", inputs: ["x"], grads: ["x"]) {
            try crossEntropy(logits: $0["x"]!, target: target.clamp(min: 0), reduction: .none, ignoreIndex: 2)
        }
        try checkCase(fx, "ce_mean_smooth_ignore", inputs: ["x"], grads: ["x"]) {
            try crossEntropy(logits: $0["x"]!, target: target, labelSmoothing: 0.2)
        }
        let probs = try tensor(fx, "ce_probs.target")
        try checkCase(fx, "ce_probs", inputs: ["x"], grads: ["x"]) { try crossEntropy(logits: $0["x"]!, target: probs) }
        let t4 = try tensor(fx, "ce_spatial.target")
        try checkCase(fx, "ce_spatial", inputs: ["x"], grads: ["x"]) { try crossEntropy(logits: $0["x"]!, target: t4) }
        for (name, red) in [("mean", Reduction.mean), ("sum", .sum), ("none", .none)] {
            try checkCase(fx, "mse_\(name)", inputs: ["a", "b"], grads: ["a", "b"]) {
                try mseLoss($0["a"]!, $0["b"]!, reduction: red)
            }
        }
    }

    func testDropout() throws {
        let x = try Tensor.ones([1000])
        try assertEqualTensors(try x.dropout(p: 0.5, training: false), x, "dropout in evaluation is the identity")
        let y = try x.dropout(p: 0.25, training: true)
        let kept = try y.ne(0).to(dtype: .float32).sum().item()
        XCTAssertEqual(kept, 750, accuracy: 60)
        XCTAssertEqual(try y.amax().item(), 1 / 0.75, accuracy: 1e-6)
    }
}
