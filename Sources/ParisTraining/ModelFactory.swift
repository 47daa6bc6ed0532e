import Foundation
import ParisRun
import ParisData
import ParisModels
import Torch

/// Model configurations for a run: a named preset with the data-dependent sizes taken from the shard, so one preset
/// name (`paris-T/4`) fits 28×28 gray Fashion-MNIST and 32×32 RGB emoji alike.
public enum ModelFactory {
    /// The expert config of preset `preset` for data shaped like `shard`: `input_size`, `in_channels`,
    /// `text_length` and `text_dim` come from `shard.json`. A preset whose null text is `empty_prompt` (the
    /// released Paris: the text encoder's embedding of "") is trained with a learned null text instead, because a
    /// shard holds caption embeddings only, not the encoder itself.
    public static func expertConfig(preset: String, shard: ShardInfo) throws -> ParisExpertConfig {
        var c: ParisExpertConfig
        do { c = try ParisExpertConfig.preset(named: preset) } catch { throw RunError("\(error)") }
        c.inputSize = shard.imageSize
        c.inChannels = shard.channels
        c.textLength = shard.textLength
        c.textDim = shard.textDim
        if c.nullText == .emptyPrompt { c.nullText = .learned }
        do { try c.validate() } catch {
            throw RunError("preset \(preset) does not fit shard \(shard.cluster) (\(shard.channels)×\(shard.imageSize)"
                + "×\(shard.imageSize) images, text \(shard.textLength)×\(shard.textDim)): \(error)")
        }
        return c
    }

    /// The router config of preset `preset` for K = `numExperts` clusters of data shaped like `shardInfo`
    /// (`input_size` and `in_channels` from `shard.json`, and for a text-conditioned preset `text_dim`: the width of
    /// the shards' caption token states, which the router pools).
    public static func routerConfig(preset: String, numExperts: Int, shardInfo: ShardInfo) throws -> RouterConfig {
        var c: RouterConfig
        do { c = try RouterConfig.preset(named: preset) } catch { throw RunError("\(error)") }
        c.inputSize = shardInfo.imageSize
        c.inChannels = shardInfo.channels
        c.numExperts = numExperts
        if c.textDim != nil { c.textDim = shardInfo.textDim }
        do { try c.validate() } catch {
            throw RunError("preset \(preset) does not fit the data (\(shardInfo.channels)×\(shardInfo.imageSize)"
                + "×\(shardInfo.imageSize) images, K = \(numExperts)): \(error)")
        }
        return c
    }

    /// The device of a job, parsed from its `device` setting, with a clear error when CUDA is asked for but
    /// absent.
    public static func device(_ setting: String, job: String) throws -> Device {
        let device: Device
        do { device = try Device(parsing: setting) } catch { throw RunError("\(job): device '\(setting)': \(error)") }
        if case .cuda(let n) = device {
            guard Runtime.cudaIsAvailable else {
                throw RunError("\(job): device is \(setting) but CUDA is not available here"
                    + (Runtime.cudaLoadError.map { " (\($0))" } ?? "") + "; set \"device\": \"cpu\" in run.json")
            }
            guard n < Runtime.cudaDeviceCount else {
                throw RunError("\(job): device \(setting) does not exist (\(Runtime.cudaDeviceCount) CUDA devices)")
            }
        }
        return device
    }
}
