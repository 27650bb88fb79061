"""medkern.train (in progress)."""
