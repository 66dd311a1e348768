import FaceDetectorCore
import Foundation
import XCTest

/// Behaviour of the core that needs no golden vectors: prior layout, NMS order and thresholds,
/// letterbox round trip, manifest and metadata reading, latency statistics.
final class CoreTests: XCTestCase {
    func testPriorLayoutMatchesPython() {
        let priors = priorBoxes(width: 320, height: 320, config: .fallback)
        // 40*40*2 + 20*20*2 + 10*10*2
        XCTAssertEqual(priors.count, 4200)
        XCTAssertEqual(priorBoxes(width: 640, height: 640).count, 16800)
        assertPrior(priors[0], cx: 4.0 / 320, cy: 4.0 / 320, w: 16.0 / 320, h: 16.0 / 320)
        assertPrior(priors[1], cx: 4.0 / 320, cy: 4.0 / 320, w: 32.0 / 320, h: 32.0 / 320)
        // Second prior position on the first row: column 1.
        XCTAssertEqual(priors[2].cx, 12.0 / 320, accuracy: 1e-7)
        let last = priors[priors.count - 1]
        XCTAssertEqual(last.cx, 304.0 / 320, accuracy: 1e-7)
        XCTAssertEqual(last.w, 512.0 / 320, accuracy: 1e-7)
    }

