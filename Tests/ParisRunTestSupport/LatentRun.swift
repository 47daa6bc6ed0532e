import Foundation
import ParisData
import ParisDiffusion
import ParisModels
import ParisRun
import Torch
import XCTest

/// Tiny latent runs for the tests of every stage above ParisRun: an autoencoder folder in diffusers' layout, the
/// partition encoded with it (`paris encode`), run.json pointed at the latent partition, and untrained latent
/// experts and router published as the trainers would. The trained chain (`paris train autoencoder`, experts and
/// router trained on the latents) is LatentRunTests', which builds on `encode`.
public enum LatentRun {
    /// The latent partition's folder name in these runs.
    public static let partition = "latent"

    /// An untrained vae-tiny (f = 2, 4 latent channels; seed `seed`) in `folder`: config.json (`sample_size`
    /// `sampleSize`, latents ×`scalingFactor` after `shiftFactor`) + diffusion_pytorch_model.safetensors. A scale
    /// other than 0.18215 stands for one that `paris train autoencoder` measured. Returns its `LatentSpace`.
    @discardableResult
    public static func autoencoder(_ folder: URL, sampleSize: Int = 8, scalingFactor: Double = 0.18215,
                                   shiftFactor: Double? = nil, seed: UInt64 = 0) throws -> LatentSpace {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var c = AutoencoderKLConfig.tiny
        (c.sampleSize, c.scalingFactor, c.shiftFactor) = (sampleSize, scalingFactor, shiftFactor)
        Runtime.manualSeed(seed)
        try JSONEncoder().encode(c).write(to: folder.appendingPathComponent(LatentEncoding.configName))
        try SafeTensors.save(try AutoencoderKL(c).stateDict(), to: folder.appendingPathComponent(LatentEncoding.weightsName))
        return try LatentEncoding.space(of: folder)
    }

    /// `paris encode`: the run's pixel partition (`<run>/partition`) into `<run>/latent` with the autoencoder in
    /// `autoencoder`, and run.json's `partition` set to it. Returns the latent manifest.
    @discardableResult
    public static func encode(run: URL, autoencoder: URL) throws -> PartitionManifest {
        let manifest = try LatentEncoding.encode(partition: run.appendingPathComponent("partition"),
                                                 output: run.appendingPathComponent(partition), autoencoder: autoencoder)
        let layout = RunLayout(run)
        var config = try layout.config()
        config.partition = partition
        try config.write(to: layout.runJSON)
        return manifest
    }

    /// `ColourPartitions.run` (8-px squares, K = 2) encoded by an untrained vae-tiny (`<root>/vae`) into 4×4×4
    /// latents, with untrained latent experts (`cpuTiny` at 4×4×4, the fake caption tokens: 5 of width 8; the
    /// output layer given random weights so that samples differ) and router (`cpuTiny`, K = 2). Sample it with
    /// `ColourPartitions.encoder`. Returns the run and the autoencoder's folder.
    public static func untrained(in root: URL, scalingFactor: Double = 0.18215) throws -> (run: URL, vae: URL) {
        let run = try ColourPartitions.run(in: root)
        let vae = root.appendingPathComponent("vae")
        let space = try autoencoder(vae, scalingFactor: scalingFactor)
        try encode(run: run, autoencoder: vae)
        let layout = RunLayout(run)
        var ec = ParisExpertConfig.cpuTiny
        (ec.inputSize, ec.inChannels, ec.textLength, ec.textDim) = (4, 4, 5, 8)
        for k in 0..<2 {
            let model = try ParisExpert(ec)
            try withNoGrad { try Init.normal_(model.finalLayer.linear.weight, std: 0.05) }
            try ExpertCheckpoint(model: ec, objective: .flowMatchingUniform, cluster: k, textEncoder: "fake-tokens",
                                 steps: 0, latents: space)
                .write(weights: try model.stateDict(), to: layout.expert(k))
        }
        var rc = RouterConfig.cpuTiny
        (rc.inputSize, rc.inChannels, rc.numExperts) = (4, 4, 2)
        try RouterCheckpoint.write(config: rc, weights: try Router(rc).stateDict(), steps: 0, to: layout.router)
        return (run, vae)
    }
}
