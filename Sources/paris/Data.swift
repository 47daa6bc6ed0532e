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

/// `paris data import fashion-mnist [--out DIR] [--limit N] [--split train|test|all] [--force]`
struct DataImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a dataset into an image folder (PNGs + metadata.jsonl).",
        discussion: """
            Known datasets: \(DataImport.known.joined(separator: ", ")). fashion-mnist is read from Debian's \
            dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), which is installed with apt-get when missing. \
            A complete dataset at --out is left alone; a partial one is rebuilt; a different one is replaced only \
            with --force.
            """)

    static let known = [FashionMNIST.name]

    @Argument(help: "The dataset: fashion-mnist.")
    var dataset: String

    @Option(help: "The folder to write (default data/<dataset>).")
    var out: String?

    @Option(help: "At most this many images of each split.")
    var limit: Int?

    @Option(help: "train, test or all.")
    var split: String = "all"

    @Option(help: "Read the IDX files from this folder instead of the Debian package's (never installs).")
    var source: String?

    @Flag(help: "Replace a different dataset at --out.")
    var force = false

    func validate() throws {
        guard Self.known.contains(dataset) else {
            throw ValidationError("unknown dataset '\(dataset)'; known datasets: \(Self.known.joined(separator: ", "))")
        }
        guard ["train", "test", "all"].contains(split) else {
            throw ValidationError("--split must be train, test or all, not '\(split)'")
        }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive, not \(limit)") }
    }

    func run() throws {
        let splits: [FashionMNIST.Split] = split == "all" ? FashionMNIST.Split.allCases : [FashionMNIST.Split(rawValue: split)!]
        let options = FashionMNIST.Options(
            source: source.map { URL(fileURLWithPath: $0) } ?? FashionMNIST.systemDirectory,
            output: URL(fileURLWithPath: out ?? "data/\(dataset)"),
            splits: splits, limit: limit, force: force)
        try FashionMNIST.importDataset(options) { line in print(line) }
    }
}
