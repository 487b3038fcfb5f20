"""Brain age from T1 MRI (Cam-CAN teaching set): preprocessing, 3D Res-U-Net tissue
segmentation, tissue-volume features, age regression, the ``fetal brain-age`` command.

Submodules import SimpleITK / torch lazily; importing this package is cheap.
"""