    func assertPrior(_ p: PriorBox, cx: Double, cy: Double, w: Double, h: Double,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Double(p.cx), cx, accuracy: 1e-7, file: file, line: line)
        XCTAssertEqual(Double(p.cy), cy, accuracy: 1e-7, file: file, line: line)
        XCTAssertEqual(Double(p.w), w, accuracy: 1e-7, file: file, line: line)
        XCTAssertEqual(Double(p.h), h, accuracy: 1e-7, file: file, line: line)
    }

    func testNonSquareInputUsesCeil() {
        // ceil(100/8)*ceil(60/8)*2 + ceil(100/16)*ceil(60/16)*2 + ceil(100/32)*ceil(60/32)*2
        XCTAssertEqual(priorBoxes(width: 100, height: 60).count, 13 * 8 * 2 + 7 * 4 * 2 + 4 * 2 * 2)
    }

    func testZeroOutputsDecodeToPriorBoxes() throws {
        var config = DetectorConfig.fallback
        config.inputWidth = 64
        config.inputHeight = 64
        let decoder = FaceDecoder(config: config)
        let n = decoder.priors.count
        var conf = [Float](repeating: 0, count: n * 2)
        conf[2 * 5 + 1] = 0.9
        let faces = try decoder.decode(
            loc: [Float](repeating: 0, count: n * 4), conf: conf, landms: [Float](repeating: 0, count: n * 10))
        XCTAssertEqual(faces.count, 1)
        let p = decoder.priors[5]
        XCTAssertEqual(faces[0].x1, (p.cx - p.w / 2) * 64, accuracy: 1e-4)
        XCTAssertEqual(faces[0].y2, (p.cy + p.h / 2) * 64, accuracy: 1e-4)
        XCTAssertEqual(faces[0].landmarks[0], p.cx * 64, accuracy: 1e-4)
        XCTAssertEqual(faces[0].score, 0.9)
    }

    func testScoreThresholdIsStrict() throws {
        var config = DetectorConfig.fallback
        config.inputWidth = 32
        config.inputHeight = 32
        let decoder = FaceDecoder(config: config)
        let n = decoder.priors.count
        var conf = [Float](repeating: 0, count: n * 2)
        conf[1] = 0.5
        let faces = try decoder.decode(
            loc: [Float](repeating: 0, count: n * 4), conf: conf, landms: [Float](repeating: 0, count: n * 10))
        XCTAssertTrue(faces.isEmpty)
    }

    func testWrongOutputSizeNamesTheProblem() {
        let decoder = FaceDecoder(config: .fallback)
        XCTAssertThrowsError(try decoder.decode(loc: [0], conf: [0], landms: [0])) { error in
            XCTAssertTrue(String(describing: error).contains("16800 priors"))
        }
    }

    func testNMSKeepsBestAndDropsOverlapsAboveThreshold() {
        let a = Face(x1: 0, y1: 0, x2: 10, y2: 10, score: 0.9, landmarks: [])
        let b = Face(x1: 1, y1: 0, x2: 11, y2: 10, score: 0.8, landmarks: [])   // IoU 90/110 with a
        let c = Face(x1: 20, y1: 20, x2: 30, y2: 30, score: 0.7, landmarks: [])
        let d = Face(x1: 0, y1: 5, x2: 10, y2: 15, score: 0.6, landmarks: [])   // IoU 50/150 with a
        XCTAssertEqual(nonMaximumSuppression([a, b, c, d], iouThreshold: 0.4, limit: 10), [0, 2, 3])
        XCTAssertEqual(nonMaximumSuppression([a, b, c, d], iouThreshold: 0.3, limit: 10), [0, 2])
        XCTAssertEqual(nonMaximumSuppression([a, b, c, d], iouThreshold: 0.4, limit: 2), [0, 2])
        let empty = Face(x1: 5, y1: 5, x2: 5, y2: 5, score: 0.5, landmarks: [])
        XCTAssertEqual(intersectionOverUnion(empty, empty), 0)
    }

    func testEqualScoresKeepPriorOrder() throws {
        var config = DetectorConfig.fallback
        config.inputWidth = 32
        config.inputHeight = 32
        config.thresholds.nmsIoU = 1.0  // keep everything
        let decoder = FaceDecoder(config: config)
        let n = decoder.priors.count
        var conf = [Float](repeating: 0, count: n * 2)
        for i in [7, 3, 11] { conf[2 * i + 1] = 0.8 }
        conf[2 * 9 + 1] = 0.95
        let faces = try decoder.decode(
            loc: [Float](repeating: 0, count: n * 4), conf: conf, landms: [Float](repeating: 0, count: n * 10))
        // Zero regression decodes every face to its prior's box, which identifies the prior.
        func priorIndex(of face: Face) -> Int? {
            decoder.priors.firstIndex { p in
                let x1: Float = (p.cx - p.w / 2) * 32
                let y1: Float = (p.cy - p.h / 2) * 32
                let x2: Float = (p.cx + p.w / 2) * 32
                return x1 == face.x1 && y1 == face.y1 && x2 == face.x2
            }
        }
        XCTAssertEqual(faces.compactMap(priorIndex(of:)), [9, 3, 7, 11])
    }

    func testLetterboxMatchesFormatsDoc() {
        // docs/formats.md example: 1024x819 into 320 -> scale 0.3125, pad_y 32.
        let lb = Letterbox.fitting(width: 1024, height: 819, into: 320)
        XCTAssertEqual(lb.padX, 0)
        XCTAssertEqual(lb.padY, 32)
        XCTAssertEqual(lb.scaleX, 0.3125, accuracy: 1e-12)
        XCTAssertEqual(lb.resizedHeight, 256)
        XCTAssertEqual(lb.imageX(100 * 0.3125), 100, accuracy: 1e-4)
        XCTAssertEqual(lb.imageY(32 + 50 * Float(lb.scaleY)), 50, accuracy: 1e-3)
        let square = Letterbox.fitting(width: 320, height: 320, into: 320)
        XCTAssertEqual(square, Letterbox(scaleX: 1, scaleY: 1, padX: 0, padY: 0, imageWidth: 320, imageHeight: 320))
    }

    func testLetterboxRoundsHalfToEven() {
        // 5 x 10 into 5: scale 0.5, nw = round(2.5) = 2 in Python.
        let lb = Letterbox.fitting(width: 5, height: 10, into: 5)
        XCTAssertEqual(lb.scaleX, 2.0 / 5.0, accuracy: 1e-12)
        XCTAssertEqual(lb.padX, 1)
    }

    func testManifestExampleFromFormatsDoc() throws {
        let json = """
        {
          "format": "featherface-package/1",
          "model": {"name": "featherface-v1", "version": "0.1.0", "parameters": 592371},
          "input": {"width": 640, "height": 640, "channel_order": "BGR", "mean": [104.0, 117.0, 123.0], "resize": "letterbox"},
          "priors": {"min_sizes": [[16, 32], [64, 128], [256, 512]], "steps": [8, 16, 32], "variance": [0.1, 0.2], "clip": false},
          "thresholds": {"score": 0.5, "nms_iou": 0.4, "top_k": 5000, "keep_top_k": 750},
          "outputs": [
            {"name": "loc", "values": 4},
            {"name": "conf", "shape": [1, 16800, 2], "softmax": true},
            {"name": "landms", "shape": [1, 16800, 10]}
          ],
          "artefacts": [
            {"file": "featherface-v1_int8.tflite", "format": "tflite", "precision": "int8", "layout": "NHWC",
             "input_dtype": "float32", "bytes": 612345, "sha256": "abc", "verify": null},
            {"file": "featherface-v1_fp16.mlpackage", "format": "coreml", "precision": "fp16", "bytes": 1, "sha256": "def"}
          ],
          "golden": "golden/index.json"
        }
        """
        let manifest = try JSONDecoder().decode(PackageManifest.self, from: Data(json.utf8))
        XCTAssertEqual(manifest.artefact(format: "coreml")?.file, "featherface-v1_fp16.mlpackage")
        XCTAssertEqual(manifest.outputs.first { $0.name == "conf" }?.softmax, true)
        let config = DetectorConfig(manifest: manifest)
        XCTAssertEqual(config.inputWidth, 640)
        XCTAssertEqual(config.priors, .fallback)
        XCTAssertEqual(config.thresholds, .fallback)
        XCTAssertEqual(config.source, "manifest")
    }

    func testManifestWithoutPriorsFallsBackToDefaults() throws {
        let json = """
        {"format": "featherface-package/1", "model": {"name": "m", "version": "0"},
         "input": {"width": 320, "height": 320, "channel_order": "BGR", "mean": [1, 2, 3], "resize": "letterbox"},
         "outputs": [], "artefacts": [], "golden": null}
        """
        let manifest = try JSONDecoder().decode(PackageManifest.self, from: Data(json.utf8))
        let config = DetectorConfig(manifest: manifest)
        XCTAssertEqual(config.inputWidth, 320)
        XCTAssertEqual(config.meanBGR, [1, 2, 3])
        XCTAssertEqual(config.priors, .fallback)
        XCTAssertEqual(config.thresholds, .fallback)
    }

    func testMetadataKeysOverrideDefaults() {
        let config = DetectorConfig(metadata: [
            "input_size": "[320, 320]",
            "thresholds": #"{"score": 0.6, "nms_iou": 0.3, "top_k": 100, "keep_top_k": 10}"#,
            "unrelated": "x",
        ])
        XCTAssertEqual(config.inputWidth, 320)
        XCTAssertEqual(config.thresholds.score, 0.6)
        XCTAssertEqual(config.priors, .fallback)
        XCTAssertEqual(config.source, "metadata")
        XCTAssertEqual(DetectorConfig(metadata: [:]), .fallback)
    }

    func testLatencyStats() throws {
        let stats = try XCTUnwrap(LatencyStats(milliseconds: [5, 1, 4, 2, 3, 10, 6, 7, 8, 9]))
        XCTAssertEqual(stats.medianMs, 5.5)
        XCTAssertEqual(stats.p90Ms, 9)
        XCTAssertEqual(stats.fps, 1000.0 / 5.5, accuracy: 1e-9)
        XCTAssertEqual(LatencyStats(milliseconds: [4])?.p90Ms, 4)
        XCTAssertNil(LatencyStats(milliseconds: []))
    }
}
