import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// A headless Chromium driven through chromium-driver's W3C WebDriver HTTP API (Debian's `chromium` and
/// `chromium-driver`, installed by scripts/test.sh). Only what the web page test needs: open a page, find
/// elements, type, click, run a script, take a screenshot, and read the browser's console log.
final class WebDriver {
    static let driverPath = "/usr/bin/chromedriver", browserPath = "/usr/bin/chromium"
    static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

    let process = Process()
    let port: Int
    var session = ""

    /// Starts chromium-driver on a free loopback port and a headless browser session; skips when either is missing.
    init(width: Int = 1200, height: Int = 900) async throws {
        for path in [Self.driverPath, Self.browserPath] where !FileManager.default.isExecutableFile(atPath: path) {
            throw XCTSkip("\(path) is not installed (scripts/test.sh installs chromium and chromium-driver)")
        }
        port = Int.random(in: 20_000..<60_000)
        process.executableURL = URL(fileURLWithPath: Self.driverPath)
        process.arguments = ["--port=\(port)", "--allowed-ips=127.0.0.1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while true {
            if let status = try? await call("GET", "/status"), (status["ready"] as? Bool) == true { break }
            guard Date() < deadline else { throw XCTSkip("chromium-driver did not start on port \(port)") }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let options: [String: Any] = [
            "binary": Self.browserPath,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=\(width),\(height)"],
        ]
        let capabilities: [String: Any] = ["alwaysMatch": [
            "browserName": "chrome", "goog:chromeOptions": options, "goog:loggingPrefs": ["browser": "ALL"],
        ] as [String: Any]]
        let created = try await call("POST", "/session", ["capabilities": capabilities])
        session = try XCTUnwrap(created["sessionId"] as? String, "\(created)")
    }

    func quit() async {
        if !session.isEmpty { _ = try? await call("DELETE", "/session/\(session)") }
        // chromium-driver does not always stop on SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// One WebDriver command; returns its `value` (a dictionary; other values under "value"). Sent with curl:
    /// chromium-driver writes headers without a space after the colon, which FoundationNetworking's URLSession
    /// refuses ("Failed writing header").
    @discardableResult
    func call(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> [String: Any] {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-s", "--max-time", "120", "-X", method, "-H", "Content-Type: application/json"]
            + (body == nil ? [] : ["--data-binary", "@-"]) + ["http://127.0.0.1:\(port)\(path)"]
        let input = Pipe(), output = Pipe()
        curl.standardInput = input
        curl.standardOutput = output
        try curl.run()
        if let body { input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: body)) }
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        curl.waitUntilExit()
        guard curl.terminationStatus == 0 else {
            throw WebDriverError(description: "curl \(method) \(path) exited \(curl.terminationStatus)")
        }
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        if let value = object["value"] as? [String: Any] {
            if let error = value["error"] as? String {
                throw WebDriverError(description: "WebDriver \(method) \(path): \(error): \(value["message"] ?? "")")
            }
            return value.merging(object.filter { $0.key == "sessionId" }) { a, _ in a }
        }
        return ["value": object["value"] ?? NSNull()]
    }

    func open(_ url: String) async throws { try await call("POST", "/session/\(session)/url", ["url": url]) }

    func element(_ css: String) async throws -> String {
        let found = try await call("POST", "/session/\(session)/element", ["using": "css selector", "value": css])
        return try XCTUnwrap(found[Self.elementKey] as? String, "no element \(css)")
    }

    func type(_ css: String, _ text: String) async throws {
        let id = try await element(css)
        try await call("POST", "/session/\(session)/element/\(id)/clear", [:])
        try await call("POST", "/session/\(session)/element/\(id)/value", ["text": text])
    }

    func click(_ css: String) async throws {
        try await call("POST", "/session/\(session)/element/\(try await element(css))/click", [:])
    }

    /// Runs `script` in the page and returns what it returns.
    func script(_ script: String) async throws -> Any {
        try await call("POST", "/session/\(session)/execute/sync", ["script": script, "args": [Any]()])["value"]
            ?? NSNull()
    }

    /// Polls `script` until it returns true (at most `seconds`).
    func waitUntil(_ script: String, seconds: Double = 120) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try await self.script(script) as? Bool) == true { return true }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        return false
    }

    /// A PNG screenshot of the window.
    func screenshot() async throws -> Data {
        let value = try await call("GET", "/session/\(session)/screenshot")["value"] as? String ?? ""
        return try XCTUnwrap(Data(base64Encoded: value), "the screenshot is not base64")
    }

    /// The browser console's entries since the last call: (level, message).
    func consoleLog() async throws -> [(String, String)] {
        let value = try await call("POST", "/session/\(session)/se/log", ["type": "browser"])["value"]
        return (value as? [[String: Any]] ?? []).map { ("\($0["level"] ?? "")", "\($0["message"] ?? "")") }
    }
}

/// A WebDriver command that failed: what was asked and what the driver said.
struct WebDriverError: Error, CustomStringConvertible {
    let description: String
}
