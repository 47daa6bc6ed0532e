import Foundation
import ParisData
import ParisModels
import ParisRun
import Torch

/// A latent run's autoencoder in the export: which folder, checked against what the experts were trained on.
struct VAESource {
    var folder: URL
    var config: AutoencoderKLConfig
}

extension DiffusersExport {
    /// The VAE of the export, checked (nothing is written): nil for pixel-space experts. Latent experts (they record
    /// their `LatentSpace`) take `vae`, else the partition's `autoencoder/`, which must be the autoencoder their
    /// latents came from (weights hash, channels, scale, shift, factor, resolution), and all experts must record
    /// the same one. Experts that record none but take other than 1 or 3 channels (written by hand) need `vae`, whose
    /// `latent_channels` must be theirs.
    func checkVAE(experts: [ExpertCheckpoint], partition: URL) throws -> VAESource? {
        let channels = experts[0].model.inChannels
        if let space = experts[0].latents {
            for (k, e) in experts.enumerated() where e.latents != space {
                throw EnsembleError("expert \(k) was trained on "
                    + (e.latents.map { "latents of \($0.summary)" } ?? "pixels")
                    + ", expert 0 on latents of \(space.summary); the export needs experts on the same data")
            }
            let folder = vae ?? partition.appendingPathComponent(LatentEncoding.autoencoderFolder)
            let found: LatentSpace
            do { found = try LatentEncoding.space(of: folder) } catch {
                throw EnsembleError("\(error); the experts were trained on latents of \(space.summary): give that "
                    + "autoencoder's folder with --vae")
            }
            if let d = space.difference(from: found) {
                throw EnsembleError("\(folder.path) is not the autoencoder the experts' latents were made with: \(d)")
            }
            return VAESource(folder: folder, config: try loadConfig(folder))
        }
        if let e = experts.firstIndex(where: { $0.latents != nil }) {
            throw EnsembleError("expert \(e) was trained on latents, expert 0 on pixels; the export needs experts on "
                + "the same data")
        }
        guard let vae else {
            guard [1, 3].contains(channels) else {
                throw EnsembleError("the experts denoise \(channels)-channel inputs (latents?): give the run's VAE "
                    + "folder (--vae) to export a latent run")
            }
            return nil
        }
        let config = try loadConfig(vae)
        guard config.latentChannels == channels else {
            throw EnsembleError("\(vae.path): latent_channels \(config.latentChannels), but the experts denoise "
                + "\(channels) channels")
        }
        return VAESource(folder: vae, config: config)
    }

    /// The config of the AutoencoderKL folder `folder`, whose two files must exist.
    func loadConfig(_ folder: URL) throws -> AutoencoderKLConfig {
        for name in [LatentEncoding.configName, ParisRelease.vaeWeights] {
            guard FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path) else {
                throw EnsembleError("\(folder.appendingPathComponent(name).path): not found (a diffusers AutoencoderKL folder)")
            }
        }
        do { return try AutoencoderKLConfig.load(from: folder.appendingPathComponent(LatentEncoding.configName)) } catch {
            throw EnsembleError("\(error)")
        }
    }

    /// Writes `vae/` into `folder`. The released pipeline decodes `vae.decode(x / 0.18215)` with that constant, so a
    /// VAE whose latents have another scale or a shift (ours measure theirs: `paris train autoencoder`) is written
    /// rescaled to 0.18215 (`AutoencoderKL.rescaled`: folded into quant_conv and post_quant_conv, which decode the
    /// run's latents into the same images); one already at 0.18215 without a shift is copied byte for byte.
    func writeVAE(_ source: VAESource, into folder: URL, log: (String) -> Void) throws {
        let c = source.config, target = ParisRelease.latentScale
        let weights = source.folder.appendingPathComponent(ParisRelease.vaeWeights)
        if c.scalingFactor == target && c.shiftFactor == nil {
            for name in [LatentEncoding.configName, ParisRelease.vaeWeights] {
                try FileManager.default.copyItem(at: source.folder.appendingPathComponent(name),
                                                 to: folder.appendingPathComponent(name))
            }
            log("vae: copied from \(source.folder.path) (latents ×\(target))")
            return
        }
        let file: SafeTensorsFile
        do { file = try SafeTensors.load(weights) } catch { throw EnsembleError("\(error)") }
        let (config, rescaled) = try AutoencoderKL.rescaled(file.tensors, config: c, to: target)
        try config.save(to: folder.appendingPathComponent(LatentEncoding.configName))
        try SafeTensors.save(rescaled, to: folder.appendingPathComponent(ParisRelease.vaeWeights))
        log("vae: from \(source.folder.path), latents ×\(c.scalingFactor)"
            + (c.shiftFactor.map { " shift \($0)" } ?? "") + " rescaled to the release's ×\(target) "
            + "(folded into quant_conv and post_quant_conv)")
    }
}
