import Foundation
import ParisEnsemble
import ParisModels
import ParisTestSupport
import Torch
import XCTest

/// The remote expert's wire format (issue #13): a request and an answer round-trip, and every malformed body is an
/// error that names the tensor.
final class VelocityWireTests: XCTestCase {
    let shape = VelocityWire.Shape(channels: 3, imageSize: 8, textLength: 4, textDim: 8)

    func request(batch b: Int = 2, text: Bool = true) throws -> [UInt8] {
        let cond = text ? try TextCondition(tokens: Tensor.randn([b, 4, 8]), mask: Tensor.ones([b, 4], dtype: .bool)) : nil
        return try VelocityWire.encode(x: Tensor.randn([b, 3, 8, 8]), t: Tensor.full([b], 500), text: cond,
                                       guidance: 3)
    }

    func testRequestAndResponseRoundTrip() throws {
        let x = try Tensor.randn([2, 3, 8, 8])
        let tokens = try Tensor.randn([2, 4, 8])
        let mask = try Tensor([true, true, false, false, true, true, true, false]).reshape([2, 4])
        let body = try VelocityWire.encode(x: x, t: Tensor([250.0, 750.0]), text: TextCondition(tokens: tokens, mask: mask),
                                           guidance: 4.5)
        let r = try VelocityWire.decodeRequest(body, shape: shape)
        XCTAssertEqual(try (r.x - x).abs().amax().item(), 0)
        XCTAssertEqual(try r.t.to(dtype: .float64).toArray(as: Double.self), [250, 750])
        XCTAssertEqual(try (r.text!.tokens - tokens).abs().amax().item(), 0)
        XCTAssertEqual(try r.text!.mask!.to(dtype: .int64).toArray(as: Int64.self), [1, 1, 0, 0, 1, 1, 1, 0])
        XCTAssertEqual(r.guidance, 4.5)
        // Unconditional: no text tensors.
        XCTAssertNil(try VelocityWire.decodeRequest(try request(text: false), shape: shape).text)
        // The answer.
        let v = try Tensor.randn([2, 3, 8, 8])
        let back = try VelocityWire.decodeResponse(try VelocityWire.encodeResponse(v), shape: [2, 3, 8, 8])
        XCTAssertEqual(try (back - v).abs().amax().item(), 0)
    }

    func testMalformedRequestsNameTheTensor() throws {
        func refused(_ tensors: [String: Tensor], _ text: String, tensor: String?, line: UInt = #line) {
            XCTAssertThrowsError(try VelocityWire.decodeRequest(try SafeTensors.serialize(tensors), shape: shape)) { e in
                let w = e as? VelocityWire.WireError
                XCTAssertEqual(w?.tensor, tensor, "\(e)", line: line)
                XCTAssertTrue("\(e)".contains(text), "\(e)", line: line)
            }
        }
        let x = try Tensor.randn([2, 3, 8, 8]), t = try Tensor.full([2], 10), g = try Tensor([2.0])
        refused(["x": x, "t": t, "guidance_scale": g, "extra": t], "unknown tensor 'extra'", tensor: "extra")
        refused(["x": x, "guidance_scale": g], "the tensor 't' is missing", tensor: "t")
        refused(["x": try x.to(dtype: .float64), "t": t, "guidance_scale": g], "'x' must be F32, not F64", tensor: "x")
        refused(["x": try Tensor.randn([2, 3, 16, 16]), "t": t, "guidance_scale": g], "'x' must have shape [2, 3, 8, 8]",
                tensor: "x")
        refused(["x": x, "t": try Tensor.full([3], 1), "guidance_scale": g], "'t' must have shape [2]", tensor: "t")
        refused(["x": x, "t": t, "guidance_scale": try Tensor([Double.nan])], "must be finite", tensor: "guidance_scale")
        refused(["x": x, "t": t, "guidance_scale": g, "text_tokens": try Tensor.randn([2, 5, 8])],
                "'text_tokens' must have shape [2, 4, 8]", tensor: "text_tokens")
        refused(["x": x, "t": t, "guidance_scale": g, "text_tokens": try Tensor.randn([2, 4, 8]),
                 "text_mask": try Tensor.ones([2, 4])], "'text_mask' must be BOOL", tensor: "text_mask")
        refused(["x": try x / 0.0 * 0.0, "t": t, "guidance_scale": g], "'x' holds NaN", tensor: "x")
        refused(["x": try Tensor.randn([VelocityWire.maxBatch + 1, 3, 8, 8]), "t": t, "guidance_scale": g],
                "the batch must be 1…\(VelocityWire.maxBatch)", tensor: "x")
        // A truncated body and bytes that are no safetensors at all: the body itself.
        let body = try request()
        for bad in [Array(body.prefix(body.count - 7)), Array(body.prefix(5)), Array("{\"x\": 1}".utf8)] {
            XCTAssertThrowsError(try VelocityWire.decodeRequest(bad, shape: shape)) { e in
                XCTAssertNil((e as? VelocityWire.WireError)?.tensor, "\(e)")
                XCTAssertTrue("\(e)".contains("request body"), "\(e)")
            }
        }
    }

    func testMalformedAnswersAreRefused() throws {
        let shapeOfX = [2, 3, 8, 8]
        assertThrows({ try VelocityWire.decodeResponse(try SafeTensors.serialize(["v": Tensor.randn([2, 3, 8, 4])]),
                                                       shape: shapeOfX) }, contains: "expected F32 [2, 3, 8, 8]")
        assertThrows({ try VelocityWire.decodeResponse(try SafeTensors.serialize(["w": Tensor.randn(shapeOfX)]),
                                                       shape: shapeOfX) }, contains: "exactly the tensor 'v'")
        assertThrows({ try VelocityWire.decodeResponse(try SafeTensors.serialize(["v": Tensor.full(shapeOfX, .nan)]),
                                                       shape: shapeOfX) }, contains: "'v' holds NaN")
        assertThrows({ try VelocityWire.decodeResponse(Array("Internal Server Error".utf8), shape: shapeOfX) },
                     contains: "response body")
    }

    func testRemoteConfigParsingAndValidation() throws {
        XCTAssertEqual(try RemoteExpertConfig(parsing: "2=http://127.0.0.1:8090"),
                       RemoteExpertConfig(expert: 2, url: "http://127.0.0.1:8090"))
        assertThrows({ try RemoteExpertConfig(parsing: "http://x") }, contains: "expected K=URL")
        assertThrows({ try RemoteExpertConfig(expert: 1, url: "ftp://host").validate() }, contains: "not an http(s) URL")
        assertThrows({ try RemoteExpertConfig(expert: 1, url: "http://h", timeoutSeconds: 0).validate() },
                     contains: "timeout_s must be within")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("paris-mixture-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("mixture.json")
        XCTAssertEqual(try RemoteExpertConfig.read(mixtureJSON: file), [])
        try Data(#"{"remote": [{"expert": 1, "url": "http://10.0.0.7:8090", "token_file": "/t", "retries": 2}]}"#.utf8)
            .write(to: file)
        XCTAssertEqual(try RemoteExpertConfig.read(mixtureJSON: file),
                       [RemoteExpertConfig(expert: 1, url: "http://10.0.0.7:8090", tokenFile: "/t", retries: 2)])
        try Data(#"{"remote": {"expert": 1}}"#.utf8).write(to: file)
        assertThrows({ try RemoteExpertConfig.read(mixtureJSON: file) }, contains: "not a mixture file")
    }
}
