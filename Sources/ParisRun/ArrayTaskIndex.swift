import Foundation

/// Which expert a job trains when a scheduler runs the K experts as one array: the task index that Slurm
/// (`sbatch --array`, `SLURM_ARRAY_TASK_ID`) or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`) gives each task.
/// The one place those variables are named: `paris train expert` reads them through `expert(explicit:environment:)`
/// and the Slurm batch scripts pass `slurm` on.
public enum ArrayTaskIndex {
    /// Slurm's array task index, as a shell expansion in batch scripts.
    public static let slurm = "SLURM_ARRAY_TASK_ID"
    /// A Kubernetes Indexed Job's completion index.
    public static let kubernetes = "JOB_COMPLETION_INDEX"
    /// The variables tried in order when no index is given.
    public static let variables = [slurm, kubernetes]

    /// The expert index: `explicit` when given, else the first of `variables` set in `environment`; with where it
    /// came from (`--expert` or the variable's name). Throws when none is set or the value is not an integer.
    public static func expert(explicit: Int?, environment: [String: String]) throws -> (index: Int, source: String) {
        if let explicit { return (explicit, "--expert") }
        for name in variables {
            guard let raw = environment[name], !raw.isEmpty else { continue }
            guard let k = Int(raw.trimmingCharacters(in: .whitespaces)) else {
                throw RunError("\(name) is '\(raw)', not an expert index")
            }
            return (k, name)
        }
        throw RunError("no expert index: pass --expert K, or run as a Slurm array task (\(slurm)) or a Kubernetes "
            + "Indexed Job (\(kubernetes))")
    }
}
