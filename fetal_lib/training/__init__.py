"""What every chapter's training shares: the arithmetic precision chosen from the CPU, and the
sanity floor that keeps a broken model from being deployed."""
