import XCTest

@testable import Torch

/// Bad input throws TorchError with libtorch's own words (and no C++ backtrace); the process lives on.
final class ErrorTests: XCTestCase {
    /// Asserts that `body` throws a TorchError whose message contains `phrase` and no C++ stack frames.
    func expectError<R>(_ phrase: String, file: StaticString = #filePath, line: UInt = #line,
                        _ body: () throws -> R) {
        do {
            _ = try body()
            XCTFail("expected an error containing '\(phrase)'", file: file, line: line)
        } catch let error as TorchError {
            XCTAssertTrue(error.message.contains(phrase), "'\(error.message)' lacks '\(phrase)'", file: file, line: line)
            XCTAssertFalse(error.message.contains("frame #"), "C++ backtrace in '\(error.message)'", file: file, line: line)
            XCTAssertFalse(error.message.contains("Exception raised from"), "C++ origin in '\(error.message)'",
                           file: file, line: line)
            XCTAssertFalse(error.message.isEmpty, file: file, line: line)
        } catch {
            XCTFail("expected TorchError, got \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    func testShapeErrors() throws {
        let a = try Tensor.ones([2, 3]), b = try Tensor.ones([4, 5])
        expectError("cannot be multiplied (2x3 and 4x5)") { try a.matmul(b) }
        expectError("Sizes of tensors must match except in dimension 0") { try Tensor.cat([a, b]) }
        expectError("expected a non-empty list of Tensors") { try Tensor.cat([]) }
        expectError("stack expects each tensor to be equal size") { try Tensor.stack([a, b]) }
        expectError("shape '[4, 2]' is invalid for input of size 6") { try a.reshape([4, 2]) }
        expectError("only one dimension can be inferred") { try a.reshape([-1, -1]) }
        expectError("view size is not compatible with input tensor's size and stride") {
            try a.transpose(0, 1).view([6])
        }
        expectError("The size of tensor a (3) must match the size of tensor b (5)") { try a + b }
        expectError("expand") { try a.expand([4, 4]) }
        let x = try Tensor.ones([1, 3, 8, 8])
        expectError("expected input[1, 3, 8, 8] to have 4 channels, but got 3 channels instead") {
            try x.conv2d(weight: try Tensor.ones([2, 4, 3, 3]))
        }
        expectError("Kernel size can't be greater than actual input size") {
            try x.conv2d(weight: try Tensor.ones([2, 3, 9, 9]))
        }
        expectError("weight of size [2, 3, 3, 3], expected input[1, 3, 8, 8] to have 6 channels") {
            try x.conv2d(weight: try Tensor.ones([2, 3, 3, 3]), groups: 2)
        }
        expectError("align_corners option can only be set with the interpolating modes") {
            try x.interpolate(size: (4, 4), mode: .nearest, alignCorners: true)
        }
        expectError("Anti-alias option is restricted to bilinear and bicubic modes") {
            try x.interpolate(size: (4, 4), mode: .nearest, antialias: true)
        }
        expectError("It is expected input_size equals to 4, but got size 3") { try Tensor.ones([3, 8, 8]).interpolate(size: (4, 4)) }
        expectError("Dimension out of range") { try Tensor.ones([8, 8]).avgPool2d(kernel: (2, 2)) }
        expectError("normalized_shape") { try x.layerNorm([7]) }
        expectError("Expected number of channels in input to be divisible by num_groups") { try x.groupNorm(groups: 2) }
    }

    func testIndexErrors() throws {
        let a = try Tensor.ones([2, 3])
        expectError("select(): index 5 out of range for tensor of size [2, 3] at dimension 0") { try a.select(0, 5) }
        expectError("index 5 out of range") { try a[5] }
        expectError("Dimension out of range (expected to be in range of [-2, 1], but got 2)") { try a.sum(dims: [2]) }
        expectError("Dimension out of range") { try a.transpose(0, 7) }
        expectError("INDICES element is out of DATA bounds, id=3 axis_dim=3") {
            try a.indexSelect(dim: 1, index: try Tensor([0, 3] as [Int64]))
        }
        expectError("out of bounds") { try a.gather(dim: 1, index: try Tensor([0, 9] as [Int64], shape: [1, 2])) }
        expectError("index out of range in self") { try Tensor.ones([4, 2]).embedding(try Tensor([4] as [Int64])) }
        expectError("Target 7 is out of bounds") {
            try crossEntropy(logits: try Tensor.ones([2, 3]), target: try Tensor([0, 7] as [Int64]))
        }
        expectError("chunk expects `chunks` to be greater than 0") { try a.chunk(0) }
        expectError("chunk expects `chunks` to be greater than 0") { try a.chunk(-3) }
        XCTAssertEqual(try a.chunk(1 << 40).count, 2)  // no buffer of 2^40 handles is made
        XCTAssertEqual(try Tensor.zeros([0]).chunk(3).count, 3)  // PyTorch gives `chunks` empty parts
        expectError("split_with_sizes expects split_sizes to sum exactly to 3") { try a.split([1, 1], dim: 1) }
        expectError("Class values must be smaller than num_classes") { try Tensor([5] as [Int64]).oneHot(classes: 3) }
    }

    func testDTypeErrors() throws {
        let f = try Tensor.ones([2])
        expectError("toArray(as: Int64) needs dtype int64, but the tensor is float32") { try f.toArray(as: Int64.self) }
        expectError("toArray(as: Float) needs dtype float32, but the tensor is bfloat16") { try Tensor.ones([2], dtype: .bfloat16).toArray(as: Float.self) }
        expectError("index_select(): Expected dtype int32 or int64 for index") {
            try Tensor.ones([3, 2]).indexSelect(dim: 0, index: try Tensor([0] as [Float]))
        }
        expectError("result type Float can't be cast to the desired output type Long") {
            try Tensor.ones([2], dtype: .int64).add_(0.5)
        }
        expectError("expected m1 and m2 to have the same dtype") { try f.unsqueeze(0).matmul(try Tensor.ones([2, 1], dtype: .float64)) }
        expectError("a Tensor with 2 elements cannot be converted to Scalar") { try f.item() }
    }

    func testByteCountAndShapeErrors() throws {
        let bytes = [UInt8](repeating: 0, count: 10)
        expectError("10 bytes cannot hold a float32 tensor of shape [2, 2] (16 bytes)") {
            try bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: [2, 2], dtype: .float32) }
        }
        expectError("shape [3] holds 3 elements, but 2 values were given") { try Tensor([1, 2] as [Float], shape: [3]) }
        expectError("negative dimension -1") { try Tensor([] as [Float], shape: [-1, 0]) }
        expectError("negative dimension -1") { try Tensor([1, 2] as [Float], shape: [-1, -2]) }
        expectError("Storage size calculation overflowed") { try Tensor([1] as [Float], shape: [1 << 40, 1 << 40]) }
        expectError("Storage size calculation overflowed") {
            try bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: [1 << 31, 1 << 31], dtype: .float64) }
        }
        expectError("Storage size calculation overflowed") { try Tensor.zeros([1 << 40, 1 << 40]) }
        expectError("can't allocate memory") { try Tensor.empty([1 << 42]) }
        expectError("Dimension size must be non-negative") { try Tensor.zeros([2, -1]) }
        expectError("upper bound and lower bound inconsistent with step sign") { try Tensor.arange(0, 5, step: -1) }
        expectError("random_ expects 'from' to be less than 'to'") { try Tensor.randint(5, 5, [2]) }
    }

    func testUnknownDevice() throws {
        expectError("Expected one of cpu, cuda") { try Device(parsing: "tpu") }
        expectError("Invalid device string") { try Device(parsing: "cuda:x") }
        expectError("not supported") { try Device(parsing: "mps") }
        XCTAssertEqual(try Device(parsing: "CUDA:1"), .cuda(1))
    }

    func testCUDAWithoutAGPUIsAnError() throws {
        guard !Runtime.cudaIsAvailable else { throw XCTSkip("this machine has CUDA") }
        expectError("cuda:0 was requested, but CUDA is not available here") { try Tensor.zeros([2], device: .cuda(0)) }
        expectError("cuda:1 was requested, but CUDA is not available here") {
            try Tensor.ones([2]).to(device: .cuda(1))
        }
        expectError("CUDA is not available") { try Tensor.randn([2], device: .cuda(0)) }
    }

    func testErrorsLeaveTheThreadUsable() throws {
        // After an error the next call works and a later error carries its own message, not a stale one.
        let a = try Tensor.ones([2, 3])
        expectError("cannot be multiplied") { try a.matmul(a) }
        XCTAssertEqual(try a.matmul(try a.transpose(0, 1)).shape, [2, 2])
        expectError("shape '[5]' is invalid") { try a.reshape([5]) }
        // Errors on another thread stay on that thread.
        final class Box: @unchecked Sendable { var message = "" }
        let box = Box()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            do { _ = try a.reshape([7]) } catch { box.message = "\(error)" }
        }
        group.wait()
        XCTAssertTrue(box.message.contains("shape '[7]' is invalid"), box.message)
    }
}
