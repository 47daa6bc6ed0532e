import Foundation
import FuzzSupport
import ParisDiffusion
import ParisModels
import ParisRun
import Torch

/// An expert folder and a router folder, each holding zero weights of the `cpuTiny` preset, so that a fuzzed
/// config.json goes through the whole `checkWeights(in:)` path (decoded, validated against `ModelLimits`, its state
/// dict compared with the weights' header) as `paris sample` and `paris eval` check a checkpoint before building it.
let folders: (expert: URL, router: URL) = {
    func write(_ entries: [StateDictEntry], to url: URL) {
        do {
            let tensors = try Dictionary(entries.map { ($0.name, try Tensor.zeros($0.shape)) },
                                         uniquingKeysWith: { a, _ in a })
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            try SafeTensors.save(tensors, to: url)
        } catch { fatalError("fuzz harness: cannot write \(url.path): \(error)") }
    }
    let expert = FuzzInput.folder.appendingPathComponent("expert_0")
    let router = FuzzInput.folder.appendingPathComponent("router")
    write(ParisExpertConfig.cpuTiny.stateDictEntries, to: expert.appendingPathComponent(ExpertCheckpoint.weightsName))
    write(RouterConfig.cpuTiny.stateDictEntries, to: router.appendingPathComponent(RouterCheckpoint.weightsName))
    return (expert, router)
}()

/// libFuzzer entry: the bytes are a JSON file given to every decoder of a user-editable configuration: `run.json`
/// (`RunConfig.load`: strict keys, `TrainJobConfig`, validation), an expert's and the router's `config.json`
/// (`ExpertCheckpoint.checkWeights`, `RouterCheckpoint.checkWeights`: `ParisExpertConfig`, `RouterConfig`,
/// `ModelLimits`, state-dict check), a DiT `config.json` (`DiTConfig` with `validate` and `parameterCount`, what
/// `DiT.load` runs before building) and a BERT `config.json` (`MiniLMConfig.load`). A thrown error is fine; a trap,
/// a crash, a hang or running out of memory is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput.bytes(data, size)
    _ = try? RunConfig.load(FuzzInput.file(bytes, named: "run.json"))
    for folder in [folders.expert, folders.router] {
        let url = folder.appendingPathComponent("config.json")
        guard FileManager.default.createFile(atPath: url.path, contents: Data(bytes)) else {
            fatalError("fuzz harness: cannot write \(url.path)")
        }
    }
    if let info = try? ExpertCheckpoint.checkWeights(in: folders.expert) { _ = info.model.parameterCount }
    if let config = try? RouterCheckpoint.checkWeights(in: folders.router) { _ = config.parameterCount }
    if let dit = try? JSONDecoder().decode(DiTConfig.self, from: Data(bytes)), (try? dit.validate()) != nil {
        _ = dit.parameterCount
    }
    _ = try? MiniLMConfig.load(FuzzInput.file(bytes, named: "bert-config.json"))
    return 0
}
