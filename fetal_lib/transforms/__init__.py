"""2-D image transforms shared by the chapters and the app: letterbox resizing (:mod:`.letterbox`)
and augmentation of ultrasound images and their masks (:mod:`.augment`). NumPy and OpenCV only."""
