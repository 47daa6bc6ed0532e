import XCTest

@testable import Torch

/// Reductions, views and copies against PyTorch 2.11 (fixtures `ops_reduce`, `ops_shape`).
final class ShapeOpsParityTests: XCTestCase {
    func testReductions() throws {
        let fx = try fixture("ops_reduce")
        let specs: [(String, [Int], Bool)] = [
            ("all", [], false), ("d1", [1], false), ("d1k", [1], true), ("d02", [0, 2], false), ("dneg", [-1], true),
        ]
        let ops: [(String, (Tensor, [Int], Bool) throws -> Tensor)] = [
            ("sum", { try $0.sum(dims: $1, keepDim: $2) }), ("mean", { try $0.mean(dims: $1, keepDim: $2) }),
            ("amax", { try $0.amax(dims: $1, keepDim: $2) }), ("amin", { try $0.amin(dims: $1, keepDim: $2) }),
            ("prod", { try $0.prod(dims: $1, keepDim: $2) }),
            ("logsumexp", { try $0.logSumExp(dims: $1, keepDim: $2) }),
        ]
        for (op, f) in ops {
            for (s, dims, keep) in specs {
                let grads = ["all", "d02"].contains(s) ? ["x"] : []
                try checkCase(fx, "\(op).\(s)", inputs: ["x"], grads: grads, rtol: 1e-5, atol: 1e-5) {
                    try f($0["x"]!, dims, keep)
                }
            }
        }
        let x = try tensor(fx, "x")
        try assertClose(try x.prod(keepDim: true), try tensor(fx, "prod.allk.out"), "prod all keepdim")
        XCTAssertEqual(try x.prod(keepDim: true).shape, [1, 1, 1])
        try assertClose(try x.variance(), try tensor(fx, "var.all.out"), "var all")
        for c in [0, 1] {
            try checkCase(fx, "var.c\(c)", inputs: ["x"], grads: ["x"]) {
                try $0["x"]!.variance(dims: [1, 2], correction: Double(c))
            }
            try checkCase(fx, "std.c\(c)", inputs: ["x"], grads: ["x"]) {
                try $0["x"]!.std(dims: [0], correction: Double(c), keepDim: true)
            }
        }
        try checkCase(fx, "norm.p2", inputs: ["x"], grads: ["x"]) { try $0["x"]!.norm() }
        try checkCase(fx, "norm.p1", inputs: ["x"], grads: ["x"]) { try $0["x"]!.norm(1, dims: [2], keepDim: true) }
        try checkCase(fx, "norm.pinf", inputs: ["x"]) { try $0["x"]!.norm(.infinity, dims: [0, 1]) }
        try assertEqualTensors(try x.argmax(dim: 1), try tensor(fx, "argmax.d1"), "argmax")
        try assertEqualTensors(try x.argmax(dim: 2, keepDim: true), try tensor(fx, "argmax.d2k"), "argmax keepdim")
        try assertEqualTensors(try x.argmin(dim: 0), try tensor(fx, "argmin.d0"), "argmin")
        try checkCase(fx, "cumsum.d1", inputs: ["x"], grads: ["x"]) { try $0["x"]!.cumsum(dim: 1) }
        try checkCase(fx, "cumsum.dneg", inputs: ["x"]) { try $0["x"]!.cumsum(dim: -1) }
        let large = try x.topk(3)
        try assertEqualTensors(large.values, try tensor(fx, "topk.large.values"), "topk values")
        try assertEqualTensors(large.indices, try tensor(fx, "topk.large.indices"), "topk indices")
        let small = try x.topk(2, dim: -1, largest: false)
        try assertEqualTensors(small.values, try tensor(fx, "topk.small.values"), "topk smallest values")
        try assertEqualTensors(small.indices, try tensor(fx, "topk.small.indices"), "topk smallest indices")
        let xg = try x.clone().requiresGrad(true)
        try (try xg.topk(3, dim: 1).values * (try tensor(fx, "topk.grad.R"))).sum().backward()
        try assertClose(try XCTUnwrap(xg.grad), try tensor(fx, "topk.grad.x"), "topk gradient")
        let asc = try x.sort()
        try assertEqualTensors(asc.values, try tensor(fx, "sort.asc.values"), "sort values")
        try assertEqualTensors(asc.indices, try tensor(fx, "sort.asc.indices"), "sort indices")
        let desc = try x.sort(dim: 0, descending: true)
        try assertEqualTensors(desc.values, try tensor(fx, "sort.desc0.values"), "sort desc values")
        try assertEqualTensors(desc.indices, try tensor(fx, "sort.desc0.indices"), "sort desc indices")
        let b = try tensor(fx, "bool.x")
        try assertEqualTensors(try b.any(), try tensor(fx, "bool.any"), "any")
        try assertEqualTensors(try b.all(), try tensor(fx, "bool.all"), "all")
        try assertEqualTensors(try b.any(dims: [1]), try tensor(fx, "bool.any_d1"), "any dim")
        try assertEqualTensors(try b.all(dims: [1]), try tensor(fx, "bool.all_d1"), "all dim")
        let ints = try Tensor.arange(0, 12, dtype: .int32).reshape([3, 4])
        try assertEqualTensors(try ints.sum(dims: [1]), try tensor(fx, "int_sum"), "int32 sum is int64")
    }

