"""medkern.data (in progress)."""
