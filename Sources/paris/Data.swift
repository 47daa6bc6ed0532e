import ArgumentParser
import Foundation
import ParisData

/// `paris data ...`: datasets.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Prepare datasets.",
        subcommands: [DataImport.self])
}

/// `paris data import fashion-mnist|emoji|folder|webdataset|shapes [--out DIR] ...`
struct DataImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a dataset into an image folder (PNGs + metadata.jsonl).",
        discussion: """
            Known datasets: \(DataImport.known.joined(separator: ", ")). fashion-mnist is read from Debian's \
            dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), which is installed with apt-get when missing. \
            emoji renders Twemoji, OpenMoji and Noto Color Emoji (installed from PyPI and Debian when missing). \
            folder imports --source DIR (an image folder with metadata.jsonl); webdataset imports --source \
            SHARD.tar|DIR ... (WebDataset tar shards). shapes draws --count N synthetic captioned shapes \
            ("a large red triangle on a blue background") from --seed, for the scale benchmark. Images go into \
            subfolders of at most 1,000 files (images/00012/...). A complete dataset at --out is left alone; a \
            partial one is rebuilt; a different one is replaced only with --force. An --out that overlaps a --source (the same \
            folder, or one inside the other) is always refused, --force or not.
            """)

    static let known = [FashionMNIST.name, EmojiImport.name, ImageFolderImport.name, WebDatasetImport.name,
                        ShapesImport.name]

    @Argument(help: "The dataset: fashion-mnist, emoji, folder, webdataset or shapes.")
    var dataset: String

    @Option(help: "The folder to write (default data/<dataset>).")
    var out: String?

    @Option(number: "fashion-mnist: at most this many images of each split; emoji: the first N emoji only.")
    var limit: Int?

    @Option(help: "fashion-mnist: train, test or all.")
    var split: String = "all"

    @Option(parsing: .upToNextOption,
            help: "fashion-mnist: the IDX folder (never installs); folder: the image folder; webdataset: shards or folders.")
    var source: [String] = []

    @Option(number: "emoji, shapes: the image side in pixels.")
    var size: Int = 32

    @Option(number: "shapes: the number of images to draw.")
    var count: Int?

    @Option(number: "shapes: the seed; image i is a pure function of (seed, i).")
    var seed: UInt64 = 0

    @Option(help: "emoji: comma-separated styles (twemoji,openmoji,noto).")
    var styles: String = "twemoji,openmoji,noto"

    @Flag(help: "folder/webdataset: skip (and count) samples without a caption instead of failing.")
    var skipMissingCaptions = false

    @Flag(help: "folder/webdataset: fail on an unreadable or corrupt image instead of skipping it.")
    var strict = false

    @Flag(help: "Replace a different dataset at --out (never one that overlaps a --source).")
    var force = false

    func validate() throws {
        guard Self.known.contains(dataset) else {
            throw ValidationError("unknown dataset '\(dataset)'; known datasets: \(Self.known.joined(separator: ", "))")
        }
        guard ["train", "test", "all"].contains(split) else {
            throw ValidationError("--split must be train, test or all, not '\(split)'")
        }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive, not \(limit)") }
        if [ImageFolderImport.name, WebDatasetImport.name].contains(dataset) && source.isEmpty {
            throw ValidationError("\(dataset) needs --source")
        }
        if dataset == ShapesImport.name {
            guard let count else { throw ValidationError("shapes needs --count N") }
            guard count > 0 else { throw ValidationError("--count must be positive, not \(count)") }
            guard ShapesImport.sizes.contains(size) else {
                throw ValidationError("--size must be between \(ShapesImport.sizes.lowerBound) and "
                    + "\(ShapesImport.sizes.upperBound) pixels for shapes, not \(size)")
            }
        }
        if dataset != WebDatasetImport.name && source.count > 1 {
            throw ValidationError("\(dataset) takes one --source, not \(source.count)")
        }
    }

    func run() throws {
        let output = URL(fileURLWithPath: out ?? "data/\(dataset)")
        let sources = source.map { URL(fileURLWithPath: $0) }
        let log: (String) -> Void = { print($0) }
        switch dataset {
        case EmojiImport.name:
            try EmojiImport.importDataset(.init(output: output, packageCache: CachePaths.packages, size: size,
                                                styles: try EmojiImport.parseStyles(styles), limit: limit,
                                                force: force), log: log)
        case ImageFolderImport.name:
            try ImageFolderImport.importDataset(.init(source: sources[0], output: output,
                                                      skipMissingCaptions: skipMissingCaptions, strict: strict,
                                                      force: force), log: log)
        case ShapesImport.name:
            try ShapesImport.importDataset(.init(output: output, count: count ?? 0, size: size, seed: seed,
                                                 force: force), log: log)
        case WebDatasetImport.name:
            try WebDatasetImport.importDataset(.init(sources: sources, output: output,
                                                     skipMissingCaptions: skipMissingCaptions, strict: strict,
                                                     force: force), log: log)
        default:
            let splits: [FashionMNIST.Split] = split == "all" ? FashionMNIST.Split.allCases
                : [FashionMNIST.Split(rawValue: split)!]
            let options = FashionMNIST.Options(source: sources.first ?? FashionMNIST.systemDirectory, output: output,
                                               splits: splits, limit: limit, force: force)
            try FashionMNIST.importDataset(options, log: log)
        }
    }
}
