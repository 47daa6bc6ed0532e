import Foundation
import ParisModels
import Torch

/// The released Paris model (bageldotcom/paris on Hugging Face, arXiv 2510.03434) loaded in place from its folder:
///
/// ```
/// model_index.json                       DDMPipeline, num_experts K, the component classes
/// config.json                            (optional) image_size, num_channels, num_experts: checked when present
/// expert_<k>/config.json + diffusion_pytorch_model.safetensors     k < K: ParisExpert (adaLN-Single, cross-attn)
/// router/config.json + pytorch_model.safetensors                   Router (DiT-B + CLS token, no text)
/// vae/config.json + diffusion_pytorch_model.safetensors            diffusers AutoencoderKL (sd-vae-ft-mse)
/// text_encoder/config.json + model.safetensors                     transformers CLIPTextModel (ViT-L/14 text tower)
/// tokenizer/vocab.json + merges.txt (+ tokenizer_config.json)      transformers CLIPTokenizer
/// ```
///
/// The same layout written by `paris export diffusers` from one of our runs differs where the run does
/// (`ParisReleaseIndex`): `"vae": [null, null]` and no vae/ for pixel-space experts, a transformers `BertModel` +
/// `BertTokenizer` (vocab.txt) for all-MiniLM-L6-v2 (`ReleaseTextEncoder`), experts with `null_text: learned`, and
/// `"time_grid": "uniform"`.
///
/// Every component is loaded strictly: each expert's and the router's config is compared with its weights' header
/// (every tensor the config needs present with its shape, none extra) before anything is built, and the VAE and the
/// text encoder load with strict keys. Errors name the file and the key. The components must agree with each other:
/// expert inputs = router inputs = the VAE's latent channels, the experts' text width = the text encoder's width.
/// Inference is `generate` (ParisReleasePipeline.swift); the run-folder path (`RunMixture`) is not involved, as a
/// release has no run.json, partition or shards, and its experts have no objective recorded (they are flow matching).
public final class ParisRelease {
    /// The latent divisor before decoding: the release decodes `vae.decode(z / 0.18215)`, a constant (it is
    /// sd-vae-ft-mse's `scaling_factor`; a VAE config with another one is noted in `notes`, and this is still used).
    public static let latentScale = 0.18215
    /// Weight file names of the released layout.
    public static let expertWeights = "diffusion_pytorch_model.safetensors", routerWeights = "pytorch_model.safetensors"
    public static let vaeWeights = "diffusion_pytorch_model.safetensors", textWeights = "model.safetensors"

    public let folder: URL
    public let index: ParisReleaseIndex
    public let expertConfigs: [ParisExpertConfig]
    public let experts: [ParisExpert]
    public let router: Router
    /// nil for pixel-space experts (`"vae": [null, null]`): their output is the image.
    public let vae: AutoencoderKL?
    /// The text encoder with its tokenizer (CLIP for the release, BERT for an exported run of ours).
    public let text: ReleaseTextEncoder
    /// Things worth knowing that are not errors (ignored config keys, a VAE scaling factor other than 0.18215).
    public let notes: [String]

    /// Latent channels and height = width of what the experts denoise (4 and 32 for the release).
    public var latentChannels: Int { expertConfigs[0].inChannels }
    public var latentSize: Int { expertConfigs[0].inputSize }
    public var numExperts: Int { index.numExperts }

    init(folder: URL, index: ParisReleaseIndex, expertConfigs: [ParisExpertConfig], experts: [ParisExpert],
         router: Router, vae: AutoencoderKL?, text: ReleaseTextEncoder, notes: [String]) {
        self.folder = folder
        self.index = index
        self.expertConfigs = expertConfigs
        self.experts = experts
        self.router = router
        self.vae = vae
        self.text = text
        self.notes = notes
    }

