"""medkern.transforms (in progress)."""
