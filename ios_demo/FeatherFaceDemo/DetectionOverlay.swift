import FaceDetectorCore
import SwiftUI

/// Boxes, 5 landmarks and scores drawn over the preview. Faces are in frame pixels; the frame is
/// shown aspect-filled, so one scale + offset maps them (mirroring is already in the frame).
struct DetectionOverlay: View {
    let faces: [Face]
    let frameSize: CGSize

    // left eye, right eye, nose, left mouth corner, right mouth corner
    static let landmarkColors: [Color] = [.red, .yellow, .purple, .green, .blue]

    var body: some View {
        Canvas { context, size in
            guard frameSize.width > 0, frameSize.height > 0 else { return }
            let scale = max(size.width / frameSize.width, size.height / frameSize.height)
            let dx = (size.width - frameSize.width * scale) / 2
            let dy = (size.height - frameSize.height * scale) / 2
            func point(_ x: Float, _ y: Float) -> CGPoint {
                CGPoint(x: CGFloat(x) * scale + dx, y: CGFloat(y) * scale + dy)
            }
            for face in faces {
                let topLeft = point(face.x1, face.y1)
                let bottomRight = point(face.x2, face.y2)
                let rect = CGRect(x: topLeft.x, y: topLeft.y, width: bottomRight.x - topLeft.x, height: bottomRight.y - topLeft.y)
                context.stroke(Path(rect), with: .color(.green), lineWidth: 2)
                for k in 0..<min(5, face.landmarks.count / 2) {
                    let p = point(face.landmarks[2 * k], face.landmarks[2 * k + 1])
                    let dot = CGRect(x: p.x - 3, y: p.y - 3, width: 6, height: 6)
                    context.fill(Path(ellipseIn: dot), with: .color(DetectionOverlay.landmarkColors[k]))
                }
                let label = Text(String(format: "%.2f", face.score)).font(.caption.bold()).foregroundColor(.green)
                context.draw(label, at: CGPoint(x: rect.minX, y: rect.minY - 2), anchor: .bottomLeading)
            }
        }
        .allowsHitTesting(false)
    }
}

/// FPS and per-stage latency of the last frame.
struct StatsOverlay: View {
    let fps: Double
    let timings: StageTimings?
    let faceCount: Int
    let modelSummary: String
    let computeUnits: ComputeUnitsOption

    var body: some View {
        VStack(alignment: .leading, spacing: 2) {
            Text(String(format: "%.1f FPS · %ld face%@", fps, faceCount, faceCount == 1 ? "" : "s"))
                .font(.headline)
            if let t = timings {
                Text(String(format: "pre %.1f · infer %.1f · post %.1f · total %.1f ms",
                            t.preprocessMs, t.inferenceMs, t.postprocessMs, t.totalMs))
            }
            Text("\(modelSummary) · \(computeUnits.label)")
        }
        .font(.caption.monospacedDigit())
        .foregroundColor(.white)
        .padding(8)
        .background(Color.black.opacity(0.55))
        .cornerRadius(8)
    }
}