    /// The component folder `name` of `folder`, which must exist.
    static func component(_ folder: URL, _ name: String) throws -> URL {
        let url = folder.appendingPathComponent(name)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
            throw EnsembleError("\(url.path): missing; a Paris release has \(name)/ beside \(ParisReleaseIndex.fileName)")
        }
        return url
    }

    /// A file of a component folder, which must exist.
    static func file(_ folder: URL, _ name: String, hint: String = "") throws -> URL {
        let url = folder.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw EnsembleError("\(url.path): not found" + (hint.isEmpty ? "" : "; \(hint)"))
        }
        return url
    }

    /// Loads the release in `folder` onto `device` (float32, eval mode). Every check runs before the first large
    /// allocation where it can: the index, then every config against its weights' header, then the weights.
    public static func load(from folder: URL, device: Device = .cpu,
                            log: (String) -> Void = { _ in }) throws -> ParisRelease {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw EnsembleError("\(folder.path): no such release folder")
        }
        let index = try ParisReleaseIndex.read(try file(folder, ParisReleaseIndex.fileName,
                                                        hint: "is this a Paris release folder (bageldotcom/paris)?"))
        let k = index.numExperts
        var notes: [String] = []

        // Tokenizer and text encoder: their sizes set the experts' text width and length.
        let tokDir = try component(folder, "tokenizer")
        let textDir = try component(folder, "text_encoder")
        var clip: (tokenizer: CLIPTokenizer, config: CLIPTextConfig, weights: URL)? = nil
        var bert: ReleaseTextEncoder.BertFiles? = nil
        let textWidth: Int, textLength: Int
        if index.textEncoder == ReleaseTextEncoder.bertClass {
            let files = try ReleaseTextEncoder.bertFiles(textDir: textDir, tokenizerDir: tokDir)
            bert = files
            textWidth = files.width
            textLength = files.length
        } else {
            let c = try loadCLIPFiles(textDir: textDir, tokenizerDir: tokDir)
            clip = c
            textWidth = c.config.hiddenSize
            textLength = c.tokenizer.maxLength
        }

        // Experts and router: configs checked against the weights' headers before anything is built.
        var configs: [ParisExpertConfig] = []
        for i in 0..<k {
            let dir = try component(folder, "expert_\(i)")
            let url = try file(dir, "config.json")
            let c = try ReleaseConfigs.expert(url, textDim: textWidth, textLength: textLength)
            try ReleaseConfigs.checkHeader(c.stateDictEntries, depth: c.depth, config: c, configURL: url,
                                           weights: dir.appendingPathComponent(expertWeights))
            if let first = configs.first, (c.inChannels, c.inputSize) != (first.inChannels, first.inputSize) {
                throw EnsembleError("\(url.path): expert_\(i) takes \(c.inChannels)×\(c.inputSize)² latents, but "
                    + "expert_0 takes \(first.inChannels)×\(first.inputSize)²; the mixture needs the same inputs")
            }
            if let note = try ReleaseConfigs.unread(url, known: ReleaseConfigs.expertKeys) { notes.append(note) }
            configs.append(c)
        }
        let routerDir = try component(folder, "router")
        let routerURL = try file(routerDir, "config.json")
        let routerConfig = try ReleaseConfigs.router(routerURL, numExperts: k)
        if let note = try ReleaseConfigs.unread(routerURL, known: ReleaseConfigs.routerKeys) { notes.append(note) }
        try ReleaseConfigs.checkHeader(routerConfig.stateDictEntries, depth: routerConfig.depth, config: routerConfig,
                                       configURL: routerURL, weights: routerDir.appendingPathComponent(routerWeights))
        let (channels, size) = (configs[0].inChannels, configs[0].inputSize)
        guard (routerConfig.inChannels, routerConfig.inputSize) == (channels, size) else {
            throw EnsembleError("\(routerURL.path): the router takes \(routerConfig.inChannels)×"
                + "\(routerConfig.inputSize)² latents, the experts \(channels)×\(size)²")
        }
        var vaePart: (dir: URL, config: AutoencoderKLConfig)? = nil
        if index.hasVAE {
            let vaeDir = try component(folder, "vae")
            let vaeConfigURL = try file(vaeDir, "config.json")
            let vaeConfig: AutoencoderKLConfig
            do { vaeConfig = try AutoencoderKLConfig.load(from: vaeConfigURL) } catch {
                throw EnsembleError("\(vaeConfigURL.path): \(error)")
            }
            guard vaeConfig.latentChannels == channels else {
                throw EnsembleError("\(vaeConfigURL.path): latent_channels is \(vaeConfig.latentChannels), but the "
                    + "experts denoise \(channels)-channel latents")
            }
            if vaeConfig.scalingFactor != latentScale {
                notes.append("\(vaeConfigURL.path): scaling_factor is \(vaeConfig.scalingFactor); the release divides "
                    + "latents by \(latentScale) before decoding, and so does this pipeline")
            }
            vaePart = (vaeDir, vaeConfig)
        } else {
            guard [1, 3].contains(channels) else {
                throw EnsembleError("\(folder.appendingPathComponent(ParisReleaseIndex.fileName).path): \"vae\" is "
                    + "[null, null] (pixel-space experts), but the experts take \(channels) channels, not 1 or 3")
            }
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("vae").path) {
                notes.append("\(folder.appendingPathComponent("vae").path): ignored (the index says \"vae\": [null, null])")
            }
        }
        try checkRootConfig(folder, numExperts: k, channels: channels, size: size)

        // Weights (strict keys, errors naming the file and key).
        var experts: [ParisExpert] = []
        for (i, c) in configs.enumerated() {
            let url = folder.appendingPathComponent("expert_\(i)").appendingPathComponent(expertWeights)
            experts.append(try loadStrict(ParisExpert(c, device: device), url, device: device))
            log("expert_\(i): \(c.hiddenSize) wide, \(c.depth) layers, \(c.parameterCount) parameters")
        }
        let router = try loadStrict(Router(routerConfig, device: device),
                                    routerDir.appendingPathComponent(routerWeights), device: device)
        log("router: \(routerConfig.hiddenSize) wide, \(routerConfig.depth) layers, K = \(k)")
        var vae: AutoencoderKL? = nil
        if let part = vaePart {
            do {
                vae = try AutoencoderKL.load(weights: try file(part.dir, vaeWeights), config: part.config, device: device)
            } catch let e as EnsembleError { throw e } catch { throw EnsembleError("\(error)") }
            log("vae: latent_channels \(part.config.latentChannels)")
        }
        let text: ReleaseTextEncoder
        if let bert {
            text = try ReleaseTextEncoder.loadBert(bert, device: device)
        } else {
            let c = clip!
            do { text = .clip(try CLIPTextModel.load(from: c.weights, config: c.config, device: device), c.tokenizer) }
            catch { throw EnsembleError("\(error)") }
        }
        log(text.describe)
        return ParisRelease(folder: folder, index: index, expertConfigs: configs, experts: experts, router: router,
                            vae: vae, text: text, notes: notes)
    }

    /// The CLIP tokenizer, the text config and the weights' file, checked against each other (nothing loaded).
    static func loadCLIPFiles(textDir: URL, tokenizerDir tokDir: URL) throws
        -> (tokenizer: CLIPTokenizer, config: CLIPTextConfig, weights: URL) {
        let tokenizer = try loadTokenizer(tokDir)
        let textConfigURL = try file(textDir, "config.json")
        let textConfig: CLIPTextConfig
        do { textConfig = try CLIPTextConfig.load(textConfigURL) } catch {
            throw EnsembleError("\(textConfigURL.path): \(error)")
        }
        guard tokenizer.highestID < textConfig.vocabSize else {
            throw EnsembleError("\(tokDir.path): the tokenizer has ids up to \(tokenizer.highestID), beyond "
                + "\(textConfigURL.path)'s vocab_size \(textConfig.vocabSize)")
        }
        guard tokenizer.maxLength <= textConfig.maxPositionEmbeddings else {
            throw EnsembleError("\(tokDir.path): \(tokenizer.maxLength) tokens, more than \(textConfigURL.path)'s "
                + "max_position_embeddings \(textConfig.maxPositionEmbeddings)")
        }
        let weights = try file(textDir, textWeights, hint: FileManager.default.fileExists(
            atPath: textDir.appendingPathComponent("pytorch_model.bin").path)
            ? "only pytorch_model.bin is there: save it as safetensors (pickles are not read)" : "")
        return (tokenizer, textConfig, weights)
    }

    /// transformers' CLIPTokenizer files: `vocab.json` + `merges.txt`, and `model_max_length` from
    /// `tokenizer_config.json` when it is there (77 otherwise, and for the release).
    public static func loadTokenizer(_ dir: URL) throws -> CLIPTokenizer {
        let vocab = try file(dir, "vocab.json"), merges = try file(dir, "merges.txt")
        var length = 77
        let configURL = dir.appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: configURL.path) {
            let d = try ReleaseJSON.object(configURL)
            // transformers writes a huge sentinel (1e30) when a tokenizer has no limit: keep 77 then.
            if let n = d["model_max_length"] as? NSNumber, n.doubleValue >= 2, n.doubleValue <= 4096 {
                length = n.intValue
            }
        }
        do { return try CLIPTokenizer(vocabularyFile: vocab, mergesFile: merges, maxLength: length) } catch {
            throw EnsembleError("\(dir.path): \(error)")
        }
    }

    /// The optional top-level config.json (`image_size`, `num_channels`, `num_experts`) must agree with the parts.
    static func checkRootConfig(_ folder: URL, numExperts k: Int, channels: Int, size: Int) throws {
        let url = folder.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let d = try ReleaseJSON.object(url)
        for (key, value, what) in [("num_experts", k, "\(ParisReleaseIndex.fileName) has"),
                                   ("num_channels", channels, "the experts take"), ("image_size", size, "the experts take")] {
            if let v = try ReleaseJSON.int(d, key, in: url), v != value {
                throw EnsembleError("\(url.path): \(key) is \(v), but \(what) \(value)")
            }
        }
    }

    /// Loads `url` into `model` with strict keys (after the header check, a mismatch here means the file changed)
    /// and puts it in eval mode.
    static func loadStrict<M: Module>(_ model: M, _ url: URL, device: Device) throws -> M {
        do { try model.loadStateDict(try SafeTensors.load(url, device: device).tensors) } catch {
            throw EnsembleError("\(url.path): \(error)")
        }
        model.train(false)
        return model
    }
}
