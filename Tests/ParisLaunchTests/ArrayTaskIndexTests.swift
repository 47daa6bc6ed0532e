import Foundation
import ParisRun
import XCTest

/// The expert index of an array task: --expert, then Slurm's, then Kubernetes' variable.
final class ArrayTaskIndexTests: XCTestCase {
    func testExplicitThenSlurmThenKubernetes() throws {
        let env = ["SLURM_ARRAY_TASK_ID": "3", "JOB_COMPLETION_INDEX": "5"]
        XCTAssertTrue(try ArrayTaskIndex.expert(explicit: 1, environment: env) == (1, "--expert"))
        XCTAssertTrue(try ArrayTaskIndex.expert(explicit: nil, environment: env) == (3, "SLURM_ARRAY_TASK_ID"))
        XCTAssertTrue(try ArrayTaskIndex.expert(explicit: nil, environment: ["JOB_COMPLETION_INDEX": " 5 "])
                      == (5, "JOB_COMPLETION_INDEX"))
        XCTAssertTrue(try ArrayTaskIndex.expert(explicit: nil, environment: ["SLURM_ARRAY_TASK_ID": "",
                                                                             "JOB_COMPLETION_INDEX": "2"])
                      == (2, "JOB_COMPLETION_INDEX"))
    }

    func testMissingOrMalformedIndexIsAClearError() {
        XCTAssertThrowsError(try ArrayTaskIndex.expert(explicit: nil, environment: [:])) {
            XCTAssertTrue("\($0)".contains("pass --expert K"), "\($0)")
        }
        XCTAssertThrowsError(try ArrayTaskIndex.expert(explicit: nil, environment: ["SLURM_ARRAY_TASK_ID": "x1"])) {
            XCTAssertTrue("\($0)".contains("SLURM_ARRAY_TASK_ID is 'x1'"), "\($0)")
        }
    }
}
