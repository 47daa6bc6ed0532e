import Foundation
@testable import ParisData
import Torch
import XCTest

final class KMeansTests: XCTestCase {
    /// `perBlob` points around each of `blobs` centres 10·e_i in `dim` dimensions, noise σ = 0.3, in blob order.
    func blobs(_ blobs: Int, perBlob: Int, dim: Int = 8, seed: UInt64 = 1) throws -> (Tensor, [String]) {
        Runtime.manualSeed(seed)
        var rows: [Tensor] = []
        for b in 0..<blobs {
            let centre = try Tensor.zeros([dim])
            try centre.select(0, b).fill_(10)
            rows.append(try centre.unsqueeze(0) + Tensor.randn([perBlob, dim]) * 0.3)
        }
        let labels = (0..<blobs).flatMap { b in Array(repeating: "blob\(b)", count: perBlob) }
        return (try Tensor.cat(rows), labels)
    }

    func ints(_ t: Tensor) throws -> [Int] { try t.to(dtype: .int64).toArray(as: Int64.self).map { Int($0) } }

    func testBlobsAreRecoveredWithBothMetrics() throws {
        let (x, labels) = try blobs(4, perBlob: 50)
        for metric in KMeans.Metric.allCases {
            let r = try KMeans.fit(x, config: .init(clusters: 4, metric: metric, seed: 7))
            XCTAssertEqual(try ClusterMetrics.purity(assignments: try ints(r.assignments), labels: labels), 1.0)
            XCTAssertEqual(try ClusterMetrics.nmi(assignments: try ints(r.assignments), labels: labels), 1.0,
                           accuracy: 1e-12)
            XCTAssertEqual(r.sizes, [50, 50, 50, 50])
            XCTAssertTrue(r.converged)
            XCTAssertEqual(r.centroids.shape, [4, 8])
        }
    }

    func testSameSeedGivesIdenticalResult() throws {
        let (x, _) = try blobs(5, perBlob: 30)
        Runtime.manualSeed(123)
        let a = try KMeans.fit(x, config: .init(clusters: 7, seed: 42))
        Runtime.manualSeed(999)  // libtorch's generator plays no part
        let b = try KMeans.fit(x, config: .init(clusters: 7, seed: 42))
        XCTAssertTrue(try a.assignments.equal(b.assignments))
        XCTAssertTrue(try a.centroids.equal(b.centroids))
        XCTAssertEqual(a.inertia, b.inertia)
        let h1 = try HierarchicalKMeans.fit(x, config: .init(clusters: 5, fineClusters: 15, seed: 3))
        let h2 = try HierarchicalKMeans.fit(x, config: .init(clusters: 5, fineClusters: 15, seed: 3))
        XCTAssertTrue(try h1.assignments.equal(h2.assignments))
    }

    func testHierarchicalRecoversBlobsThroughFineClusters() throws {
        let (x, labels) = try blobs(4, perBlob: 60)
        let r = try HierarchicalKMeans.fit(x, config: .init(clusters: 4, fineClusters: 24, seed: 11))
        XCTAssertNotNil(r.fine)
        XCTAssertEqual(r.fine?.centroids.shape, [24, 8])
        XCTAssertEqual(r.fineToCoarse?.shape, [24])
        XCTAssertEqual(r.sizes.sorted(), [60, 60, 60, 60])
        XCTAssertEqual(try ClusterMetrics.purity(assignments: try ints(r.assignments), labels: labels), 1.0)
        // Each point's coarse cluster is its fine centroid's group.
        let viaFine = try r.fineToCoarse!.indexSelect(dim: 0, index: r.fine!.assignments)
        XCTAssertTrue(try viaFine.equal(r.assignments))
    }

    func testSmallDataRunsOneStage() throws {
        let (x, _) = try blobs(2, perBlob: 5)
        let r = try HierarchicalKMeans.fit(x, config: .init(clusters: 2, seed: 0))
        XCTAssertNil(r.fine)
        XCTAssertEqual(r.sizes, [5, 5].sorted())
        XCTAssertEqual(HierarchicalKMeans.defaultFineClusters(count: 100_000, clusters: 8), 1024)
        XCTAssertEqual(HierarchicalKMeans.defaultFineClusters(count: 400, clusters: 8), 100)
    }

    func testEmptyClusterIsReseededAtTheFarthestPoint() throws {
        // Three points near 0 and one far point; centroid 1 sits where no point is.
        let x = try Tensor([0, 0, 0.1, 0, 0, 0.1, 5, 5] as [Float], shape: [4, 2])
        let c = try Tensor([0, 0, -100, -100] as [Float], shape: [2, 2])
        let step = try KMeans.lloydStep(x, centroids: c, weights: nil, metric: .euclidean)
        XCTAssertEqual(step.weightedSizes, [4, 0])
        let moved = try KMeans.reseed(step.centroids, empty: [1], data: x, distances: step.distances,
                                      weights: try Tensor.ones([4]))
        XCTAssertEqual(try moved.select(0, 1).toArray(as: Float.self), [5, 5])
    }

