import CTorch
import Foundation

/// Views, indexing, joining and splitting.
extension Tensor {
    private func withDims(_ dims: [Int], _ body: (UnsafePointer<Int64>?, Int64) -> OpaquePointer?) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try d.withUnsafeBufferPointer { try checked(body($0.baseAddress, Int64(d.count))) }
    }

    /// A tensor with the same elements and a new shape (one size may be -1), a view when possible.
    public func reshape(_ shape: [Int]) throws -> Tensor { try withDims(shape) { ct_reshape(handle, $0, $1) } }
    /// A view with a new shape; fails when the memory layout does not allow one.
    public func view(_ shape: [Int]) throws -> Tensor { try withDims(shape) { ct_view(handle, $0, $1) } }
    /// Broadcasts size-1 dimensions to `shape` without copying (-1 keeps a size).
    public func expand(_ shape: [Int]) throws -> Tensor { try withDims(shape) { ct_expand(handle, $0, $1) } }
    public func permute(_ dims: [Int]) throws -> Tensor { try withDims(dims) { ct_permute(handle, $0, $1) } }
    public func repeated(_ repeats: [Int]) throws -> Tensor { try withDims(repeats) { ct_repeat(handle, $0, $1) } }
    public func flip(_ dims: [Int]) throws -> Tensor { try withDims(dims) { ct_flip(handle, $0, $1) } }
    /// Constant padding, PyTorch's `F.pad` order: (last-dim left, last-dim right, previous-dim left, ...).
    public func pad(_ pad: [Int], value: Double = 0) throws -> Tensor {
        let d = pad.map(Int64.init)
        return try d.withUnsafeBufferPointer { try checked(ct_pad(handle, $0.baseAddress, Int64(d.count), value)) }
    }

    public func transpose(_ d0: Int, _ d1: Int) throws -> Tensor { try checked(ct_transpose(handle, Int64(d0), Int64(d1))) }
    public func unsqueeze(_ dim: Int) throws -> Tensor { try checked(ct_unsqueeze(handle, Int64(dim))) }
    public func squeeze(_ dim: Int) throws -> Tensor { try checked(ct_squeeze(handle, Int64(dim))) }
    public func flatten(start: Int = 0, end: Int = -1) throws -> Tensor {
        try checked(ct_flatten(handle, Int64(start), Int64(end)))
    }

    /// Elements `start..<end` (step `step`) along `dim`, a view. Negative bounds count from the end.
    public func slice(_ dim: Int, _ start: Int, _ end: Int, step: Int = 1) throws -> Tensor {
        try checked(ct_slice(handle, Int64(dim), Int64(start), Int64(end), Int64(step)))
    }

    /// The sub-tensor at `index` along `dim`, which is removed (a view).
    public func select(_ dim: Int, _ index: Int) throws -> Tensor { try checked(ct_select(handle, Int64(dim), Int64(index))) }
    public subscript(index: Int) -> Tensor { get throws { try select(0, index) } }

    public func indexSelect(dim: Int, index: Tensor) throws -> Tensor {
        try withExtendedLifetime(index) { try checked(ct_index_select(handle, Int64(dim), index.handle)) }
    }

    public func gather(dim: Int, index: Tensor) throws -> Tensor {
        try withExtendedLifetime(index) { try checked(ct_gather(handle, Int64(dim), index.handle)) }
    }

    public func scatter(dim: Int, index: Tensor, source: Tensor) throws -> Tensor {
        try withExtendedLifetime((index, source)) {
            try checked(ct_scatter(handle, Int64(dim), index.handle, source.handle))
        }
    }

    /// The elements where `mask` is true, flattened (`t[mask]`).
    public func masked(_ mask: Tensor) throws -> Tensor {
        try withExtendedLifetime(mask) { try checked(ct_index_bool(handle, mask.handle)) }
    }

    public func roll(_ shift: Int, dim: Int) throws -> Tensor { try checked(ct_roll(handle, Int64(shift), Int64(dim))) }
    public func tril(_ diagonal: Int = 0) throws -> Tensor { try checked(ct_tril(handle, Int64(diagonal))) }
    public func triu(_ diagonal: Int = 0) throws -> Tensor { try checked(ct_triu(handle, Int64(diagonal))) }
    public func oneHot(classes: Int) throws -> Tensor { try checked(ct_one_hot(handle, Int64(classes))) }

    /// Joins tensors along an existing dimension.
    public static func cat(_ tensors: [Tensor], dim: Int = 0) throws -> Tensor {
        try withHandles(tensors) { try checked(ct_cat($0, Int64(tensors.count), Int64(dim))) }
    }

    /// Joins tensors along a new dimension.
    public static func stack(_ tensors: [Tensor], dim: Int = 0) throws -> Tensor {
        try withHandles(tensors) { try checked(ct_stack($0, Int64(tensors.count), Int64(dim))) }
    }

    /// Splits into at most `chunks` nearly equal parts along `dim` (the last may be smaller), as views, like
    /// `torch.chunk` (an empty dimension gives `chunks` empty parts).
    public func chunk(_ chunks: Int, dim: Int = 0) throws -> [Tensor] {
        var out: UnsafeMutablePointer<OpaquePointer?>?
        let n = ct_chunk(handle, Int64(chunks), Int64(dim), &out)
        if n < 0 { throw TorchError.last() }
        defer { free(out) }
        return (0..<Int(n)).map { Tensor(handle: out![$0]!) }
    }

    /// Splits into parts of the given sizes along `dim`, as views.
    public func split(_ sizes: [Int], dim: Int = 0) throws -> [Tensor] {
        let s = sizes.map(Int64.init)
        var out = [OpaquePointer?](repeating: nil, count: sizes.count)
        let status = s.withUnsafeBufferPointer { sp in
            out.withUnsafeMutableBufferPointer { ct_split(handle, sp.baseAddress, Int64(s.count), Int64(dim), $0.baseAddress) }
        }
        try checkStatus(status)
        return out.map { Tensor(handle: $0!) }
    }
}
