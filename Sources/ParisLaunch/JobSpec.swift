import Foundation
import ParisRun

/// Which stage of a run a job belongs to. Experts run first (independently), the router after all of them,
/// evaluation last.
public enum JobRole: String, Codable, Sendable, CaseIterable {
    case experts, router, eval
}

/// One job for a scheduler: what to run, with which resources, after which other jobs. An array job runs the
/// same command once per index, with `indexArgument` and the index appended (Slurm: `$SLURM_ARRAY_TASK_ID`).
public struct JobSpec: Sendable, Equatable {
    /// Unique within a plan: `experts` (or `experts-g0`, `experts-g1`… when experts need different resources),
    /// `router`, `eval`.
    public var name: String
    public var role: JobRole
    /// The command without the array index, starting with the paris binary.
    public var argv: [String]
    /// Passed with the index to each array task (`--expert`); nil for a single job.
    public var indexArgument: String?
    public var resources: JobResources
    /// Expert indices of an array job; nil for a single job.
    public var arrayIndices: [Int]?
    /// Names of the jobs in the same plan that must all succeed first.
    public var dependencies: [String]

    public init(name: String, role: JobRole, argv: [String], indexArgument: String? = nil,
                resources: JobResources = .init(), arrayIndices: [Int]? = nil, dependencies: [String] = []) {
        self.name = name
        self.role = role
        self.argv = argv
        self.indexArgument = indexArgument
        self.resources = resources
        self.arrayIndices = arrayIndices
        self.dependencies = dependencies
    }

    /// The command of array task `index` (or of the single job when `index` is nil).
    public func argv(index: Int?) -> [String] {
        guard let index, let flag = indexArgument else { return argv }
        return argv + [flag, String(index)]
    }
}

/// What to launch for one run: the jobs in submission order (experts, router, eval), and what was left out
/// because it has already finished.
public struct LaunchPlan: Sendable, Equatable {
    public var run: RunLayout
    public var runName: String
    public var jobs: [JobSpec]
    /// Human-readable notes on the stages left out ("expert 0: finished (20/20 steps)").
    public var skipped: [String]

    public init(run: RunLayout, runName: String, jobs: [JobSpec], skipped: [String]) {
        self.run = run
        self.runName = runName
        self.jobs = jobs
        self.skipped = skipped
    }

    /// The job called `name`.
    public func job(_ name: String) -> JobSpec? { jobs.first { $0.name == name } }

    /// Plans the run: one array job per group of experts that ask for identical resources (a Slurm array has
    /// one resource request), the router after every expert job, evaluation after the router. Stages that
    /// `progress` reports finished are left out; a dependency on a left-out stage is simply dropped.
    ///
    /// - Parameters:
    ///   - paris: the paris binary the jobs run (an absolute path, written into the batch scripts).
    ///   - includeEval: plan `paris eval --run R` last.
    ///   - only: expert indices to consider (nil: all); a retry of one expert alone.
    public static func make(run: RunLayout, config: RunConfig, paris: String, includeEval: Bool = true,
                            progress: RunProgress, only: Set<Int>? = nil) throws -> LaunchPlan {
        if let only {
            for k in only.sorted() where !(0..<config.numExperts).contains(k) {
                throw LaunchError("expert \(k) is out of range: this run has \(config.numExperts) experts "
                    + "(0...\(config.numExperts - 1))")
            }
        }
        let root = run.root.path
        // A finished job whose model was trained on other shards than the partition holds now is not done: it is
        // refused here rather than skipped, since resuming it would be refused too (its checkpoint is for the old
        // shards) and retraining discards its work, which only the user may decide.
        let stale = progress.jobs.filter { $0.finished }.compactMap(\.stale)
        if !stale.isEmpty {
            throw LaunchError("cannot resume: " + stale.joined(separator: "; ") + ". Retrain "
                + (stale.count == 1 ? "it" : "them") + " with the command given, then launch again")
        }
        var skipped: [String] = []
        var pending: [Int] = []
        for k in 0..<config.numExperts {
            let p = progress.experts[k]
            if p.finished {
                skipped.append("expert \(k): finished (\(p.describe))")
            } else if let only, !only.contains(k) {
                skipped.append("expert \(k): not selected (\(p.describe))")
            } else {
                pending.append(k)
            }
        }
        // Group experts by identical resources, in order of their first index.
        var groups: [(JobResources, [Int])] = []
        for k in pending {
            let r = config.experts[k].resources
            if let i = groups.firstIndex(where: { $0.0 == r }) {
                groups[i].1.append(k)
            } else {
                groups.append((r, [k]))
            }
        }
        var jobs: [JobSpec] = []
        for (i, group) in groups.enumerated() {
            jobs.append(JobSpec(name: groups.count == 1 ? "experts" : "experts-g\(i)", role: .experts,
                                argv: [paris, "train", "expert", "--run", root], indexArgument: "--expert",
                                resources: group.0, arrayIndices: group.1))
        }
        let expertJobs = jobs.map(\.name)
        let waiting = (0..<config.numExperts).filter { !progress.experts[$0].finished && !pending.contains($0) }
        if !waiting.isEmpty {
            // A retry of some experts alone: the router needs every expert, so it waits for a later launch.
            let list = waiting.map(String.init).joined(separator: ", ")
            skipped.append("router: not planned, expert \(list) has not finished and is not selected")
            if includeEval { skipped.append("eval: not planned, it needs the router") }
            return LaunchPlan(run: run, runName: config.name, jobs: jobs, skipped: skipped)
        }
        if progress.router.finished && pending.isEmpty {
            skipped.append("router: finished (\(progress.router.describe))")
        } else {
            jobs.append(JobSpec(name: "router", role: .router, argv: [paris, "train", "router", "--run", root],
                                resources: config.router.resources, dependencies: expertJobs))
        }
        if includeEval {
            if progress.evalFinished && jobs.isEmpty {
                skipped.append("eval: finished")
            } else {
                jobs.append(JobSpec(name: "eval", role: .eval, argv: [paris, "eval", "--run", root],
                                    resources: config.router.resources, dependencies: jobs.map(\.name)))
            }
        }
        return LaunchPlan(run: run, runName: config.name, jobs: jobs, skipped: skipped)
    }
}

/// Why a launch, a status query or a cancel failed.
public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
