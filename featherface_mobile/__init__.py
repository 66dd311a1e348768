"""featherface-mobile: FeatherFace / RetinaFace face detectors from PyTorch checkpoints to phones."""
__version__ = "0.1.0"
