"""medkern.models (in progress)."""
