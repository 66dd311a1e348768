import AVFoundation
import FaceDetectorCore
import Foundation

/// Owns the capture session and runs the detector on every frame it can keep up with.
/// Frames are delivered upright (portrait) and, for the front camera, mirrored exactly like the
/// preview layer, so face coordinates map onto the preview with one aspect-fill transform.
final class CameraController: NSObject, ObservableObject, AVCaptureVideoDataOutputSampleBufferDelegate {
    @Published private(set) var faces: [Face] = []
    @Published private(set) var frameSize: CGSize = .zero
    @Published private(set) var fps: Double = 0
    @Published private(set) var timings: StageTimings?
    @Published private(set) var status: String = "Starting…"
    @Published private(set) var modelSummary: String = ""
    @Published private(set) var position: AVCaptureDevice.Position = .front
    @Published var computeUnits: ComputeUnitsOption = .all {
        didSet { if computeUnits != oldValue { reloadDetector() } }
    }

    let session = AVCaptureSession()
    private let sessionQueue = DispatchQueue(label: "featherface.camera.session")
    private let videoQueue = DispatchQueue(label: "featherface.camera.video")
    private let videoOutput = AVCaptureVideoDataOutput()
    private var configured = false
    // Touched on videoQueue only.
    private var detector: CoreMLFaceDetector?
    private var lastFrameNanos: UInt64 = 0
    private var smoothedFPS: Double = 0

    func start() {
        reloadDetector()
        AVCaptureDevice.requestAccess(for: .video) { [weak self] granted in
            guard let self else { return }
            guard granted else {
                self.publish(status: "Camera access denied: allow it in Settings > Privacy > Camera")
                return
            }
            self.sessionQueue.async {
                do {
                    if !self.configured {
                        try self.configureSession(position: .front)
                        self.configured = true
                    }
                    if !self.session.isRunning { self.session.startRunning() }
                } catch {
                    self.publish(status: "Camera: \(error)")
                }
            }
        }
    }

    func stop() {
        sessionQueue.async {
            if self.session.isRunning { self.session.stopRunning() }
        }
    }

    func switchCamera() {
        let next: AVCaptureDevice.Position = position == .front ? .back : .front
        sessionQueue.async {
            do {
                try self.configureSession(position: next)
                DispatchQueue.main.async { self.position = next }
            } catch {
                self.publish(status: "Camera: \(error)")
            }
        }
    }

    /// (Re)loads the model with the selected compute units, off the main thread.
    func reloadDetector() {
        let units = computeUnits
        publish(status: "Loading model (\(units.label))…")
        DispatchQueue.global(qos: .userInitiated).async {
            do {
                let detector = try CoreMLFaceDetector(computeUnits: units)
                let summary = "\(detector.modelName) · \(detector.inputSize)px · config: \(detector.config.source)"
                self.videoQueue.async {
                    self.detector = detector
                    self.smoothedFPS = 0
                }
                DispatchQueue.main.async {
                    self.modelSummary = summary
                    self.status = ""
                }
            } catch {
                self.videoQueue.async { self.detector = nil }
                self.publish(status: "\(error)")
            }
        }
    }

    private func publish(status: String) {
        DispatchQueue.main.async { self.status = status }
    }

    enum CameraError: Error, CustomStringConvertible {
        case noCamera(AVCaptureDevice.Position)
        case cannotAdd(String)

        var description: String {
            switch self {
            case .noCamera(let position): return "no \(position == .front ? "front" : "back") camera on this device"
            case .cannotAdd(let what): return "the capture session refused the \(what)"
            }
        }
    }

    private func configureSession(position: AVCaptureDevice.Position) throws {
        session.beginConfiguration()
        defer { session.commitConfiguration() }
        if session.canSetSessionPreset(.hd1280x720) {
            session.sessionPreset = .hd1280x720
        }
        for input in session.inputs {
            session.removeInput(input)
        }
        guard let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: position) else {
            throw CameraError.noCamera(position)
        }
        let input = try AVCaptureDeviceInput(device: device)
        guard session.canAddInput(input) else { throw CameraError.cannotAdd("camera input") }
        session.addInput(input)

        if !session.outputs.contains(where: { $0 === videoOutput }) {
            videoOutput.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_32BGRA]
            videoOutput.alwaysDiscardsLateVideoFrames = true
            videoOutput.setSampleBufferDelegate(self, queue: videoQueue)
            guard session.canAddOutput(videoOutput) else { throw CameraError.cannotAdd("video output") }
            session.addOutput(videoOutput)
        }
        // Upright, and mirrored for the front camera, like the preview layer shows it.
        if let connection = videoOutput.connection(with: .video) {
            if connection.isVideoOrientationSupported {
                connection.videoOrientation = .portrait
            }
            if connection.isVideoMirroringSupported {
                connection.automaticallyAdjustsVideoMirroring = false
                connection.isVideoMirrored = position == .front
            }
        }
    }

    // MARK: AVCaptureVideoDataOutputSampleBufferDelegate (on videoQueue)

    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer, from connection: AVCaptureConnection) {
        guard let pixelBuffer = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        if lastFrameNanos > 0 && now > lastFrameNanos {
            let instant = 1e9 / Double(now - lastFrameNanos)
            smoothedFPS = smoothedFPS == 0 ? instant : 0.9 * smoothedFPS + 0.1 * instant
        }
        lastFrameNanos = now
        guard let detector = detector else { return }
        do {
            let result = try detector.detect(pixelBuffer: pixelBuffer)
            let fps = smoothedFPS
            DispatchQueue.main.async {
                self.faces = result.faces
                self.frameSize = CGSize(width: result.frameWidth, height: result.frameHeight)
                self.timings = result.timings
                self.fps = fps
            }
        } catch {
            publish(status: "Detection: \(error)")
        }
    }
}
