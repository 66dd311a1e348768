import SwiftUI

/// Camera preview with detections, stats, compute-unit picker and front/back switch.
struct LiveDetectionView: View {
    @StateObject private var camera = CameraController()

    var body: some View {
        ZStack {
            CameraPreview(session: camera.session)
                .overlay(DetectionOverlay(faces: camera.faces, frameSize: camera.frameSize))
                .ignoresSafeArea()
            VStack {
                HStack {
                    StatsOverlay(fps: camera.fps, timings: camera.timings, faceCount: camera.faces.count,
                                 modelSummary: camera.modelSummary, computeUnits: camera.computeUnits)
                    Spacer()
                }
                if !camera.status.isEmpty {
                    Text(camera.status)
                        .font(.footnote)
                        .foregroundColor(.white)
                        .padding(8)
                        .background(Color.red.opacity(0.7))
                        .cornerRadius(8)
                }
                Spacer()
                HStack {
                    Picker("Compute units", selection: $camera.computeUnits) {
                        ForEach(ComputeUnitsOption.allCases) { option in
                            Text(option.label).tag(option)
                        }
                    }
                    .pickerStyle(.menu)
                    .padding(6)
                    .background(Color.black.opacity(0.55))
                    .cornerRadius(8)
                    Spacer()
                    Button {
                        camera.switchCamera()
                    } label: {
                        Image(systemName: "arrow.triangle.2.circlepath.camera")
                            .font(.title2)
                            .padding(10)
                            .background(Color.black.opacity(0.55))
                            .clipShape(Circle())
                    }
                    .accessibilityLabel("Switch camera")
                }
            }
            .padding()
        }
        .onAppear { camera.start() }
        .onDisappear { camera.stop() }
    }
}
