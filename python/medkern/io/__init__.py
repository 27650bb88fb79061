"""medkern.io (in progress)."""
