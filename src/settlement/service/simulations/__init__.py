"""What-if simulation over stored claims (POST /v1/simulations)."""
