import Foundation
import ParisRun
import ParisLaunch
import ParisTraining
import XCTest

/// Helpers shared by the launch tests: throwaway run folders and the stand-in `paris` script.
enum LaunchFixtures {
    /// The repository root (this file is Tests/ParisLaunchTests/LaunchTestSupport.swift).
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A fresh empty folder under /tmp.
    static func tempFolder(_ prefix: String) throws -> URL {
        let url = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A run.json for K experts of the cpu-tiny preset with `steps` each; `resources(k)` gives expert k's.
    static func makeRun(in folder: URL, k: Int, steps: Int = 5, routerSteps: Int = 3,
                        resources: (Int) -> JobResources = { _ in JobResources() }) throws -> RunLayout {
        var config = RunPreset.cpuTiny.config(name: "launch-test", dataset: "data", numExperts: k)
        for i in 0..<k {
            config.experts[i].steps = steps
            config.experts[i].resources = resources(i)
        }
        config.router.steps = routerSteps
        config.monolith = nil
        let layout = RunLayout(folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try config.write(to: layout.runJSON)
        return layout
    }

    /// Writes the stand-in for `paris` used where the real trainers are not the point: `train expert|router`
    /// and `eval` with `--run R [--expert K]`. It counts steps (`delay` seconds each) in `<job>/progress`,
    /// resumes from there, stops on SIGTERM with status 143, writes `config.json` with the run's steps, an
    /// empty weights file and a finished `status.json` (as every trainer does) at the end, fails with status 3 while `<run>/fail_<what><k>` exists, and appends
    /// `<what><k> start|end <time>` lines to `<run>/trace.log`. The router refuses to run before every expert
    /// finished (status 4).
    static func writeStandIn(to url: URL, expertSteps: Int, routerSteps: Int, numExperts: Int,
                             delay: Double = 0.05) throws {
        let script = """
            #!/bin/bash
            set -u
            cmd="$1"; shift
            if [ "$cmd" = train ]; then what="$1"; shift; else what="$cmd"; fi
            run=""; k=""
            while [ $# -gt 0 ]; do
              case "$1" in --run) run="$2"; shift 2;; --expert) k="$2"; shift 2;; *) shift;; esac
            done
            [ "$what" = expert ] && [ -z "$k" ] && k="${SLURM_ARRAY_TASK_ID:-${JOB_COMPLETION_INDEX:-}}"
            trace() { echo "$what$k $1 $(date +%s.%N)" >> "$run/trace.log"; }
            trace start
            case "$what" in
              expert) out="$run/expert_$k"; total=\(expertSteps) ;;
              router) out="$run/router"; total=\(routerSteps)
                for i in $(seq 0 \(numExperts - 1)); do
                  grep -q '"finished"' "$run/expert_$i/status.json" 2>/dev/null \\
                    || { echo "router: expert $i has not finished" >&2; exit 4; }
                done ;;
              eval) mkdir -p "$run/eval"; echo "# report" > "$run/eval/report.md"; trace end; exit 0 ;;
              *) echo "stand-in: unknown command $cmd $what" >&2; exit 2 ;;
            esac
            if [ -e "$run/fail_$what$k" ]; then echo "stand-in: $what $k fails: $(cat "$run/fail_$what$k")" >&2; exit 3; fi
            mkdir -p "$out"
            step=$(cat "$out/progress" 2>/dev/null || echo 0)
            echo "stand-in $what $k: resuming at step $step of $total"
            trap 'echo "stand-in $what $k: stopped at step $step"; exit 143' TERM
            while [ "$step" -lt "$total" ]; do
              sleep \(delay)
              step=$((step + 1))
              echo "$step" > "$out/progress"
            done
            echo "{\\"steps\\": $total}" > "$out/config.json"
            : > "$out/diffusion_pytorch_model.safetensors"
            : > "$out/model.safetensors"
            echo "{\\"state\\": \\"finished\\", \\"step\\": $total, \\"total_steps\\": $total, \\"updated_at\\": $(date +%s)}" > "$out/status.json"
            echo "stand-in $what $k: finished"
            trace end
            """
        try script.write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
    }

    /// Trace lines of `<run>/trace.log`: (job, event, time).
    static func trace(_ run: RunLayout) -> [(job: String, event: String, time: Double)] {
        let text = (try? String(contentsOf: run.root.appendingPathComponent("trace.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 3, let t = Double(f[2]) else { return nil }
            return (String(f[0]), String(f[1]), t)
        }
    }

    /// The time of `job`'s `event` (the last one when it happened more than once).
    static func time(_ trace: [(job: String, event: String, time: Double)], _ job: String, _ event: String) -> Double? {
        trace.last { $0.job == job && $0.event == event }?.time
    }
}

/// A scheduler command runner that records the commands and answers from a script of canned results.
final class FakeRunner: CommandRunning, @unchecked Sendable {
    private let lock = NSLock()
    private(set) var commands: [[String]] = []
    private let answer: ([String]) -> CommandResult

    init(_ answer: @escaping ([String]) -> CommandResult) { self.answer = answer }

    func run(_ argv: [String]) throws -> CommandResult {
        lock.lock()
        commands.append(argv)
        lock.unlock()
        return answer(argv)
    }
}
