import FaceDetectorCore
import Foundation
import XCTest

/// Decodes the raw outputs stored in the Python golden vectors and compares with the faces Python
/// decoded from them: same count, same order, every coordinate within 0.01 px.
/// Write the vectors with `python -m featherface_mobile.golden --out DIR` and set FEATHERFACE_GOLDEN_DIR=DIR.
final class GoldenVectorTests: XCTestCase {
    static let tolerance: Double = 0.01

    func goldenDirectory() throws -> URL {
        guard let path = ProcessInfo.processInfo.environment["FEATHERFACE_GOLDEN_DIR"], !path.isEmpty else {
            throw XCTSkip("FEATHERFACE_GOLDEN_DIR is not set; write golden vectors with "
                          + "`python -m featherface_mobile.golden --out DIR` and set FEATHERFACE_GOLDEN_DIR=DIR")
        }
        return URL(fileURLWithPath: path, isDirectory: true)
    }

    func loadGoldenFiles() throws -> [(name: String, golden: GoldenFile)] {
        let directory = try goldenDirectory()
        let decoder = JSONDecoder()
        let indexURL = directory.appendingPathComponent("index.json")
        let index = try decoder.decode(GoldenIndex.self, from: Data(contentsOf: indexURL))
        XCTAssertEqual(index.format, GoldenIndex.formatName)
        XCTAssertFalse(index.files.isEmpty, "\(indexURL.path) lists no golden files")
        return try index.files.map { name -> (name: String, golden: GoldenFile) in
            let golden = try decoder.decode(GoldenFile.self, from: Data(contentsOf: directory.appendingPathComponent(name)))
            return (name: name, golden: golden)
        }
    }

    func testPriorCountMatchesGolden() throws {
        for (name, golden) in try loadGoldenFiles() {
            let decoder = FaceDecoder(config: DetectorConfig(golden: golden))
            XCTAssertEqual(decoder.priors.count, golden.numPriors, name)
            XCTAssertEqual(golden.raw.loc.count, golden.numPriors * 4, name)
            XCTAssertEqual(golden.raw.conf.count, golden.numPriors * 2, name)
            XCTAssertEqual(golden.raw.landms.count, golden.numPriors * 10, name)
        }
    }

    func testDecodedFacesMatchGolden() throws {
        let tolerance = Self.tolerance
        for (name, golden) in try loadGoldenFiles() {
            XCTAssertEqual(golden.format, GoldenFile.formatName, name)
            let decoder = FaceDecoder(config: DetectorConfig(golden: golden))
            let faces = try decoder.decode(
                loc: golden.raw.loc, conf: golden.raw.conf, landms: golden.raw.landms, letterbox: golden.letterbox)
            XCTAssertEqual(faces.count, golden.faces.count, "\(name): face count")
            for (k, (face, expected)) in zip(faces, golden.faces).enumerated() {
                let got = [face.x1, face.y1, face.x2, face.y2].map(Double.init)
                XCTAssertEqual(expected.box.count, 4, "\(name) face \(k): box")
                for (c, (a, b)) in zip(got, expected.box).enumerated() {
                    XCTAssertEqual(a, b, accuracy: tolerance, "\(name) face \(k): box[\(c)]")
                }
                XCTAssertEqual(Double(face.score), expected.score, accuracy: 1e-6, "\(name) face \(k): score")
                XCTAssertEqual(expected.landmarks.count, 10, "\(name) face \(k): landmarks")
                for (c, (a, b)) in zip(face.landmarks.map(Double.init), expected.landmarks).enumerated() {
                    XCTAssertEqual(a, b, accuracy: tolerance, "\(name) face \(k): landmarks[\(c)]")
                }
            }
        }
    }

    func testGoldenLetterboxIsReproduced() throws {
        for (name, golden) in try loadGoldenFiles() {
            let lb = Letterbox.fitting(
                width: golden.letterbox.imageWidth, height: golden.letterbox.imageHeight, into: golden.input.width)
            XCTAssertEqual(lb.padX, golden.letterbox.padX, name)
            XCTAssertEqual(lb.padY, golden.letterbox.padY, name)
            XCTAssertEqual(lb.scaleX, golden.letterbox.scaleX, accuracy: 1e-12, name)
            XCTAssertEqual(lb.scaleY, golden.letterbox.scaleY, accuracy: 1e-12, name)
        }
    }
}