    func testViews() throws {
        let fx = try fixture("ops_shape")
        let x = try tensor(fx, "x")
        try assertEqualTensors(try x.reshape([4, -1]), try tensor(fx, "reshape.out"), "reshape")
        try assertEqualTensors(try x.view([4, -1]), try tensor(fx, "reshape.out"), "view")
        try assertEqualTensors(try x.permute([2, 0, 1]).contiguous(), try tensor(fx, "permute.out"), "permute")
        try assertEqualTensors(try x.transpose(0, 2).contiguous(), try tensor(fx, "transpose.out"), "transpose")
        try assertEqualTensors(try x.flatten(start: 1), try tensor(fx, "flatten.out"), "flatten")
        try assertEqualTensors(try x.unsqueeze(-1), try tensor(fx, "unsqueeze.out"), "unsqueeze")
        try assertEqualTensors(try x.slice(1, 0, 1).squeeze(1), try tensor(fx, "squeeze.out"), "squeeze")
        try checkCase(fx, "slice_step", inputs: ["x"], grads: ["x"]) { try $0["x"]!.slice(2, 1, Int.max, step: 2) }
        try assertEqualTensors(try x.slice(1, -2, 3), try tensor(fx, "slice_neg.out"), "negative slice")
        try checkCase(fx, "select", inputs: ["x"], grads: ["x"]) { try $0["x"]!.select(1, -1) }
        try assertEqualTensors(try x[1], try x.select(0, 1), "subscript")
        // A view shares storage with its base.
        let base = try Tensor.zeros([2, 3])
        try base.slice(1, 1, 3).fill_(5)
        XCTAssertEqual(try base.toArray(as: Float.self), [0, 5, 5, 0, 5, 5])
    }

    func testIndexing() throws {
        let fx = try fixture("ops_shape")
        let idx = try tensor(fx, "index.idx"), gidx = try tensor(fx, "gather.idx"), sidx = try tensor(fx, "scatter.idx")
        try checkCase(fx, "index_select", inputs: ["x"], grads: ["x"]) { try $0["x"]!.indexSelect(dim: 2, index: idx) }
        try checkCase(fx, "gather", inputs: ["x"], grads: ["x"]) { try $0["x"]!.gather(dim: 2, index: gidx) }
        try checkCase(fx, "scatter", inputs: ["x", "s"], grads: ["x", "s"]) {
            try $0["x"]!.scatter(dim: 1, index: sidx, source: $0["s"]!)
        }
        let x = try tensor(fx, "x")
        try assertEqualTensors(try x[0].masked(try tensor(fx, "masked.mask")), try tensor(fx, "masked.out"), "mask")
        try assertEqualTensors(try tensor(fx, "one_hot.idx").oneHot(classes: 5), try tensor(fx, "one_hot.out"), "one_hot")
    }

    func testJoinAndSplit() throws {
        let fx = try fixture("ops_shape")
        try checkCase(fx, "cat", inputs: ["x", "y"], grads: ["x", "y"]) { try Tensor.cat([$0["x"]!, $0["y"]!], dim: 1) }
        try checkCase(fx, "stack", inputs: ["x", "y"], grads: ["x", "y"]) {
            try Tensor.stack([$0["x"]!, $0["y"]!], dim: -1)
        }
        let chunks = try Tensor.arange(0, 10).chunk(3)
        XCTAssertEqual(chunks.count, 3)
        for (i, c) in chunks.enumerated() { try assertEqualTensors(c, try tensor(fx, "chunk.\(i)"), "chunk \(i)") }
        XCTAssertEqual(try Tensor.arange(0, 2).chunk(5).count, 2)  // fewer parts than asked, as PyTorch
        let parts = try tensor(fx, "x").split([1, 3], dim: 2)
        XCTAssertEqual(parts.count, 2)
        for (i, p) in parts.enumerated() { try assertEqualTensors(p, try tensor(fx, "split.\(i)"), "split \(i)") }
    }

    func testCopiesAndPadding() throws {
        let fx = try fixture("ops_shape")
        try checkCase(fx, "flip", inputs: ["x"], grads: ["x"]) { try $0["x"]!.flip([0, 2]) }
        try checkCase(fx, "roll", inputs: ["x"], grads: ["x"]) { try $0["x"]!.roll(-3, dim: 2) }
        try checkCase(fx, "tril", inputs: ["x"], grads: ["x"]) { try $0["x"]!.tril(-1) }
        try checkCase(fx, "triu", inputs: ["x"]) { try $0["x"]!.triu(1) }
        try checkCase(fx, "pad", inputs: ["x"], grads: ["x"]) { try $0["x"]!.pad([1, 2, 0, 1], value: -1) }
        try checkCase(fx, "expand", inputs: ["x"], grads: ["x"]) { try $0["x"]!.expand([3, 2, 4]) }
        try checkCase(fx, "repeat", inputs: ["x"], grads: ["x"]) { try $0["x"]!.repeated([2, 1, 3]) }
    }
}
