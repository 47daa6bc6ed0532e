import CTorch

extension Tensor {
    /// Eigen-decomposition of a symmetric matrix (or a batch of them) [..., n, n] (`torch.linalg.eigh`, lower
    /// triangle): eigenvalues in ascending order [..., n] and the eigenvectors as columns [..., n, n].
    public func linalgEigh() throws -> (values: Tensor, vectors: Tensor) {
        guard rank >= 2, size(-1) == size(-2) else {
            throw TorchError("linalgEigh needs square matrices [..., n, n], got \(shape)")
        }
        var v: OpaquePointer?, q: OpaquePointer?
        try checkStatus(ct_linalg_eigh(handle, &v, &q))
        return (Tensor(handle: v!), Tensor(handle: q!))
    }
}
