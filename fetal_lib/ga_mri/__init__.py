"""Chapter 4: gestational age (weeks) from fetal brain MRI (SimpleITK preprocessing, three orthogonal planes)."""
