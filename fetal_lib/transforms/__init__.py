"""2-D image transforms shared by the chapters and the app: letterbox resizing (:mod:`.letterbox`),
augmentation of ultrasound images and their masks (:mod:`.augment`), and mixup of a classifier's training
batch (:mod:`.mixup`). NumPy and OpenCV only."""
