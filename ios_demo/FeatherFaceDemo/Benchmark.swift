import CoreGraphics
import CoreVideo
import FaceDetectorCore
import Foundation
import ImageIO
import UIKit

/// What one benchmark run measured: latency over M timed runs after N warm-up runs on one image.
struct BenchmarkReport {
    let modelName: String
    let imageName: String
    let imageWidth: Int
    let imageHeight: Int
    let inputSize: Int
    let computeUnits: ComputeUnitsOption
    let warmupRuns: Int
    let timedRuns: Int
    let medianMs: Double
    let p90Ms: Double
    let fps: Double
    let preprocessMedianMs: Double
    let inferenceMedianMs: Double
    let postprocessMedianMs: Double
    let faces: Int

    var summary: String {
        String(format: "%@ on %@ (%ldx%ld -> %ld), %@: %ld warm-up + %ld timed runs; "
               + "median %.2f ms, p90 %.2f ms, %.1f FPS (pre %.2f, infer %.2f, post %.2f ms); %ld faces",
               modelName, imageName, imageWidth, imageHeight, inputSize, computeUnits.label, warmupRuns, timedRuns,
               medianMs, p90Ms, fps, preprocessMedianMs, inferenceMedianMs, postprocessMedianMs, faces)
    }
}

enum Benchmark {
    /// `benchmark.jpg` / `benchmark.png` from the bundle, else a generated test card (no faces;
    /// latency is what is measured, and it hardly depends on the content).
    static func bundledImage(bundle: Bundle = .main) -> (name: String, image: CGImage) {
        for ext in ["jpg", "jpeg", "png"] {
            if let url = bundle.url(forResource: "benchmark", withExtension: ext),
               let source = CGImageSourceCreateWithURL(url as CFURL, nil),
               let image = CGImageSourceCreateImageAtIndex(source, 0, nil) {
                return (url.lastPathComponent, image)
            }
        }
        return ("generated test card", generatedImage(width: 1280, height: 720))
    }

    static func generatedImage(width: Int, height: Int) -> CGImage {
        let format = UIGraphicsImageRendererFormat()
        format.scale = 1
        let renderer = UIGraphicsImageRenderer(size: CGSize(width: width, height: height), format: format)
        let image = renderer.image { context in
            let cg = context.cgContext
            for i in 0..<8 {
                UIColor(hue: CGFloat(i) / 8, saturation: 0.5, brightness: 0.9, alpha: 1).setFill()
                cg.fill(CGRect(x: CGFloat(i) * CGFloat(width) / 8, y: 0, width: CGFloat(width) / 8, height: CGFloat(height)))
            }
            UIColor(red: 0.85, green: 0.7, blue: 0.6, alpha: 1).setFill()
            cg.fillEllipse(in: CGRect(x: CGFloat(width) * 0.4, y: CGFloat(height) * 0.25, width: CGFloat(width) * 0.2, height: CGFloat(height) * 0.5))
        }
        return image.cgImage!
    }

    /// `warmup` untimed runs, then `runs` timed runs of the whole detect() (pre + inference + post).
    static func run(detector: CoreMLFaceDetector, image: CGImage, imageName: String, warmup: Int, runs: Int,
                    progress: ((Int) -> Void)? = nil) throws -> BenchmarkReport {
        precondition(runs > 0, "benchmark needs at least one timed run")
        let frame = try ImageCanvas.pixelBuffer(from: image)
        var faces = 0
        for _ in 0..<warmup {
            faces = try detector.detect(pixelBuffer: frame).faces.count
        }
        var total: [Double] = []
        var pre: [Double] = []
        var infer: [Double] = []
        var post: [Double] = []
        for i in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try detector.detect(pixelBuffer: frame)
            total.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000)
            pre.append(result.timings.preprocessMs)
            infer.append(result.timings.inferenceMs)
            post.append(result.timings.postprocessMs)
            faces = result.faces.count
            progress?(i + 1)
        }
        // runs > 0, so every LatencyStats exists.
        let stats = LatencyStats(milliseconds: total)!
        return BenchmarkReport(
            modelName: detector.modelName, imageName: imageName, imageWidth: image.width, imageHeight: image.height,
            inputSize: detector.inputSize, computeUnits: detector.computeUnits, warmupRuns: warmup, timedRuns: runs,
            medianMs: stats.medianMs, p90Ms: stats.p90Ms, fps: stats.fps,
            preprocessMedianMs: LatencyStats(milliseconds: pre)!.medianMs,
            inferenceMedianMs: LatencyStats(milliseconds: infer)!.medianMs,
            postprocessMedianMs: LatencyStats(milliseconds: post)!.medianMs,
            faces: faces)
    }
}
