"""The fee schedule versions the service settles with."""
