import SwiftUI

/// FeatherFace iOS sample: live face detection on the camera, and a benchmark screen.
@main
struct FeatherFaceDemoApp: App {
    var body: some Scene {
        WindowGroup {
            TabView {
                LiveDetectionView()
                    .tabItem { Label("Live", systemImage: "camera") }
                BenchmarkView()
                    .tabItem { Label("Benchmark", systemImage: "speedometer") }
            }
        }
    }
}
