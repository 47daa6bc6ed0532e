import ArgumentParser
import ParisModels

/// `paris models`: the model presets and their sizes.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the model presets with their parameter counts.")

    func run() throws {
        print(ModelCatalog.render())
    }
}