    func testWeightsPullTheCentroid() throws {
        let x = try Tensor([0, 0, 1, 0] as [Float], shape: [2, 2])
        let r = try KMeans.fit(x, config: .init(clusters: 1, metric: .euclidean), weights: try Tensor([3, 1] as [Float]))
        let c = try r.centroids.toArray(as: Float.self)
        XCTAssertEqual(c[0], 0.25, accuracy: 1e-6)
        XCTAssertEqual(c[1], 0, accuracy: 1e-6)
    }

    func testBadInputsHaveClearErrors() throws {
        let (x, _) = try blobs(2, perBlob: 3)
        assertThrows({ try KMeans.fit(x, config: .init(clusters: 7)) }, contains: "cannot make 7 clusters from 6")
        assertThrows({ try KMeans.fit(x, config: .init(clusters: 0)) }, contains: "at least 1 cluster")
        assertThrows({ try HierarchicalKMeans.fit(x, config: .init(clusters: 0)) }, contains: "at least 1")
        assertThrows({ try HierarchicalKMeans.fit(x, config: .init(clusters: 9)) }, contains: "lower K")
        let same = try Tensor.ones([6, 3])
        assertThrows({ try KMeans.fit(same, config: .init(clusters: 2, metric: .euclidean)) },
                     contains: "only 1 distinct points")
        assertThrows({ try KMeans.fit(try Tensor.ones([4]), config: .init(clusters: 1)) }, contains: "[N, D]")
    }

    func testMetricsMatchScikitLearn() throws {
        let fx = try fixture("partition_metrics")
        for name in ["random", "noisy", "renamed", "uneven"] {
            let a = try ints(try tensor(fx, "\(name).assignments"))
            let l = try ints(try tensor(fx, "\(name).labels")).map(String.init)
            XCTAssertEqual(try ClusterMetrics.purity(assignments: a, labels: l),
                           try tensor(fx, "\(name).purity").item(), accuracy: 1e-12, name)
            XCTAssertEqual(try ClusterMetrics.nmi(assignments: a, labels: l),
                           try tensor(fx, "\(name).nmi").item(), accuracy: 1e-12, name)
        }
        XCTAssertEqual(try ClusterMetrics.nmi(assignments: [0, 0, 0], labels: ["a", "a", "a"]), 1)
        XCTAssertEqual(try ClusterMetrics.nmi(assignments: [0, 0, 1, 1], labels: ["a", "b", "a", "b"]), 0)
        assertThrows({ try ClusterMetrics.purity(assignments: [0], labels: []) }, contains: "1 cluster assignments")
    }

    func testRandomSplitIsBalancedAndSeeded() throws {
        let a = try RandomSplit.balanced(count: 103, clusters: 4, seed: 5)
        XCTAssertEqual((0..<4).map { k in a.filter { $0 == k }.count }, [26, 26, 26, 25])
        XCTAssertEqual(a, try RandomSplit.balanced(count: 103, clusters: 4, seed: 5))
        XCTAssertNotEqual(a, try RandomSplit.balanced(count: 103, clusters: 4, seed: 6))
        let sized = try RandomSplit.withSizes([10, 0, 5], seed: 1)
        XCTAssertEqual((0..<3).map { k in sized.filter { $0 == k }.count }, [10, 0, 5])
        assertThrows({ try RandomSplit.balanced(count: 3, clusters: 4, seed: 0) }, contains: "lower K")
    }

    func testLabelSplitOneClusterPerLabelOrGreedyGroups() throws {
        let exact = try LabelSplit.split(labels: ["2", "10", "2", "1"], clusters: 3)
        XCTAssertEqual(exact.groups, [["1"], ["2"], ["10"]])  // numeric order
        XCTAssertEqual(exact.assignments, [1, 2, 1, 0])
        // LPT: a(5)→0, b(4)→1, c(3)→1 (load 4 < 5), d(2)→0 (5 < 7), e(2)→0 (7 = 7, lowest index wins).
        let labels = Array(repeating: "a", count: 5) + Array(repeating: "b", count: 4) + Array(repeating: "c", count: 3)
            + Array(repeating: "d", count: 2) + Array(repeating: "e", count: 2)
        let grouped = try LabelSplit.split(labels: labels, clusters: 2)
        XCTAssertEqual(grouped.groups, [["a", "d", "e"], ["b", "c"]])
        assertThrows({ try LabelSplit.split(labels: ["a", "b"], clusters: 3) }, contains: "2 distinct labels")
        assertThrows({ try LabelSplit.split(labels: ["a", nil], clusters: 1) }, contains: "image 1 has no label")
    }
}
